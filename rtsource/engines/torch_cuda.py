"""PyTorch on a CUDA GPU: fp16/bf16 autocast, one CUDA graph per batch size, pinned I/O.

Per prepared batch size the engine owns a static device input and output, pinned host
buffers, and a CUDA graph of the whole forward pass captured on the engine's own stream.
A call copies the volumes into the pinned input, then enqueues host→device copy, graph
replay and device→host copy on that stream, and waits for it: one synchronisation per call
and no kernel-launch overhead. GroupNorm and softmax run in float32 inside the graph (see
:class:`rtsource.models.piunet.GroupNorm32`).

Written against the documented ``torch.cuda.graph`` / ``torch.cuda.CUDAGraph`` API
(warm-up on the capture stream, ``autocast(cache_enabled=False)`` during capture).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from .base import Engine, fill_padded, input_shape_of, prepare_model

__all__ = ["TorchCUDAEngine"]

logger = logging.getLogger("rtsource")

_PRECISIONS = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
Precision = Literal["fp16", "bf16", "fp32"]


@dataclass
class _Slot:
    """Everything one captured batch size needs."""

    size: int
    host_in: torch.Tensor  # pinned, (size, ...)
    host_out: torch.Tensor  # pinned, (size, ...)
    dev_in: torch.Tensor
    dev_out: torch.Tensor
    graph: torch.cuda.CUDAGraph | None


class TorchCUDAEngine(Engine):
    """Run the network with PyTorch on a CUDA device.

    Parameters
    ----------
    model : torch.nn.Module
        The network (copied to the device; the caller's module is not modified).
    batch_sizes : sequence of int
        Batch sizes to capture at construction.
    precision : {"fp16", "bf16", "fp32"}
        Autocast precision of convolutions and matmuls (normalisation stays float32).
    device : str or torch.device
        CUDA device (``"cuda"`` = current device).
    cuda_graphs : bool
        Capture one CUDA graph per batch size (default). False runs the module eagerly on
        the engine's stream (for debugging).
    warmup_iters : int
        Eager iterations before capture (cuDNN autotuning, lazy initialisation).
    """

    name = "cuda"

    def __init__(
        self,
        model: nn.Module,
        *,
        batch_sizes: Sequence[int] | int = (1,),
        precision: Precision = "fp16",
        device: str | torch.device = "cuda",
        cuda_graphs: bool = True,
        warmup_iters: int = 3,
    ) -> None:
        if not torch.cuda.is_available():
            raise RuntimeError(
                "The cuda backend needs a CUDA GPU, but torch.cuda.is_available() is False "
                f"(torch {torch.__version__}, built with CUDA {torch.version.cuda})."
            )
        if precision not in _PRECISIONS:
            raise ValueError(
                f"precision={precision!r} is not valid; choose one of {sorted(_PRECISIONS)}."
            )
        super().__init__(batch_sizes, input_shape_of(model))
        dev = torch.device(device)
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self._device = dev
        self.device = str(dev)
        self.precision = precision
        self._amp_dtype = _PRECISIONS[precision]
        self.dtype = {"fp16": "float16", "bf16": "bfloat16", "fp32": "float32"}[precision]
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(
                f"precision='bf16' is not supported on {torch.cuda.get_device_name(dev)}."
            )
        self.gpu_name = torch.cuda.get_device_name(dev)
        self.cuda_graphs = cuda_graphs
        self._model = prepare_model(model, dev)
        self._stream = torch.cuda.Stream(device=dev)
        self._pool = torch.cuda.graph_pool_handle() if cuda_graphs else None
        self._slots: dict[int, _Slot] = {}
        for size in self.batch_sizes:
            t0 = time.perf_counter()
            self._slots[size] = self._prepare(size, warmup_iters)
            logger.info(
                "cuda engine: batch %d ready on %s in %.2f s (%s, graphs=%s)",
                size,
                self.gpu_name,
                time.perf_counter() - t0,
                precision,
                cuda_graphs,
            )

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        enabled = self._amp_dtype != torch.float32
        with torch.autocast("cuda", dtype=self._amp_dtype, enabled=enabled, cache_enabled=False):
            return self._model(x).float()

    def _prepare(self, size: int, warmup_iters: int) -> _Slot:
        shape = (size, *self.input_shape)
        host_in = torch.zeros(shape, dtype=torch.float32, pin_memory=True)
        host_out = torch.zeros(shape, dtype=torch.float32, pin_memory=True)
        dev_in = torch.zeros(shape, dtype=torch.float32, device=self._device)
        stream = self._stream
        stream.wait_stream(torch.cuda.current_stream(self._device))
        # cuDNN autotuning picks the convolution algorithms during warm-up; the graph then
        # replays them. (Restored afterwards: the process-wide setting is left alone.)
        previous = torch.backends.cudnn.benchmark
        torch.backends.cudnn.benchmark = True
        try:
            with torch.inference_mode(), torch.cuda.stream(stream):
                for _ in range(max(1, warmup_iters)):
                    dev_out = self._forward(dev_in)
            stream.synchronize()
            graph = None
            if self.cuda_graphs:
                graph = torch.cuda.CUDAGraph()
                # Same stream for warm-up and capture: libraries cache handles per stream.
                with (
                    torch.inference_mode(),
                    torch.cuda.graph(graph, pool=self._pool, stream=stream),
                ):
                    dev_out = self._forward(dev_in)
                stream.synchronize()
        finally:
            torch.backends.cudnn.benchmark = previous
        return _Slot(size, host_in, host_out, dev_in, dev_out, graph)

    def _run(self, batch: np.ndarray, size: int) -> np.ndarray:
        slot = self._slots[size]
        count = batch.shape[0]
        fill_padded(slot.host_in.numpy(), batch)
        with torch.inference_mode(), torch.cuda.stream(self._stream):
            slot.dev_in.copy_(slot.host_in, non_blocking=True)
            if slot.graph is not None:
                slot.graph.replay()
            else:
                slot.dev_out = self._forward(slot.dev_in)
            slot.host_out.copy_(slot.dev_out, non_blocking=True)
        self._stream.synchronize()
        return slot.host_out.numpy()[:count].copy()

    def close(self) -> None:  # noqa: D102
        self._slots.clear()
        torch.cuda.empty_cache()
