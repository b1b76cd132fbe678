"""Preallocated ring buffer for (samples, timestamps).

The hot path never allocates: :class:`RingBuffer` copies each incoming chunk into a
fixed array (at most two slice assignments when the chunk wraps around the end); reads
copy into the caller's buffers. Nothing is rolled (``np.roll`` copies the whole buffer on
every chunk). Windows and hops are cut by :class:`rtsource.online.scheduler.HopScheduler`.

Not thread-safe: one thread writes and reads (the pipeline's processing thread).
"""

from __future__ import annotations

import math
from typing import get_args

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._util import logger
from ..config import OverflowPolicy, StreamConfig, check_value

OVERFLOW_POLICIES: tuple[str, ...] = get_args(OverflowPolicy)


class RingOverflowError(BufferError):
    """Raised by :meth:`RingBuffer.write` under ``overflow="error"`` when unread data
    would be overwritten. The buffer is left unchanged.

    Attributes
    ----------
    capacity : int
        Capacity of the buffer in samples.
    n_lost : int
        How many unread samples the write would have lost.
    """

    def __init__(self, message: str, capacity: int, n_lost: int) -> None:
        super().__init__(message)
        self.capacity = capacity
        self.n_lost = n_lost


class RingBuffer:
    """First-in first-out ring of multichannel samples and their timestamps.

    Parameters
    ----------
    n_channels : int
        Number of channels (columns) per sample.
    capacity : int
        Maximum number of *unread* samples held.
    dtype : dtype
        Sample dtype (default float32, as pulled from LSL). Timestamps are float64.
    overflow : ``"error"`` | ``"drop_oldest"``
        What :meth:`write` does when the unread samples would exceed ``capacity``:
        ``"error"`` raises :class:`RingOverflowError` (naming the capacity and the
        number of samples that would be lost) and writes nothing; ``"drop_oldest"``
        discards the oldest unread samples, keeps going and adds their number to
        :attr:`n_dropped`.

    Attributes
    ----------
    n_written : int
        Samples written since creation (or :meth:`clear`), dropped ones included.
    n_read : int
        Samples consumed by :meth:`read` / :meth:`discard`.
    n_dropped : int
        Samples discarded by the ``"drop_oldest"`` policy.
    """

    def __init__(
        self,
        n_channels: int,
        capacity: int,
        dtype: DTypeLike = np.float32,
        overflow: OverflowPolicy = "error",
    ) -> None:
        n_channels = int(n_channels)
        capacity = int(capacity)
        if n_channels < 1:
            raise ValueError(f"n_channels must be at least 1, got {n_channels}.")
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1 sample, got {capacity}.")
        check_value(overflow, OVERFLOW_POLICIES, "overflow")
        self.n_channels = n_channels
        self.capacity = capacity
        self.overflow: OverflowPolicy = overflow
        self.dtype = np.dtype(dtype)
        self._data = np.zeros((capacity, n_channels), dtype=self.dtype)
        self._ts = np.zeros(capacity, dtype=np.float64)
        self.clear()

    @classmethod
    def from_config(
        cls,
        cfg: StreamConfig,
        sfreq: float,
        n_channels: int,
        overflow: OverflowPolicy = "error",
    ) -> RingBuffer:
        """Ring holding ``cfg.buffer_s`` seconds of ``sfreq`` Hz data (float32)."""
        if sfreq <= 0:
            raise ValueError(f"sfreq must be positive to size the ring, got {sfreq}.")
        return cls(n_channels, max(1, math.ceil(cfg.buffer_s * sfreq)), overflow=overflow)

    def clear(self) -> None:
        """Forget all samples and reset the counters (memory is kept)."""
        self._start = 0  # index of the oldest unread sample
        self._size = 0  # number of unread samples
        self.n_written = 0
        self.n_read = 0
        self.n_dropped = 0

    @property
    def n_available(self) -> int:
        """Number of unread samples."""
        return self._size

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (
            f"<RingBuffer {self._size}/{self.capacity} samples x {self.n_channels} ch, "
            f"{self.dtype}, overflow={self.overflow!r}, dropped={self.n_dropped}>"
        )

    # -- writing ----------------------------------------------------------------------
    def write(self, chunk: NDArray, timestamps: NDArray) -> int:
        """Append a chunk of samples.

        Parameters
        ----------
        chunk : array, shape (n_samples, n_channels)
            Samples (any real dtype; cast into the buffer's dtype on copy).
        timestamps : array, shape (n_samples,)
            Timestamp of each sample (seconds, float64).

        Returns
        -------
        n_dropped : int
            Unread samples discarded by this write (always 0 under ``"error"``).

        Raises
        ------
        RingOverflowError
            Under ``overflow="error"`` when the write would exceed the capacity.
        """
        if chunk.ndim != 2 or chunk.shape[1] != self.n_channels:
            raise ValueError(
                f"chunk must have shape (n_samples, {self.n_channels}), got {chunk.shape}."
            )
        n = chunk.shape[0]
        if timestamps.shape != (n,):
            raise ValueError(
                f"timestamps must have shape ({n},) to match the chunk, got {timestamps.shape}."
            )
        if n == 0:
            return 0
        n_in = n
        cap = self.capacity
        excess = self._size + n - cap
        dropped = 0
        if excess > 0:
            if self.overflow == "error":
                raise RingOverflowError(
                    f"RingBuffer overflow: writing {n} samples to a buffer of capacity {cap} "
                    f"that holds {self._size} unread samples would lose {excess} samples. "
                    "Read faster or increase the capacity (StreamConfig.buffer_s), or use "
                    "overflow='drop_oldest'.",
                    capacity=cap,
                    n_lost=excess,
                )
            dropped = excess
            if n > cap:  # only the newest `cap` samples of the chunk survive
                chunk = chunk[n - cap :]
                timestamps = timestamps[n - cap :]
                n = cap
                self._start = 0
                self._size = 0
            else:
                self._start = (self._start + excess) % cap
                self._size -= excess
            self.n_dropped += dropped
            logger.debug(
                "RingBuffer dropped %d oldest samples (total %d).", dropped, self.n_dropped
            )
        end = (self._start + self._size) % cap
        first = min(n, cap - end)
        self._data[end : end + first] = chunk[:first]
        self._ts[end : end + first] = timestamps[:first]
        if first < n:
            self._data[: n - first] = chunk[first:]
            self._ts[: n - first] = timestamps[first:]
        self._size += n
        self.n_written += n_in
        return dropped

    # -- reading ----------------------------------------------------------------------
    def _copy_out(self, n: int, out: NDArray | None, ts_out: NDArray | None) -> None:
        cap = self.capacity
        first = min(n, cap - self._start)
        s = self._start
        if out is not None:
            out[:first] = self._data[s : s + first]
            if first < n:
                out[first:n] = self._data[: n - first]
        if ts_out is not None:
            ts_out[:first] = self._ts[s : s + first]
            if first < n:
                ts_out[first:n] = self._ts[: n - first]

    def _check_n(self, n: int) -> int:
        n = int(n)
        if n < 0 or n > self._size:
            raise ValueError(
                f"Cannot take {n} samples: the buffer holds {self._size} unread samples."
            )
        return n

    def peek(
        self, n: int, out: NDArray | None = None, ts_out: NDArray | None = None
    ) -> tuple[NDArray, NDArray]:
        """Copy the ``n`` oldest unread samples without consuming them.

        Parameters
        ----------
        n : int
            Number of samples (at most :attr:`n_available`).
        out : array, shape (>= n, n_channels) | None
            Destination for the samples; allocated when None.
        ts_out : array, shape (>= n,) | None
            Destination for the timestamps; allocated when None.

        Returns
        -------
        data : array, shape (n, n_channels)
        timestamps : array, shape (n,)
        """
        n = self._check_n(n)
        if out is None:
            out = np.empty((n, self.n_channels), dtype=self.dtype)
        if ts_out is None:
            ts_out = np.empty(n, dtype=np.float64)
        self._copy_out(n, out, ts_out)
        return out[:n], ts_out[:n]

    def read(
        self, n: int, out: NDArray | None = None, ts_out: NDArray | None = None
    ) -> tuple[NDArray, NDArray]:
        """Copy out and consume the ``n`` oldest unread samples (see :meth:`peek`)."""
        data, ts = self.peek(n, out, ts_out)
        self.discard(n)
        return data, ts

    def discard(self, n: int) -> None:
        """Consume the ``n`` oldest unread samples without copying them."""
        n = self._check_n(n)
        self._start = (self._start + n) % self.capacity
        self._size -= n
        self.n_read += n
