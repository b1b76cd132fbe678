"""Latency of the 3D-PIUNet refinement step on the CPU, per volume at batch 1.

Backends: eager PyTorch (baseline), PyTorch compiled with Inductor + freezing (the ``cpu``
engine), and ONNX Runtime (the ``onnx`` engine). Each engine is timed through its public
call (numpy in, numpy out), after warm-up, with a fixed thread count.

Usage::

    python bench/bench_refine.py [--widths 8 16] [--runs 30] [--threads 2]
                                 [--omp-wait-policy passive|active|unset]
                                 [--json bench/results/refine_cpu.json]

PyTorch's OpenMP threads spin while idle by default; on a busy 2-core machine that made the
compiled network several times slower (median) than with ``OMP_WAIT_POLICY=PASSIVE``, which
the script therefore sets (before importing torch) unless told otherwise.

Writes a JSON file with per-backend median / p99 / min / max (ms), the one-off setup time
(compilation, export), and machine information (CPU, load average before and after, library
versions). Timings depend on what else runs on the machine: read the load average.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import time_calls  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(threads: int) -> dict:
    import onnxruntime
    import torch

    return {
        "cpu": cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": np.__version__,
        "mkldnn": bool(torch.backends.mkldnn.is_available()),
        "threads": threads,
    }


def loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def time_engine(engine, x: np.ndarray, runs: int, warmup: int) -> dict:
    ms = np.asarray(time_calls(lambda: engine(x), runs, warmup)) * 1e3
    return {
        "runs": runs,
        "warmup": warmup,
        "median_ms": round(float(np.median(ms)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "mean_ms": round(float(ms.mean()), 3),
        "min_ms": round(float(ms.min()), 3),
        "max_ms": round(float(ms.max()), 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[8, 16])
    parser.add_argument(
        "--backends", nargs="+", default=["eager", "cpu", "onnx"], choices=["eager", "cpu", "onnx"]
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--eager-runs",
        type=int,
        default=10,
        help="runs for eager torch (seconds per call at batch 1)",
    )
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "refine_cpu.json")
    parser.add_argument(
        "--omp-wait-policy",
        choices=["passive", "active", "unset"],
        default="passive",
        help="OMP_WAIT_POLICY for PyTorch's OpenMP threads, set before torch is imported "
        "(passive: idle threads sleep instead of spinning; much steadier on a busy machine)",
    )
    args = parser.parse_args(argv)
    if args.omp_wait_policy != "unset":
        os.environ["OMP_WAIT_POLICY"] = args.omp_wait_policy.upper()

    import torch

    from rtsource.engines.ort import OnnxRuntimeEngine
    from rtsource.engines.torch_cpu import TorchCPUEngine
    from rtsource.models import PIUNET_PRESETS, PIUNet, count_parameters

    torch.set_num_threads(args.threads)
    info = machine_info(args.threads)
    load_before = loadavg()
    results = []
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 32, 32, 32)).astype(np.float32)
    x /= np.abs(x).max()  # the scaled domain the network sees
    with tempfile.TemporaryDirectory() as cache:
        for width in args.widths:
            torch.manual_seed(0)
            model = PIUNet(width=width).eval()
            for backend in args.backends:
                t0 = time.perf_counter()
                if backend == "onnx":
                    engine = OnnxRuntimeEngine(model, threads=args.threads, cache_dir=cache)
                else:
                    engine = TorchCPUEngine(
                        model, compiled=(backend == "cpu"), threads=args.threads
                    )
                setup_s = time.perf_counter() - t0
                runs = args.eager_runs if backend == "eager" else args.runs
                warmup = min(args.warmup, 2) if backend == "eager" else args.warmup
                stats = time_engine(engine, x, runs, warmup)
                row = {
                    "width": width,
                    "backend": backend,
                    "batch": 1,
                    "params": count_parameters(model),
                    "reference_gflop": PIUNET_PRESETS[width].reference_gflop
                    if width in PIUNET_PRESETS
                    else None,
                    "setup_s": round(setup_s, 2),
                    **stats,
                    "load_after": loadavg(),
                }
                results.append(row)
                print(
                    f"width {width:2d} {backend:5s}: median {stats['median_ms']:8.2f} ms, "
                    f"p99 {stats['p99_ms']:8.2f} ms (min {stats['min_ms']:.2f}; setup {setup_s:.1f} s; "
                    f"load {row['load_after']})",
                    flush=True,
                )
                engine.close()
    out = {
        "benchmark": "refine_cpu",
        "description": "3D-PIUNet refinement latency per volume at batch 1 (numpy in/out), CPU",
        "created": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "machine": {**info, "loadavg_before": load_before, "loadavg_after": loadavg()},
        "settings": {
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset"),
            "runs": args.runs,
            "eager_runs": args.eager_runs,
            "warmup": args.warmup,
            "input": "(1, 3, 32, 32, 32) float32, standard normal scaled to max |x| = 1",
        },
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
