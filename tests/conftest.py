"""Shared test setup: a persistent per-checkout cache, single-threaded numerics, and the
``lsl`` fixture for tests that use real LSL over loopback."""

from __future__ import annotations

import json
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

    # -- commands as subprocesses -------------------------------------------------------
    @staticmethod
    def cli(*args: str):
        """``rtsource ARGS`` as a subprocess (unbuffered text pipes), as a user runs it."""
        import subprocess
        import sys

        env = dict(os.environ, PYTHONUNBUFFERED="1")
        return subprocess.Popen([sys.executable, "-m", "rtsource.cli", *args], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    @staticmethod
    def finish(proc, timeout: float = 20.0) -> tuple[int, str, str]:
        """SIGTERM (if still running) and collect the exit code and output."""
        import signal
        import subprocess

        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            raise AssertionError(f"{proc.args} did not stop on SIGTERM:\n{out}\n{err}") from None
        return proc.returncode, out, err

    # -- the live pipeline's two outlets ------------------------------------------------
    @staticmethod
    def open_pipeline(cfg, **kw):
        """Open a Pipeline, subscribe to its region and marker streams, then start it;
        returns ``(pipeline, RegionReader, MarkerReader)``."""
        from rtsource.online.pipeline import Pipeline

        pipe = Pipeline(cfg, **kw).open()
        regions = RegionReader(pipe.output_name)
        markers = MarkerReader(pipe.marker_name)
        pipe.start(wait_for_consumer_s=10.0)
        return pipe, regions, markers

    @staticmethod
    def close_all(pipe, *readers) -> None:
        """Close the readers' inlets, then the pipeline (inlets before outlets)."""
        for r in readers:
            r.close()
        pipe.close()


def _pylsl():
    import pylsl  # imported when a test uses LSL, not for every test

    return pylsl


def resolve_stream(**kw):
    from rtsource.stream.lslio import resolve_stream as resolve

    return resolve(**kw)


class RegionReader:
    """Subscriber of a pipeline's region stream (opened before data flows)."""

    def __init__(self, name: str):
        self.inlet = _pylsl().StreamInlet(resolve_stream(name=name, timeout=10.0), max_buflen=120)
        self.info = self.inlet.info(timeout=5.0)
        self.inlet.open_stream(timeout=5.0)
        self.buf = np.zeros((2048, self.info.channel_count()), dtype=np.float32)
        self.chunks, self.stamps = [], []

    def poll(self, timeout=0.05) -> int:
        _, ts = self.inlet.pull_chunk(timeout=timeout, max_samples=len(self.buf),
                                      dest_obj=self.buf, min_samples=1)
        if ts:
            self.chunks.append(self.buf[: len(ts)].copy())
            self.stamps.extend(ts)
        return len(ts)

    @property
    def n(self) -> int:
        return len(self.stamps)

    def wait_for(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.n < n and time.monotonic() < deadline:
            self.poll()
        return self.n >= n

    @property
    def data(self) -> np.ndarray:
        return np.concatenate(self.chunks) if self.chunks else self.buf[:0]

    @property
    def ts(self) -> np.ndarray:
        return np.asarray(self.stamps)

    def close(self):
        self.inlet.close_stream()


class MarkerReader:
    """Subscriber of the pipeline's marker stream; markers are JSON objects."""

    def __init__(self, name: str):
        self.inlet = _pylsl().StreamInlet(resolve_stream(name=name, timeout=10.0))
        self.info = self.inlet.info(timeout=5.0)
        self.inlet.open_stream(timeout=5.0)
        self.items: list[dict] = []

    def poll(self) -> None:
        while True:
            sample, _ = self.inlet.pull_sample(timeout=0.0)
            if sample is None:
                return
            self.items.append(json.loads(sample[0]))

    def wait_for(self, kind: str, timeout: float = 10.0, count: int = 1) -> list[dict]:
        def have():
            self.poll()
            return len(self.of(kind)) >= count

        LSLHelpers.wait_until(have, timeout=timeout, interval=0.02)
        return self.of(kind)

    def of(self, kind: str) -> list[dict]:
        return [m for m in self.items if m["kind"] == kind]

    def close(self):
        self.inlet.close_stream()



class StreamSender:
    """Push prepared samples with their own stamps on a real LSL outlet, from a thread,
    once a consumer is connected (paced at ``speed`` times real time by the rate).

    ``info`` is any StreamInfo (labels, units, bad marks, odd rates...); :meth:`stop`
    destroys the outlet (an inlet sees the stream lost).
    """

    def __init__(self, info, data, stamps, *, chunk: int = 5, speed: float = 4.0,
                 wait_for_consumer_s: float = 30.0):
        self.info = info
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.stamps = np.asarray(stamps, np.float64)
        self.chunk, self.speed = chunk, speed
        self.wait_for_consumer_s = wait_for_consumer_s
        self.n_pushed = 0
        self.error = None
        import threading

        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> StreamSender:
        self._outlet = _pylsl().StreamOutlet(self.info, chunk_size=0, max_buffered=60)
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            deadline = time.monotonic() + self.wait_for_consumer_s
            while not self._outlet.have_consumers() and time.monotonic() < deadline:
                if self._stop.wait(0.005):
                    return
            rate = self.info.nominal_srate() or 100.0
            t0 = time.monotonic()
            for k in range(0, len(self.data), self.chunk):
                due = t0 + k / (rate * self.speed)
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                self._outlet.push_chunk(self.data[k:k + self.chunk],
                                        self.stamps[k:k + self.chunk])
                self.n_pushed = min(len(self.data), k + self.chunk)
        except BaseException as err:  # surfaced by stop()
            self.error = err

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10.0)
        del self._outlet
        assert self.error is None, self.error


LSLHelpers.RegionReader = RegionReader
LSLHelpers.MarkerReader = MarkerReader
LSLHelpers.StreamSender = StreamSender


@pytest.fixture(scope="session")
def lsl() -> LSLHelpers:
    """Real-LSL test helpers: ``lsl.unique()``, ``lsl.wait_until()``, ``lsl.make_info()``,
    ``lsl.pull_until()``, ``lsl.open_pipeline()``, ``lsl.close_all()``, the readers
    ``lsl.RegionReader`` / ``lsl.MarkerReader`` and the sender ``lsl.StreamSender``."""
    return LSLHelpers()
