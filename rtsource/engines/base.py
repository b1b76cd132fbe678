"""The runtime-independent part of the engines: the :class:`Engine` interface and batching."""

from __future__ import annotations

import abc
import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

__all__ = ["Engine", "model_hash", "normalise_batch_sizes", "plan_batches"]

logger = logging.getLogger("rtsource")


def normalise_batch_sizes(batch_sizes: Sequence[int] | int) -> tuple[int, ...]:
    """Validate batch sizes and return them sorted and unique."""
    if isinstance(batch_sizes, int):
        batch_sizes = (batch_sizes,)
    sizes = tuple(sorted({int(b) for b in batch_sizes}))
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch_sizes={tuple(batch_sizes)!r} must hold one or more integers ≥ 1.")
    return sizes


def plan_batches(n: int, sizes: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Split ``n`` samples over the prepared batch sizes.

    Returns a list of ``(start, count, size)``: run ``count`` samples starting at ``start``
    with a prepared batch of ``size`` (``size - count`` rows are padding). Each chunk takes
    the smallest prepared size that holds what is left, or the largest size when none does.
    """
    plan = []
    start = 0
    largest = sizes[-1]
    while start < n:
        left = n - start
        size = next((s for s in sizes if s >= left), largest)
        count = min(size, left)
        plan.append((start, count, size))
        start += count
    return plan


def model_hash(model: nn.Module, length: int = 16) -> str:
    """Hash of a module's class, configuration and weights (cache key for exports/engines)."""
    h = hashlib.sha256(type(model).__name__.encode())
    config = getattr(model, "config", None)
    if config is not None:
        h.update(repr(sorted(config.items())).encode())
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        t = tensor.detach().to("cpu").contiguous().reshape(-1)
        h.update(str(t.dtype).encode() + str(tuple(t.shape)).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:length]


class Engine(abc.ABC):
    """One way of running the refinement network on volumes.

    ``engine(vol)`` takes a float32 array of shape (B, 3, 32, 32, 32) and returns a new
    float32 array of the same shape. Any batch size works: batches are split over (and
    padded to) the prepared ``batch_sizes``.

    Attributes
    ----------
    name : str
        Backend name: ``"cpu"``, ``"eager"``, ``"onnx"``, ``"cuda"`` or ``"tensorrt"``.
    dtype : str
        Compute precision (``"float32"``, ``"float16"``, ``"bfloat16"``).
    device : str
        Where it runs (``"cpu"``, ``"cuda:0"``, ...).
    batch_sizes : tuple of int
        Batch sizes prepared at construction (compiled, captured or built).
    input_shape : tuple of int
        Shape of one sample, (3, 32, 32, 32).
    """

    name: str = "base"
    dtype: str = "float32"
    device: str = "cpu"

    def __init__(self, batch_sizes: Sequence[int] | int, input_shape: tuple[int, ...]) -> None:
        self.batch_sizes = normalise_batch_sizes(batch_sizes)
        self.input_shape = tuple(int(s) for s in input_shape)

    @abc.abstractmethod
    def _run(self, batch: np.ndarray, size: int) -> np.ndarray:
        """Run ``batch`` (≤ ``size`` rows) as one prepared batch of ``size``.

        Pads to ``size`` where the runtime needs it and returns exactly
        ``batch.shape[0]`` rows, as a new array the caller may keep.
        """

    def __call__(self, vol: np.ndarray) -> np.ndarray:
        """Refine volumes.

        Parameters
        ----------
        vol : numpy.ndarray, float32, shape (B, 3, 32, 32, 32)

        Returns
        -------
        numpy.ndarray, float32, shape (B, 3, 32, 32, 32)
        """
        if not isinstance(vol, np.ndarray):
            raise TypeError(f"{self.name} engine expects a numpy array; got {type(vol).__name__}.")
        if vol.ndim != len(self.input_shape) + 1 or tuple(vol.shape[1:]) != self.input_shape:
            raise ValueError(
                f"{self.name} engine expects volumes of shape (B, "
                f"{', '.join(map(str, self.input_shape))}); got {vol.shape}."
            )
        if vol.dtype != np.float32 or not vol.flags.c_contiguous:
            vol = np.ascontiguousarray(vol, dtype=np.float32)
        plan = plan_batches(vol.shape[0], self.batch_sizes)
        if len(plan) == 1:
            return self._run(vol, plan[0][2])
        out = np.empty_like(vol)
        for start, count, size in plan:
            out[start : start + count] = self._run(vol[start : start + count], size)
        return out

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release resources held by the engine (device memory, sessions)."""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, dtype={self.dtype!r}, "
            f"device={self.device!r}, batch_sizes={self.batch_sizes})"
        )


def pad_batch(batch: np.ndarray, size: int) -> np.ndarray:
    """Return ``batch`` zero-padded along axis 0 to ``size`` rows (no copy if already full)."""
    if batch.shape[0] == size:
        return batch
    out = np.zeros((size, *batch.shape[1:]), dtype=batch.dtype)
    out[: batch.shape[0]] = batch
    return out


def fill_padded(dest: np.ndarray, batch: np.ndarray) -> None:
    """Copy ``batch`` into the first rows of a preallocated ``dest`` and zero the rest
    (the in-place form of :func:`pad_batch`, for pinned host buffers)."""
    count = batch.shape[0]
    dest[:count] = batch
    dest[count:] = 0.0


def prepare_model(model: nn.Module, device: str | torch.device = "cpu") -> nn.Module:
    """Return an eval-mode float32 copy of ``model`` on ``device`` with gradients disabled.

    The caller's module is left untouched (engines may fold or freeze weights).
    """
    import copy

    clone = copy.deepcopy(model).to(device=device, dtype=torch.float32).eval()
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone


def input_shape_of(model: nn.Module) -> tuple[int, ...]:
    """Per-sample input shape of ``model`` (``model.input_shape`` or (3, 32, 32, 32))."""
    shape = getattr(model, "input_shape", None)
    return tuple(shape) if shape is not None else (3, 32, 32, 32)
