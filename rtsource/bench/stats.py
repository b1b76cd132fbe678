"""Statistics of a benchmark run: latency percentiles, matching received region samples to
the pushed EEG samples they represent, drops, per-stage tables; the machine's description
and the JSON form of the results."""

from __future__ import annotations

import importlib.metadata as md
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .._util import host_provenance
from .._version import __version__
from .spec import BenchSpec
from .streams import AmplifierPusher, Subscriber

__all__ = [
    "STAGES",
    "drop_counts",
    "json_default",
    "latency_stats",
    "machine_info",
    "match_samples",
    "stage_stats",
    "stage_table",
    "steady_matches",
    "to_json",
    "warm_samples",
]

#: Stages of a processed piece, in pipeline order (see :func:`stage_table`).
STAGES = ("pull", "wait", "preprocess", "inverse", "refine", "regions", "push", "deliver")


# -- statistics -----------------------------------------------------------------------------
def latency_stats(seconds: Sequence[float] | NDArray) -> dict[str, float]:
    """p50, p95, p99, max, mean (milliseconds) and n of durations given in seconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan,
                "mean": math.nan, "n": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(a.max()),
            "mean": float(a.mean()), "n": int(a.size)}


def stage_stats(seconds: NDArray) -> dict[str, float]:
    """:func:`latency_stats` of a stage's durations, its p50 named ``median``."""
    s = latency_stats(seconds)
    return {"median": s["p50"], "p95": s["p95"], "p99": s["p99"], "max": s["max"],
            "mean": s["mean"], "n": s["n"]}


# -- matching received samples to pushed ones ------------------------------------------------
def match_samples(sub: Subscriber, pusher: AmplifierPusher) -> dict[str, NDArray]:
    """Map each received sample to the input sample it represents."""
    ts, arr = sub.timestamps, sub.arrivals
    assert pusher.t0 is not None
    pos = (ts - pusher.t0) * pusher.rate
    k = np.round(pos).astype(np.int64)
    ok = (k >= 0) & (k < pusher.n)
    lat = np.full(len(ts), np.nan)
    lat[ok] = arr[ok] - pusher.push_time[k[ok]]
    return {"ts": ts, "arrival": arr, "k": k, "ok": ok, "latency_s": lat,
            "ts_error_s": np.abs(pos - k) / pusher.rate}


def warm_samples(spec: BenchSpec) -> int:
    """Samples at the start of a run left out of the steady-state figures."""
    return int(round(spec.warmup_s * spec.rate))


def steady_matches(sub: Subscriber, pusher: AmplifierPusher, spec: BenchSpec
                   ) -> tuple[dict[str, NDArray], NDArray]:
    """Matched samples and the mask of those past the warm-up."""
    m = match_samples(sub, pusher)
    return m, m["ok"] & (m["k"] >= warm_samples(spec))


def drop_counts(m: dict[str, NDArray], n_in: int, decimate: int, phase: int,
                skip_first: bool = False) -> dict[str, int]:
    """Samples expected, missing, duplicated, off the output grid and out of order.

    Parameters
    ----------
    m : dict
        Matched samples (:func:`match_samples`).
    n_in : int
        Samples pushed.
    decimate, phase : int
        The output grid: input samples ``k`` with ``k % decimate == phase % decimate``.
    skip_first : sample 0 is not expected (the filters' first sample carries no data and
        the pipeline never publishes it).
    """
    k = m["k"][m["ok"]]
    expected = np.arange(phase % decimate, n_in, decimate)
    if skip_first:
        expected = expected[expected != 0]
    uniq = np.unique(k)
    return {
        "expected_out": int(len(expected)),
        "missing": int(len(np.setdiff1d(expected, uniq))),
        "duplicated": int(len(k) - len(uniq)),
        "off_grid": int(len(np.setdiff1d(uniq, expected)) + (~m["ok"]).sum()),
        "out_of_order": int(np.count_nonzero(np.diff(m["k"]) <= 0)) if len(k) > 1 else 0,
    }


def stage_table(log: dict[str, list[float]], m: dict[str, NDArray],
                pusher: AmplifierPusher, warm_k: int) -> dict[str, NDArray]:
    """Per-piece stage durations (s) for pieces that published after the warm-up.

    pull: EEG push of the piece's newest published sample -> the pipeline holding it
    (LSL transport, wake-up, pull, ring); wait: -> processing start; preprocess, inverse,
    refine, regions, push: the pipeline's own timings; deliver: push returned -> the
    subscriber holding the sample (slightly negative at times: liblsl can hand a chunk to a
    local subscriber before ``push_chunk`` returns). Their sum is the latency of that
    sample.
    """
    if not log or not log.get("ts"):
        return {}
    a = {k: np.asarray(v, dtype=np.float64) for k, v in log.items()}
    assert pusher.t0 is not None
    kk = np.round((a["ts"] - pusher.t0) * pusher.rate).astype(np.int64)
    sel = (a["n_out"] > 0) & (kk >= warm_k) & (kk < pusher.n)
    kk = kk[sel]
    arrival_by_k = np.full(pusher.n, np.nan)
    good = m["ok"]
    arrival_by_k[m["k"][good]] = m["arrival"][good]
    return {
        "pull": a["t_pulled"][sel] - pusher.push_time[kk],
        "wait": a["t_start"][sel] - a["t_pulled"][sel],
        "preprocess": a["preprocess"][sel], "inverse": a["inverse"][sel],
        "refine": a["refine"][sel], "regions": a["regions"][sel], "push": a["push"][sel],
        "deliver": arrival_by_k[kk] - a["t_pushed"][sel],
        "compute": (a["preprocess"] + a["inverse"] + a["refine"] + a["regions"]
                    + a["push"])[sel],
        "piece_samples": a["n_new"][sel],
    }


# -- machine ----------------------------------------------------------------------------------
def machine_info() -> dict[str, Any]:
    """CPU, cores, load average, library versions, thread settings and GPU (if any).

    The GPU is reported only where torch was imported before (this never imports it).
    """
    versions = {}
    for pkg in ("numpy", "scipy", "mne", "pylsl", "numba", "torch", "onnxruntime", "openvino",
                "tensorrt"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    info: dict[str, Any] = {
        "rtsource": __version__,
        "platform": platform.platform(),
        **host_provenance(),  # python, cpu, cpu_flags, bf16_native, cpu_count, load_average
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "packages": versions,
        "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                   "OMP_WAIT_POLICY")},
        "gpu": None,
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        if torch.cuda.is_available():
            info["gpu"] = {"name": torch.cuda.get_device_name(), "cuda": torch.version.cuda}
    return info


# -- JSON -------------------------------------------------------------------------------------
def json_default(obj: Any) -> Any:
    """``json.dumps(default=...)`` for numpy arrays and scalars (anything else: ``str``)."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return str(obj)


def to_json(results: dict[str, Any]) -> str:
    """JSON text of results (plot series dropped, NaN written as null)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if not str(k).startswith("_")}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, (float, np.floating)):
            return None if not math.isfinite(float(obj)) else float(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.ndarray):
            return clean(obj.tolist())
        return obj

    return json.dumps(clean(results), indent=2)
