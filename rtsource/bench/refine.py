"""The refinement network alone: per-volume timings of an engine at several batch sizes
(:func:`time_engine`, :func:`refine_benchmark`) and the random-weight checkpoints that
timing-only runs use (:func:`random_checkpoint`).

The network's modules (``rtsource.models``, ``rtsource.engines``, ``rtsource.online.refine``)
import torch, so they are imported inside the functions: importing :mod:`rtsource.bench`
does not import torch, and :func:`~rtsource.bench.stats.machine_info` reports a GPU only
where the caller imported torch before.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .._util import loadavg, logger
from .spec import BenchSpec
from .stats import latency_stats

__all__ = ["random_checkpoint", "refine_benchmark", "time_engine"]


def time_engine(engine: Any, runs: int, batches: Sequence[int]) -> dict[str, Any]:
    """Per-volume timings of an engine at each batch size (random volumes)."""
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"backend": engine.name, "dtype": engine.dtype,
                           "device": engine.device, "batches": {}}
    for b in sorted(set(int(x) for x in batches)):
        x = rng.standard_normal((b, *engine.input_shape)).astype(np.float32)
        x /= np.abs(x).max()
        for _ in range(2):
            engine(x)
        t = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter()
            engine(x)
            t[i] = time.perf_counter() - t0
        st = latency_stats(t)
        out["batches"][str(b)] = {
            "batch": b, "call_ms": st,
            "per_volume_ms_median": st["p50"] / b,
            "volumes_per_s": b / float(np.median(t)),
        }
    one = out["batches"].get("1")
    if one is not None:
        out["batch1_ms"] = {"median": one["call_ms"]["p50"], "p99": one["call_ms"]["p99"]}
    best = max(out["batches"].values(), key=lambda r: r["volumes_per_s"])
    out["throughput"] = {"batch": best["batch"], "volumes_per_s": best["volumes_per_s"],
                         "per_volume_ms": 1e3 / best["volumes_per_s"]}
    return out


def refine_benchmark(spec: BenchSpec, report: Callable[[str], None] | None = None,
                     batches: Sequence[int] | None = None, **engine_options: Any
                     ) -> dict[str, Any]:
    """Time the refinement network alone on ``spec.backend``.

    Builds the engine for batch sizes (1, ``spec.refine_batch``) (or ``batches``) from
    ``spec.width`` (random weights) or ``spec.checkpoint``, then times
    ``spec.refine_runs`` calls at each size. Returns per-volume latency at batch 1
    (median, p99) and batched throughput. ``engine_options`` go to
    :func:`~rtsource.engines.make_engine` (e.g. ``precision``).
    """
    import torch

    from ..engines import make_engine
    from ..models import PIUNET_PRESETS, PIUNet, count_parameters

    say = report or (lambda s: logger.info("%s", s))
    if spec.width is not None:
        torch.manual_seed(0)
        model = PIUNet(int(spec.width)).eval()
        source = f"random weights, width {spec.width} (timing only)"
    else:
        from ..models.checkpoint import load_checkpoint
        from ..online.refine import checkpoint_path

        ckpt = load_checkpoint(checkpoint_path(spec.checkpoint or "default"))
        model, source = ckpt.model, f"checkpoint {ckpt.path.name} (sha256 {ckpt.sha256[:12]})"
    threads = spec.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count())
    batches = sorted({1, *(int(b) for b in (batches or (spec.refine_batch,)))})
    say(f"Building the {spec.backend} engine for batch sizes {batches} ({source})...")
    load0 = loadavg()
    t0 = time.perf_counter()
    engine = make_engine(model, spec.backend, batch_sizes=batches, threads=threads,
                         **engine_options)
    setup_s = time.perf_counter() - t0
    res = time_engine(engine, runs=spec.refine_runs, batches=batches)
    engine.close()
    width = getattr(model, "width", spec.width)
    res.update({
        "model": source, "width": width, "params": count_parameters(model),
        "reference_gflop_per_volume": PIUNET_PRESETS[width].reference_gflop
        if width in PIUNET_PRESETS else None,
        "setup_s": setup_s, "runs": spec.refine_runs, "threads": threads,
        "precision": getattr(engine, "precision", engine.dtype),
        "torch_threads": torch.get_num_threads(),
        "path": {"cpu": "torch.compile (Inductor, freezing, oneDNN)", "eager": "eager torch",
                 "onnx": "ONNX Runtime CPU", "cuda": "torch CUDA graphs",
                 "tensorrt": "TensorRT"}.get(engine.name, engine.name),
        "load_average_before": load0, "load_average_after": loadavg(),
    })
    return res


def random_checkpoint(width: int, spacing_mm: float, folder: Path) -> str:
    """Save a 3D-PIUNet of ``width`` with random (but always the same) weights in
    ``folder``; returns its path."""
    import torch

    from ..models import PIUNet
    from ..models.checkpoint import save_checkpoint

    torch.manual_seed(0)  # the same weights every run: exports and engines are cached
    path = folder / f"random-piunet-w{width}.safetensors"
    save_checkpoint(PIUNet(int(width)).eval(), path, spacing_mm=spacing_mm,
                    training_config={"note": "random weights for rtsource bench"})
    return str(path)
