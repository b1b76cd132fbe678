"""Choosing and building an engine: :func:`make_engine` and :func:`available_backends`."""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from ..config import BACKENDS, Backend, check_value
from .base import Engine

__all__ = ["AUTO_ORDER", "BACKENDS", "available_backends", "make_engine", "resolve_backend"]

logger = logging.getLogger("rtsource")

# Valid ``backend`` names (defined once in rtsource.config). ``auto`` tries tensorrt, then
# cuda, then cpu.

#: ``auto`` tries these in order. On the CPU OpenVINO comes first: it ran the width-8
#: network in bf16 about twice as fast as compiled PyTorch in bf16 on an AVX-512-BF16 EPYC
#: (bench/bench_refine.py) and compiles in about a second instead of tens of seconds.
AUTO_ORDER: tuple[str, ...] = ("tensorrt", "cuda", "openvino", "cpu")


def _cxx_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def available_backends() -> dict[str, tuple[bool, str]]:
    """Which backends can run on this machine, each with a one-line reason.

    Returns
    -------
    dict
        ``{name: (available, reason)}`` for ``tensorrt``, ``cuda``, ``onnx``, ``cpu`` and
        ``eager`` (used by ``rtsource sys-info``).
    """
    from .tensorrt import tensorrt_status

    out: dict[str, tuple[bool, str]] = {}
    out["tensorrt"] = tensorrt_status()
    if torch.cuda.is_available():
        out["cuda"] = (True, f"torch {torch.__version__} on {torch.cuda.get_device_name()}")
    else:
        out["cuda"] = (
            False,
            f"torch {torch.__version__} sees no CUDA GPU (built with CUDA {torch.version.cuda})",
        )
    if importlib.util.find_spec("onnxruntime") is not None:
        import onnxruntime as ort

        providers = ", ".join(ort.get_available_providers())
        out["onnx"] = (True, f"onnxruntime {ort.__version__} ({providers})")
    else:
        out["onnx"] = (False, "the Python package 'onnxruntime' is not installed")
    from .openvino import openvino_status

    out["openvino"] = openvino_status()
    compiler = _cxx_compiler()
    if compiler:
        out["cpu"] = (True, f"torch {torch.__version__} compiled (Inductor, freezing; {compiler})")
    else:
        out["cpu"] = (False, "no C++ compiler found for torch.compile (install g++); use 'eager'")
    out["eager"] = (True, f"torch {torch.__version__} eager (reference; slow at batch 1)")
    return out


def resolve_backend(backend: str) -> str:
    """The backend ``backend`` means here: itself, or for ``"auto"`` the first available of
    tensorrt, cuda, openvino, cpu (else eager)."""
    check_value(backend, BACKENDS, "backend")
    if backend != "auto":
        return backend
    status = available_backends()
    return next((b for b in AUTO_ORDER if status[b][0]), "eager")


def make_engine(
    model: nn.Module,
    backend: Backend = "auto",
    batch_sizes: Sequence[int] | int = (1,),
    cache_dir: str | os.PathLike | None = None,
    *,
    precision: Literal["auto", "fp16", "bf16", "fp32"] = "auto",
    threads: int | None = None,
    device: str | torch.device = "cuda",
    **options: Any,
) -> Engine:
    """Build the engine that runs ``model`` on the chosen backend.

    Parameters
    ----------
    model : torch.nn.Module
        The refinement network (e.g. :class:`rtsource.models.PIUNet`); not modified.
    backend : {"auto", "tensorrt", "cuda", "openvino", "onnx", "cpu", "eager"}
        ``"auto"`` tries TensorRT, then torch CUDA, then OpenVINO, then compiled torch on
        the CPU, logging why each unavailable one was skipped.
    batch_sizes : sequence of int
        Batch sizes to prepare (compile, capture or build) now.
    cache_dir : path-like, optional
        Cache root for ONNX exports and TensorRT engines (default: ``rtsource`` cache).
    precision : {"auto", "fp16", "bf16", "fp32"}
        Compute precision. ``auto``: fp16 on GPUs; on the CPU (``cpu``/``eager``) bf16 where
        the CPU has AMX or AVX-512-BF16, else fp32. ``fp16`` on the CPU means ``auto``.
        ``onnx`` runs float32.
    threads : int, optional
        CPU threads (onnx: intra-op threads, default 2 or fewer; cpu/eager: sets
        ``torch.set_num_threads``).
    device : str or torch.device
        CUDA device for the GPU backends.
    **options
        Passed on to the backend's class (e.g. ``typing`` for TensorRT, ``spin`` for ONNX
        Runtime, ``cuda_graphs`` for cuda).

    Returns
    -------
    Engine
    """
    check_value(backend, BACKENDS, "backend")
    if backend != "auto":
        return _build(backend, model, batch_sizes, cache_dir, precision, threads, device, options)
    status = available_backends()
    for name in AUTO_ORDER:
        ok, reason = status[name]
        if not ok:
            logger.info("backend auto: skipping %s (%s)", name, reason)
            continue
        try:
            engine = _build(
                name, model, batch_sizes, cache_dir, precision, threads, device, options
            )
        except Exception as err:  # fall back to the next backend, saying why
            logger.warning(
                "backend auto: %s failed (%s: %s); trying the next one",
                name,
                type(err).__name__,
                err,
            )
            continue
        logger.info("backend auto: using %s", name)
        return engine
    logger.warning("backend auto: no compiled backend available; using eager torch on the CPU")
    return _build("eager", model, batch_sizes, cache_dir, precision, threads, device, options)


def _build(
    name: str,
    model: nn.Module,
    batch_sizes: Sequence[int] | int,
    cache_dir: str | os.PathLike | None,
    precision: str,
    threads: int | None,
    device: str | torch.device,
    options: dict[str, Any],
) -> Engine:
    gpu_precision = "fp16" if precision == "auto" else precision
    if precision == "fp16" and name in ("openvino", "cpu", "eager"):
        logger.warning("precision 'fp16' is a GPU precision; the %s backend runs 'auto' "
                       "instead (bf16 where the CPU has AMX or AVX-512-BF16, else fp32).", name)
    if name == "tensorrt":
        from .tensorrt import TensorRTEngine

        if gpu_precision == "bf16":
            raise ValueError("precision='bf16' is not offered by the tensorrt backend; use 'fp16'.")
        return TensorRTEngine(
            model,
            batch_sizes=batch_sizes,
            precision=gpu_precision,
            cache_dir=cache_dir,  # type: ignore[arg-type]
            device=device,
            **options,
        )
    if name == "cuda":
        from .torch_cuda import TorchCUDAEngine

        return TorchCUDAEngine(
            model,
            batch_sizes=batch_sizes,
            precision=gpu_precision,
            device=device,
            **options,  # type: ignore[arg-type]
        )
    if name == "openvino":
        from .openvino import OpenVINOEngine

        return OpenVINOEngine(model, batch_sizes=batch_sizes, threads=threads,
                              precision="auto" if precision == "fp16" else precision,
                              cache_dir=cache_dir, **options)
    if name == "onnx":
        from .ort import OnnxRuntimeEngine

        if precision not in ("auto", "fp32"):
            raise ValueError(f"precision = {precision!r} is not offered by the onnx backend "
                             "(ONNX Runtime CPU runs float32); use 'auto' or 'fp32', or the "
                             "openvino backend for bf16.")

        return OnnxRuntimeEngine(
            model, batch_sizes=batch_sizes, threads=threads, cache_dir=cache_dir, **options
        )
    from .torch_cpu import TorchCPUEngine

    if name == "cpu" and _cxx_compiler() is None:
        raise RuntimeError(
            "The cpu backend compiles the network with torch.compile, which needs a C++ "
            "compiler (g++ or clang++); none was found. Install one, or use backend='eager'."
        )
    cpu_precision = "auto" if precision == "fp16" else precision
    if name == "eager" and cpu_precision == "auto":
        cpu_precision = "fp32"  # the eager engine is the float32 reference
    return TorchCPUEngine(
        model, batch_sizes=batch_sizes, compiled=(name == "cpu"), threads=threads,
        precision=cpu_precision, **options
    )
