"""Helpers for tests that use real LSL over loopback.

Every stream gets a unique name and source_id (uuid) so parallel test runs and other
programs on the machine never cross; waits are deadline loops, never fixed sleeps.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence

import numpy as np
import pylsl

from rtsource.stream.lslio import EEGInlet


def unique(prefix: str = "rts-test") -> str:
    """A unique stream name (also usable as a source_id)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_until(cond: Callable[[], bool], timeout: float = 5.0, interval: float = 0.005) -> bool:
    """Poll ``cond`` until it is true or ``timeout`` seconds pass; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if cond():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def make_info(
    name: str,
    labels: Sequence[str],
    *,
    stype: str = "EEG",
    srate: float = 250.0,
    fmt: str = "float32",
    source_id: str | None = None,
    types: Sequence[str | None] | None = None,
    units: Sequence[str | None] | None = None,
) -> pylsl.StreamInfo:
    """StreamInfo with desc/channels/channel/{label,type,unit} filled in."""
    info = pylsl.StreamInfo(name, stype, len(labels), srate, fmt, source_id or name)
    chans = info.desc().append_child("channels")
    for k, lab in enumerate(labels):
        ch = chans.append_child("channel")
        ch.append_child_value("label", lab)
        if types is not None and types[k] is not None:
            ch.append_child_value("type", types[k])
        if units is not None and units[k] is not None:
            ch.append_child_value("unit", units[k])
    return info


def pull_until(inlet: EEGInlet, n: int, timeout: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
    """Pull from an EEGInlet until ``n`` samples arrived or the deadline passes."""
    data, ts, got = [], [], 0
    deadline = time.monotonic() + timeout
    while got < n and time.monotonic() < deadline:
        d, t = inlet.pull(timeout=0.05)
        if len(t):
            data.append(d.copy())
            ts.append(t.copy())
            got += len(t)
    if not data:
        return np.zeros((0, inlet.n_channels), inlet.dtype), np.zeros(0)
    return np.concatenate(data), np.concatenate(ts)
