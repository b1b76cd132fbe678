"""Shared test setup: a persistent per-checkout cache, single-threaded numerics, and the
``lsl`` fixture for tests that use real LSL over loopback."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

# Before numpy/torch import: two cores are shared by LSL threads, BLAS and torch.
from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()
# Head models and kernels are cached between test runs in <repo>/.cache (ignored by git);
# a fresh clone (CI) builds them once per run.
os.environ.setdefault("RTSOURCE_CACHE", str(Path(__file__).resolve().parents[1] / ".cache"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import mne  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

if TYPE_CHECKING:
    import pylsl

    from rtsource.stream.lslio import EEGInlet

mne.set_log_level("error")


@pytest.fixture(scope="session")
def sphere_cfg():
    """Fast template: three-shell sphere, 7 mm grid, biosemi128."""
    from rtsource.config import HeadModelConfig

    return HeadModelConfig(montage="biosemi128", conductor="sphere")


@pytest.fixture(scope="session")
def sphere_model(sphere_cfg):
    from rtsource.headmodel import build_headmodel

    return build_headmodel(sphere_cfg, progress=False)


class LSLHelpers:
    """Helpers for tests that use real LSL over loopback (the ``lsl`` fixture).

    Every stream gets a unique name and source_id (uuid) so parallel test runs and other
    programs on the machine never cross; waits are deadline loops, never fixed sleeps.
    """

    @staticmethod
    def unique(prefix: str = "rts-test") -> str:
        """A unique stream name (also usable as a source_id)."""
        return f"{prefix}-{uuid.uuid4().hex[:12]}"

    @staticmethod
    def wait_until(cond: Callable[[], bool], timeout: float = 5.0,
                   interval: float = 0.005) -> bool:
        """Poll ``cond`` until it is true or ``timeout`` seconds pass; return its last value."""
        deadline = time.monotonic() + timeout
        while True:
            if cond():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)

    @staticmethod
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
        import pylsl

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

    @staticmethod
    def pull_until(inlet: EEGInlet, n: int,
                   timeout: float = 10.0) -> tuple[np.ndarray, np.ndarray]:
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


@pytest.fixture(scope="session")
def lsl() -> LSLHelpers:
    """Real-LSL test helpers: ``lsl.unique()``, ``lsl.wait_until()``, ``lsl.make_info()``,
    ``lsl.pull_until()``."""
    return LSLHelpers()
