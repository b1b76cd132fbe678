"""The two LSL ends of a benchmark run in the parent process: the simulated amplifier
pushing EEG in real time (:class:`AmplifierPusher`) and the subscriber logging when each
region sample arrives (:class:`Subscriber`)."""

from __future__ import annotations

import threading
import time

import numpy as np
import pylsl
from numpy.typing import NDArray

from ..stream.lslio import resolve_stream

__all__ = ["AmplifierPusher", "Subscriber"]


class AmplifierPusher:
    """A simulated amplifier on a real LSL outlet, pushing once :meth:`go` is called.

    The data come from :class:`~rtsource.simulate.amplifier.SimulatedAmplifier` (its stream
    metadata too: labels, positions, the ``sample_index`` channel), generated before the
    run so that generation never delays a push. Sample ``k`` is stamped ``t0 + k / rate``
    and pushed (in chunks of ``chunk``) once that time has come; :attr:`push_time` holds
    ``pylsl.local_clock()`` right before the ``push_chunk`` call that pushed each sample
    (the reference of the latency: on a busy machine the pushing thread may be preempted
    right after the push, while the pipeline already processes the sample), and
    :attr:`push_return` the clock right after it.

    Parameters
    ----------
    montage, rate, duration_s, chunk : the stream.
    name : stream name and source_id.
    seed : seed of the simulated signal.
    """

    def __init__(self, montage: str, rate: float, duration_s: float, chunk: int, name: str,
                 seed: int = 1) -> None:
        # imported here: rtsource.simulate imports torch, and machine_info reports a GPU
        # only where the caller imported torch before
        from ..simulate.amplifier import SimulatedAmplifier

        amp = SimulatedAmplifier(montage, rate, name, source_id=name, conductor="sphere",
                                 seed=seed)
        self.name = name
        self.rate, self.chunk = float(rate), int(chunk)
        self.n = max(1, round(duration_s * rate))
        self.n_channels = amp.n_channels
        self.data = amp.generate(self.n).astype(np.float32)
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(
            amp.stream_info(), chunk_size=0, max_buffered=max(60, int(duration_s) + 60))
        self.push_time = np.full(self.n, np.nan)
        self.push_return = np.full(self.n, np.nan)
        self.t0: float | None = None
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._stop = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pusher-{name}", daemon=True)
        self._thread.start()

    def go(self) -> None:
        """Start pushing."""
        self._go.set()

    def _run(self) -> None:
        try:
            while not self._go.wait(0.05):
                if self._stop.is_set():
                    return
            outlet = self._outlet
            assert outlet is not None
            t0 = self.t0 = pylsl.local_clock() + 0.005
            ts = t0 + np.arange(self.n) / self.rate
            for k in range(0, self.n, self.chunk):
                m = min(self.chunk, self.n - k)
                delay = ts[k + m - 1] - pylsl.local_clock()
                if delay > 0 and self._stop.wait(delay):
                    return
                t_push = pylsl.local_clock()
                outlet.push_chunk(self.data[k:k + m], ts[k:k + m])
                self.push_return[k:k + m] = pylsl.local_clock()
                self.push_time[k:k + m] = t_push
        except BaseException as err:  # surfaced by close()
            self.error = err
        finally:
            self.done.set()

    def close(self) -> None:
        """Stop pushing and destroy the outlet (raises what ended the thread early)."""
        self._stop.set()
        self._go.set()
        self._thread.join(10.0)
        self._outlet = None
        if self.error is not None:
            raise RuntimeError(f"The amplifier pusher failed: {self.error}") from self.error


class Subscriber:
    """Pulls a region stream, logging each sample's capture time and arrival time."""

    def __init__(self, name: str, timeout: float = 60.0, max_buflen: int = 360) -> None:
        self.inlet = pylsl.StreamInlet(resolve_stream(name=name, timeout=timeout),
                                       max_buflen=max_buflen, recover=False)
        self.info = self.inlet.info(timeout=10.0)
        self.inlet.open_stream(timeout=10.0)
        self.offset = self.inlet.time_correction(timeout=5.0)
        self._buf = np.zeros((4096, self.info.channel_count()), dtype=np.float32)
        self._ts: list[NDArray] = []
        self._arr: list[NDArray] = []
        self.n = 0
        self.last_data = time.monotonic()

    def poll(self, timeout: float = 0.05) -> int:
        _, ts = self.inlet.pull_chunk(timeout=timeout, max_samples=len(self._buf),
                                      dest_obj=self._buf, min_samples=1)
        now = pylsl.local_clock()
        if ts:
            t = np.asarray(ts, dtype=np.float64) + self.offset
            self._ts.append(t)
            self._arr.append(np.full(len(t), now))
            self.n += len(t)
            self.last_data = time.monotonic()
        return len(ts)

    def collect(self, n_expected: int, source_done: threading.Event, idle_s: float,
                deadline_s: float) -> None:
        """Poll until ``n_expected`` samples arrived, or the source is done and nothing
        came for ``idle_s``, or ``deadline_s`` passed."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self.poll()
            if self.n >= n_expected and source_done.is_set():
                self.poll(timeout=0.2)  # anything extra (duplicates) shows up too
                return
            if source_done.is_set() and time.monotonic() - self.last_data > idle_s:
                return

    @property
    def timestamps(self) -> NDArray:
        return np.concatenate(self._ts) if self._ts else np.zeros(0)

    @property
    def arrivals(self) -> NDArray:
        return np.concatenate(self._arr) if self._arr else np.zeros(0)

    def close(self) -> None:
        self.inlet.close_stream()
