"""OpenVINO on the CPU (optional: ``pip install 'rtsource[openvino]'``).

Reads the same verified ONNX export as the ``onnx`` backend and compiles it for the CPU
with a latency hint. ``precision="auto"`` asks for bf16 inference where the CPU computes
it natively (AMX or AVX-512-BF16; OpenVINO then keeps precision-sensitive layers in f32
itself) and f32 elsewhere. One compiled model per batch size (static shapes).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence

import numpy as np
from torch import nn

from .._util import optional_import
from .base import Engine, input_shape_of, pad_batch
from .ort import _cached_export, default_threads
from .torch_cpu import resolve_cpu_precision

__all__ = ["OpenVINOEngine", "openvino_status"]

logger = logging.getLogger("rtsource")


def openvino_status() -> tuple[bool, str]:
    """Whether the backend can run here, and why not."""
    try:
        import openvino as ov
    except ImportError:
        return False, "the Python package 'openvino' is not installed (pip install openvino)"
    return True, f"openvino {ov.__version__} CPU plugin"


class OpenVINOEngine(Engine):
    """Run the exported network with OpenVINO's CPU plugin.

    Parameters
    ----------
    model : torch.nn.Module
        The network (exported to ONNX once, cached, as for the ``onnx`` backend).
    batch_sizes : sequence of int
        Batch sizes compiled (static shapes) and warmed up at construction.
    threads : int, optional
        Inference threads (default 2 or fewer). Keep LSL + BLAS + these within the cores.
    precision : {"auto", "fp32", "bf16"}
        ``auto``: bf16 where the CPU has AMX or AVX-512-BF16, else fp32.
    cache_dir : path-like, optional
        Where the ONNX export is cached.

    Raises
    ------
    ImportError
        When ``openvino`` is not installed (the message says how to install it).
    """

    name = "openvino"
    device = "cpu"

    def __init__(self, model: nn.Module, *, batch_sizes: Sequence[int] | int = (1,),
                 threads: int | None = None, precision: str = "auto",
                 cache_dir: str | os.PathLike | None = None, warmup: bool = True) -> None:
        ov = optional_import("openvino", "openvino", "The openvino backend")
        super().__init__(batch_sizes, input_shape_of(model))
        self.precision = resolve_cpu_precision(precision)
        self.dtype = {"fp32": "float32", "bf16": "bfloat16"}[self.precision]
        self.threads = int(threads) if threads is not None else default_threads()
        self.path = _cached_export(model, cache_dir)
        core = ov.Core()
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_NUM_THREADS": self.threads,
                  "INFERENCE_PRECISION_HINT": "bf16" if self.precision == "bf16" else "f32",
                  "NUM_STREAMS": 1}
        self._requests = {}
        for size in self.batch_sizes:
            m = core.read_model(str(self.path))
            m.reshape([size, *self.input_shape])
            compiled = core.compile_model(m, "CPU", config)
            self._requests[size] = compiled.create_infer_request()
            if warmup:
                self._run(np.zeros((size, *self.input_shape), np.float32), size)
        logger.info("openvino engine: %s, %s, %d thread(s)", self.path.name, self.precision,
                    self.threads)

    def _run(self, batch: np.ndarray, size: int) -> np.ndarray:
        count = batch.shape[0]
        req = self._requests[size]
        feed = pad_batch(batch, size) if count != size else np.ascontiguousarray(batch)
        req.infer({0: feed})
        out = req.get_output_tensor(0).data
        return np.array(out[:count], dtype=np.float32, copy=True)

    def close(self) -> None:  # noqa: D102
        self._requests = {}
