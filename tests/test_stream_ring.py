"""RingBuffer overflow policies (no LSL)."""

from __future__ import annotations

import numpy as np
import pytest

from rtsource.stream.ring import RingBuffer, RingOverflowError


def _chunks(x: np.ndarray, t: np.ndarray, rng: np.random.Generator, max_size: int):
    pos = 0
    while pos < len(x):
        n = int(rng.integers(0, max_size + 1))
        yield x[pos : pos + n], t[pos : pos + n]
        pos += n


def test_write_read_wraps_around_in_order():
    rng = np.random.default_rng(0)
    ring = RingBuffer(3, capacity=19)  # stays <= 18 unread below
    x = rng.standard_normal((500, 3)).astype(np.float32)
    t = np.arange(500) / 100.0
    got, got_t = [], []
    for cx, ct in _chunks(x, t, rng, 9):
        ring.write(cx, ct)
        n = int(rng.integers((ring.n_available + 1) // 2, ring.n_available + 1))
        d, dt = ring.read(n)
        got.append(d.copy())
        got_t.append(dt.copy())
    d, dt = ring.read(ring.n_available)
    got.append(d)
    got_t.append(dt)
    np.testing.assert_array_equal(np.concatenate(got), x)
    np.testing.assert_array_equal(np.concatenate(got_t), t)
    assert ring.n_written == ring.n_read == 500
    assert ring.n_dropped == 0


def test_overflow_error_names_capacity_and_loss_and_keeps_buffer():
    ring = RingBuffer(2, capacity=10, overflow="error")
    x = np.arange(12, dtype=np.float32).reshape(6, 2)
    ring.write(x, np.arange(6.0))
    with pytest.raises(RingOverflowError, match=r"capacity 10.*lose 2 samples") as info:
        ring.write(x, np.arange(6.0, 12.0))
    assert info.value.capacity == 10
    assert info.value.n_lost == 2
    # nothing was written: the buffer still holds the first chunk only
    assert ring.n_available == 6
    d, t = ring.read(6)
    np.testing.assert_array_equal(d, x)
    np.testing.assert_array_equal(t, np.arange(6.0))


def test_drop_oldest_counts_and_keeps_newest():
    ring = RingBuffer(1, capacity=8, overflow="drop_oldest")
    x = np.arange(30, dtype=np.float32)[:, None]
    t = np.arange(30.0)
    assert ring.write(x[:5], t[:5]) == 0
    assert ring.write(x[5:11], t[5:11]) == 3  # 11 samples in a ring of 8
    assert ring.n_dropped == 3
    d, ts = ring.peek(ring.n_available)
    np.testing.assert_array_equal(d[:, 0], np.arange(3, 11))
    np.testing.assert_array_equal(ts, np.arange(3.0, 11.0))
    # a chunk larger than the capacity keeps only its newest samples
    assert ring.write(x[11:30], t[11:30]) == 8 + 19 - 8
    assert ring.n_dropped == 3 + 19
    d, ts = ring.read(8)
    np.testing.assert_array_equal(d[:, 0], np.arange(22, 30))
    assert ring.n_written == 30


def test_ring_rejects_bad_shapes_and_policy():
    ring = RingBuffer(4, capacity=8)
    with pytest.raises(ValueError, match=r"\(n_samples, 4\)"):
        ring.write(np.zeros((3, 5)), np.zeros(3))
    with pytest.raises(ValueError, match="timestamps"):
        ring.write(np.zeros((3, 4)), np.zeros(2))
    with pytest.raises(ValueError, match="overflow = 'wrap' is not valid.*drop_oldest"):
        RingBuffer(4, 8, overflow="wrap")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="holds 0 unread"):
        ring.read(1)


def test_from_config_sizes_in_samples():
    from rtsource.config import StreamConfig

    cfg = StreamConfig(window_s=0.025, hop_s=0.010, buffer_s=2.0)
    ring = RingBuffer.from_config(cfg, 500.0, 3)
    assert ring.capacity == 1000 and ring.n_channels == 3
