"""PyTorch on the CPU: compiled with Inductor + weight freezing (default) or eager.

Eager PyTorch runs batch-1 Conv3d on a slow fallback path (about 94 % of the time in the
measurements of ``FACTS.md``). Compiling with ``freezing=True`` under ``no_grad`` folds the
weights into constants and lets Inductor route the convolutions to oneDNN with pre-packed
weights, several times faster. Compilation takes tens of seconds per batch size (done once,
at construction); the eager variant is kept as a reference.

Precision. ``precision="auto"`` runs bfloat16 where the CPU computes it natively (AMX or
AVX-512-BF16, read from ``/proc/cpuinfo``): autocast to bf16 for convolutions and matmuls
(normalisations stay float32, autocast's CPU policy), weights and activations in the
channels-last-3d layout oneDNN prefers, float32 in and out. Elsewhere bf16 would be
emulated and slower than float32, so ``auto`` keeps float32 (FACTS.md). The bf16 output
differs from float32 by about 1-2 % (relative L2; ``tests/test_engines.py`` checks
<= 2e-2).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._util import cpu_features
from ..config import check_value
from .base import Engine, input_shape_of, pad_batch, prepare_model

#: CPU precisions; ``auto`` = bf16 where the CPU has it natively, else fp32.
CPU_PRECISIONS = ("auto", "fp32", "bf16")


def resolve_cpu_precision(precision: str) -> str:
    """``"fp32"`` or ``"bf16"`` for a CPU ``precision`` setting (``auto``: the CPU decides).

    Raises
    ------
    ValueError
        For an unknown precision.
    """
    check_value(precision, CPU_PRECISIONS, "precision")
    if precision == "auto":
        return "bf16" if cpu_features()["bf16_native"] else "fp32"
    return precision

__all__ = ["TorchCPUEngine"]

logger = logging.getLogger("rtsource")


class TorchCPUEngine(Engine):
    """Run the network with PyTorch on the CPU.

    Parameters
    ----------
    model : torch.nn.Module
        The network (copied; the caller's module is not modified).
    batch_sizes : sequence of int
        Batch sizes to compile (and warm up) at construction.
    compiled : bool
        True: ``torch.compile`` with Inductor and ``freezing=True`` (name ``"cpu"``).
        False: eager PyTorch (name ``"eager"``, reference only: slow at batch 1).
    threads : int, optional
        If given, calls ``torch.set_num_threads(threads)`` (process-wide).
    precision : {"auto", "fp32", "bf16"}
        Compute precision (see the module docstring); ``auto`` picks bf16 only where the
        CPU has AMX or AVX-512-BF16.
    warmup : bool
        Run every batch size once at construction, so compilation never happens on the
        hot path.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        batch_sizes: Sequence[int] | int = (1,),
        compiled: bool = True,
        threads: int | None = None,
        precision: str = "auto",
        warmup: bool = True,
    ) -> None:
        super().__init__(batch_sizes, input_shape_of(model))
        if threads is not None:
            if threads < 1:
                raise ValueError(f"threads={threads} must be ≥ 1.")
            torch.set_num_threads(int(threads))
        self.name = "cpu" if compiled else "eager"
        self.precision = resolve_cpu_precision(precision)
        self.dtype = {"fp32": "float32", "bf16": "bfloat16"}[self.precision]
        self.device = "cpu"
        self.compiled = compiled
        self.threads = torch.get_num_threads()
        self._model = prepare_model(model, "cpu")
        self._bf16 = self.precision == "bf16"
        if self._bf16:
            self._model = self._model.to(memory_format=torch.channels_last_3d)
        self._compiled_sizes: set[int] = set()
        if compiled:
            self._fn = torch.compile(self._model, fullgraph=True, dynamic=False)
        else:
            self._fn = self._model
        if warmup:
            for size in self.batch_sizes:
                t0 = time.perf_counter()
                self._run(np.zeros((size, *self.input_shape), np.float32), size)
                logger.info(
                    "%s engine: batch %d ready in %.1f s", self.name, size, time.perf_counter() - t0
                )

    def _run(self, batch: np.ndarray, size: int) -> np.ndarray:
        count = batch.shape[0]
        x = torch.from_numpy(pad_batch(batch, size))
        if self._bf16:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self._bf16):
            if self.compiled and size not in self._compiled_sizes:
                y = self._compile_call(x)
                self._compiled_sizes.add(size)
            else:
                y = self._fn(x)
        out = y.float().contiguous().numpy() if self._bf16 else y.numpy()
        return out if count == size else out[:count].copy()

    def _compile_call(self, x: torch.Tensor) -> torch.Tensor:
        """First call for a batch size: compiles, with Inductor's weight freezing on.

        Freezing is switched on for this compilation only (``config.patch``). Passing it as
        ``torch.compile(options={"freezing": True})`` does not freeze (torch 2.13: the
        generated code has no oneDNN convolutions and ran several times slower).
        """
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=True):
            return self._fn(x)
