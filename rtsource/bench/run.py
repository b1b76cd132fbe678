"""A whole benchmark run (:func:`run_benchmark`: the pipeline, the baseline, their
comparison) and the entry point of the worker processes (:func:`main`)."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._util import loadavg, logger, quiet_liblsl
from .baseline import baseline_run, baseline_worker
from .pipeline import pipeline_run, pipeline_worker
from .refine import random_checkpoint, refine_benchmark
from .spec import BenchSpec, make_config
from .stats import machine_info

__all__ = ["main", "run_benchmark"]


def run_benchmark(spec: BenchSpec, *, refine_only: bool = False,
                  report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark a spec describes; returns the results (JSON-ready but for the
    ``_series`` entries, which :func:`~rtsource.bench.report.plot_results` uses and
    :func:`~rtsource.bench.stats.to_json` drops).

    Parameters
    ----------
    spec : BenchSpec
    refine_only : bool
        Only time the refinement network (no LSL, no pipeline).
    report : callable | None
        Receives progress lines (default: the package logger).
    """
    say = report or (lambda s: logger.info("%s", s))
    results: dict[str, Any] = {
        "benchmark": "rtsource bench" + (" --refine-only" if refine_only else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": {k: v for k, v in dataclasses.asdict(spec).items()},
        "machine": machine_info(),
    }
    results["config"]["push_chunk"] = spec.push_chunk
    results["notes"] = (
        "machine.load_average (1, 5, 15 min) was read at the start and "
        "machine.load_average_end at the end: on a shared machine the figures, tails above "
        "all, reflect what else ran. Timings use random inputs and (with --width) random "
        "weights; latency does not depend on either."
    )
    if refine_only:
        results["refine"] = refine_benchmark(spec, say)
        results["machine"]["load_average_end"] = loadavg()
        return results
    with tempfile.TemporaryDirectory(prefix="rtsource-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ckpt = None
        if spec.method == "piunet" and spec.width is not None:
            cfg0 = make_config(spec)
            ckpt = random_checkpoint(spec.width, cfg0.headmodel.spacing_mm, tmp)
        elif spec.method == "piunet" and spec.checkpoint is not None:
            ckpt = spec.checkpoint
        cfg = make_config(spec, ckpt)
        results["config"]["pipeline"] = {
            "method": cfg.method, "montage": cfg.headmodel.montage,
            "conductor": cfg.headmodel.conductor, "atlas": cfg.regions.atlas,
            "window_s": cfg.stream.window_s, "hop_s": cfg.stream.hop_s,
            "filters": [cfg.stream.highpass_hz, cfg.stream.lowpass_hz, cfg.stream.notch_hz],
            "refine": dataclasses.asdict(cfg.refine) if cfg.refine.refiner is not None else None,
            "random_weights": spec.method == "piunet" and spec.width is not None,
        }
        ours = pipeline_run(spec, cfg, tmp, say)
        results.update({k: ours[k] for k in (
            "latency_ms", "stages_ms", "samples_in", "samples_out", "dropped")})
        results["pipeline"] = {k: v for k, v in ours.items() if k not in results}
        base = None
        if spec.baseline:
            base = baseline_run(spec, cfg, tmp, say)
        results["baseline"] = base
        if base is not None and ours["latency_ms"]["n"] and base["latency_ms"]["n"]:
            ol, bl = ours["latency_ms"], base["latency_ms"]
            ours_hop = ours["stages_ms"].get("compute", {}).get("median", math.nan)
            results["comparison"] = {
                "baseline_over_rtsource_latency_p50": bl["p50"] / ol["p50"],
                "baseline_over_rtsource_latency_p99": bl["p99"] / ol["p99"],
                "baseline_over_rtsource_compute_per_hop_median":
                    base["compute_per_hop_ms"]["p50"] / ours_hop if ours_hop else math.nan,
                "note": "The baseline falls behind when its compute per hop exceeds the hop: "
                        "its latency then grows for as long as it runs (see "
                        "baseline.latency_growth_s_per_s), so its latency figures depend on "
                        "its input length (baseline.duration_s).",
            }
    results["machine"]["load_average_end"] = loadavg()
    return results


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker processes (``python -m rtsource.bench``)."""
    ap = argparse.ArgumentParser(description="rtsource benchmark workers (internal)")
    ap.add_argument("--pipeline-worker", metavar="JOB")
    ap.add_argument("--baseline-worker", metavar="JOB")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_liblsl()
    if args.pipeline_worker:
        return pipeline_worker(args.pipeline_worker)
    if args.baseline_worker:
        return baseline_worker(args.baseline_worker)
    ap.error("give --pipeline-worker or --baseline-worker")
    return 2
