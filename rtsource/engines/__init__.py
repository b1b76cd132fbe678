"""Runtimes for the refinement network behind one interface.

``make_engine(model, backend)`` returns an :class:`Engine`: ``engine(vol) -> vol`` on float32
arrays of shape (B, 3, 32, 32, 32). Backends:

- ``tensorrt``: TensorRT 10 (ONNX parser, FP16, cached serialized engine) on a CUDA GPU;
- ``cuda``: PyTorch on CUDA with fp16/bf16 autocast and one CUDA graph per batch size;
- ``openvino``: OpenVINO's CPU plugin (bf16 where the CPU has AMX or AVX-512-BF16);
- ``onnx``: ONNX Runtime on the CPU;
- ``cpu``: PyTorch compiled with Inductor and weight freezing (oneDNN convolutions; bf16
  autocast with channels-last-3d where the CPU has it natively);
- ``eager``: plain PyTorch, float32 (the reference).

``auto`` takes the first available of tensorrt, cuda, openvino, cpu. GPU, TensorRT and
OpenVINO modules import their optional dependencies only when used.
"""

from .base import Engine, model_hash, plan_batches
from .export import (
    TENSORRT_ONNX_OPS,
    UnsupportedOnnxError,
    check_onnx_for_tensorrt,
    export_onnx,
)
from .factory import BACKENDS, available_backends, make_engine, resolve_backend

__all__ = [
    "BACKENDS",
    "Engine",
    "TENSORRT_ONNX_OPS",
    "UnsupportedOnnxError",
    "available_backends",
    "check_onnx_for_tensorrt",
    "export_onnx",
    "make_engine",
    "resolve_backend",
    "model_hash",
    "plan_batches",
]

_LAZY = {
    "TorchCPUEngine": ".torch_cpu",
    "OnnxRuntimeEngine": ".ort",
    "TorchCUDAEngine": ".torch_cuda",
    "TensorRTEngine": ".tensorrt",
}


def __getattr__(name: str):  # engine classes import their runtimes only when asked for
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
