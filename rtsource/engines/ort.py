"""ONNX Runtime on the CPU."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from torch import nn

from .base import Engine, input_shape_of, model_hash, pad_batch
from .export import export_onnx

__all__ = ["OnnxRuntimeEngine", "default_threads"]

logger = logging.getLogger("rtsource")


def default_threads() -> int:
    """Default intra-op thread count: 2, or fewer on a machine with fewer cores."""
    return max(1, min(2, os.cpu_count() or 1))


class OnnxRuntimeEngine(Engine):
    """Run the exported network with ONNX Runtime's CPU execution provider.

    Parameters
    ----------
    model : torch.nn.Module or path-like
        The network (exported to ``cache_dir/onnx/<model hash>.onnx`` with a dynamic batch
        axis, reused when present) or an existing ``.onnx`` file.
    batch_sizes : sequence of int
        Batch sizes warmed up at construction (any batch size runs).
    threads : int, optional
        Intra-op threads (default :func:`default_threads`). Keep LSL + BLAS + these threads
        within the core count.
    spin : bool
        Let idle worker threads spin (lower latency, but they keep the cores busy between
        calls). Off by default, so the pipeline's other threads get the cores.
    cache_dir : path-like, optional
        Where exports are cached (default: ``rtsource`` cache folder).
    input_shape : tuple of int, optional
        Per-sample input shape when ``model`` is a file (default (3, 32, 32, 32)).
    """

    name = "onnx"
    dtype = "float32"
    device = "cpu"

    def __init__(
        self,
        model: nn.Module | str | os.PathLike,
        *,
        batch_sizes: Sequence[int] | int = (1,),
        threads: int | None = None,
        spin: bool = False,
        cache_dir: str | os.PathLike | None = None,
        input_shape: tuple[int, ...] | None = None,
        warmup: bool = True,
    ) -> None:
        import onnxruntime as ort  # a core dependency, imported lazily (heavy)

        if isinstance(model, nn.Module):
            shape = input_shape_of(model)
            path = _cached_export(model, cache_dir)
        else:
            shape = tuple(input_shape) if input_shape else (3, 32, 32, 32)
            path = Path(model)
            if not path.exists():
                raise FileNotFoundError(f"ONNX model {str(path)!r} does not exist.")
        super().__init__(batch_sizes, shape)
        self.threads = int(threads) if threads is not None else default_threads()
        if self.threads < 1:
            raise ValueError(f"threads={threads} must be ≥ 1.")
        self.path = path
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
        self._session = ort.InferenceSession(
            str(path), sess_options=opts, providers=["CPUExecutionProvider"]
        )
        self._input = self._session.get_inputs()[0].name
        self._output = self._session.get_outputs()[0].name
        static_batch = self._session.get_inputs()[0].shape[0]
        self._static_batch = static_batch if isinstance(static_batch, int) else None
        if self._static_batch is not None:
            self.batch_sizes = (self._static_batch,)
        if warmup:
            for size in self.batch_sizes:
                self._run(np.zeros((size, *self.input_shape), np.float32), size)
        logger.info("onnx engine: %s, %d thread(s)", path.name, self.threads)

    def _run(self, batch: np.ndarray, size: int) -> np.ndarray:
        count = batch.shape[0]
        # A dynamic-batch graph runs any batch as is; a static one needs padding.
        feed = batch
        if self._static_batch is not None and count != self._static_batch:
            feed = pad_batch(batch, self._static_batch)
        out = self._session.run([self._output], {self._input: feed})[0]
        return out if out.shape[0] == count else out[:count].copy()

    def close(self) -> None:  # noqa: D102
        self._session = None  # type: ignore[assignment]


def _cached_export(model: nn.Module, cache_dir: str | os.PathLike | None) -> Path:
    """The network's fp32 dynamic-batch ONNX export in ``cache_dir/onnx/`` (default: the
    rtsource cache), through :func:`rtsource._util.cached_file` (SHA-256 sidecar; a damaged
    file is exported again, with a warning)."""
    from .._util import cached_file

    path, _ = cached_file(
        "onnx", f"{type(model).__name__}-{model_hash(model)}-fp32-dyn", ".onnx",
        lambda p: export_onnx(model, p, batch=1, dynamic_batch=True), root=cache_dir)
    return path
