"""The hop scheduler: what the live pipeline publishes, decided without threads or sockets.

:class:`HopScheduler` takes the samples and capture stamps that arrived (as pulled, every
column of the input stream) and returns the region rows to publish, their stamps and the
events that happened (:meth:`HopScheduler.step`). It owns

* **input hygiene**: the sample-index channel (skipped and repeated samples), stamps that
  jump backwards or leave gaps, the measured sampling rate against the declared one, and
  units (per-column factors to volts; columns without a unit decided on the first data);
* **the hop grid**: hops end at the samples ``k`` with ``(k + 1) % hop == 0`` (``k``
  counted from the first sample since the start or a :meth:`~HopScheduler.reset`; the
  first hop at least a window long). Amplifiers push in blocks counted from their first
  sample, so a block of a hop's length is one piece. With ``schedule="arrival"`` samples
  are processed as soon as they arrive, cut at hop ends (a hop is the largest piece);
  with ``"hop"`` a partial hop waits for the rest (or for ``flush``). Both publish the same
  values: the filters carry their state, so each piece publishes exactly its new samples;
* **signal quality**: every sample passes :class:`~.quality.SignalCheck` (NaN/Inf, flat
  runs, saturation; the same rule ``localize`` applies), which carries its state across
  pieces;
* **the bad-data policy**: a piece with NaN/Inf, flat or saturated channels is withheld
  (``"flag"``), or its channels are excluded for the rest of the run and the chain rebuilt
  without them (``"exclude"``, through the ``exclude`` callable handed in); publishing
  resumes with fresh filter state once the data are good again;
* **the decimation phase**: with ``decimate = N`` only the samples with
  ``(k + 1) % N == 0`` are refined and published (every sample is filtered).

It never publishes a row that is not finite, nor the row of the first sample after a
filter (re)start when the filters include a high-pass (they start in that sample's steady
state, so it carries no signal: zero to rounding). Events are :class:`Event` records; the
pipeline turns them into markers and log lines.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, get_args

import numpy as np
from numpy.typing import NDArray

from ..config import Schedule, StreamConfig, check_value
from ..stream.lslio import INDEX_LABEL, INDEX_MODULO
from ..stream.ring import RingBuffer
from .inputs import PLAUSIBLE_VOLTS, guess_volts_factor
from .processing import MIN_CHANNELS, SourceProcessor, StageTimes
from .quality import BadDataReport, SignalCheck

__all__ = ["EVENT_KINDS", "Event", "HopScheduler", "PieceLog", "StepResult", "measured_rate",
           "window_hop"]

#: Seconds of stamps before the measured rate is compared with the declared rate.
RATE_CHECK_S = 5.0
#: Relative difference between measured and declared rate that raises a ``rate`` event.
RATE_TOLERANCE = 0.03
#: How far (seconds) the newest stamp may lie ahead of the LSL clock, and behind it beyond
#: the input buffer, before the input's clock is taken as not LSL's (Unix time, a clock
#: starting at zero...).
CLOCK_AHEAD_S = 10.0
#: Seconds of arrivals over which ``stream.timestamps = "arrival"`` takes the least delay.
ARRIVAL_WINDOW_S = 10.0
CLOCK_BEHIND_EXTRA_S = 60.0
#: Nominal rates amplifiers use: a measured rate within 1 % of one is taken as it.
COMMON_RATES = (100.0, 125.0, 128.0, 160.0, 200.0, 250.0, 256.0, 300.0, 500.0, 512.0,
                600.0, 1000.0, 1024.0, 2000.0, 2048.0, 4000.0, 4096.0, 5000.0, 8192.0,
                10000.0, 16384.0)

#: Every kind of :class:`Event` the scheduler emits.
EVENT_KINDS: tuple[str, ...] = (
    "decimation",  # first step: how many samples are refined and published
    "units",  # columns without a unit were decided (volts or microvolts)
    "input_gap",  # the sample-index channel skipped or repeated samples
    "timestamp_gap",  # stamps further apart than 2.5 sample periods
    "timestamps_backwards",  # a stamp earlier than its predecessor
    "rate_mismatch",  # the measured input rate differs from the declared rate
    "foreign_clock",  # input stamps far from the LSL clock: latency unknown
    "overflow",  # the input buffer dropped its oldest samples
    "bad_data",  # a piece held bad data: its samples are withheld
    "bad_data_end",  # data are good again; publishing resumes (filters restarted)
    "channel_excluded",  # bad channels excluded; the chain is rebuilt without them
    "kernel_ready",  # the rebuilt chain is ready
    "exclude_failed",  # the exclusion could not be done; the piece is withheld instead
    "reference_channel",  # a channel exactly zero since the start: kept as the reference
    "nonfinite_output",  # the chain produced NaN/Inf: withheld, never published
    "stop_discarded",  # buffered samples discarded at a stop deadline
)


@dataclass(frozen=True)
class Event:
    """Something the pipeline should say on the marker stream.

    Attributes
    ----------
    kind : one of :data:`EVENT_KINDS`.
    message : a sentence for people.
    fields : JSON-serialisable details (channels, stamps, counts).
    """

    kind: str
    message: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PieceLog:
    """One processed piece: ``n_new`` samples, ``n_out`` published, stage seconds."""

    n_new: int
    n_out: int
    newest_ts: float
    times: StageTimes


@dataclass
class StepResult:
    """What one :meth:`HopScheduler.step` produced.

    Attributes
    ----------
    regions : (n_out, n_regions) float32 view, valid until the next step (copy to keep).
    stamps : (n_out,) float64 capture stamps of the published rows (view, same lifetime).
    events : what happened, in order.
    pieces : one :class:`PieceLog` per processed piece (withheld pieces excluded).
    n_flagged : input samples withheld in this step.
    more : True when the step stopped at ``max_pieces`` with more pieces ready: call
        :meth:`HopScheduler.step` again (with no new samples) to continue.
    """

    regions: NDArray
    stamps: NDArray
    events: list[Event]
    pieces: list[PieceLog]
    n_flagged: int = 0
    more: bool = False


def measured_rate(measured: float) -> float:
    """The rate to adopt for a measured one: a common amplifier rate within 1 %, else the
    measurement rounded to 0.1 Hz."""
    for r in COMMON_RATES:
        if abs(measured - r) <= 0.01 * r:
            return r
    return round(measured, 1)


def window_hop(cfg: StreamConfig, sfreq: float) -> tuple[int, int]:
    """Window and hop in samples for ``cfg.window_s`` / ``cfg.hop_s`` at ``sfreq`` Hz
    (rounded, at least 1)."""
    window = max(1, math.floor(cfg.window_s * sfreq + 0.5))
    hop = max(1, math.floor(cfg.hop_s * sfreq + 0.5))
    return window, min(hop, window)


class HopScheduler:
    """The pure core of the live pipeline (see the module docstring).

    Parameters
    ----------
    processor : SourceProcessor
        The chain of stages for the input's layout.
    labels : sequence of str
        The input stream's channel labels (every column, EEG or not).
    sfreq : float
        Declared sampling rate (Hz).
    cfg : StreamConfig
        Window, hop, buffer, bad-data policy and thresholds, schedule, overflow policy.
    decimate : int
        Publish one of every ``decimate`` samples (those with ``(k + 1) % decimate == 0``).
    decimation_note : str
        Sentence explaining the decimation, sent as the first step's ``decimation`` event
        (empty: no event).
    refine_ms_per_volume : float | None
        Measured refinement time per volume, reported with the ``decimation`` event.
    schedule : ``"arrival"`` | ``"hop"`` | None
        Overrides ``cfg.schedule``.
    index_col : int | None
        Column of the sample-index channel (:data:`~rtsource.stream.lslio.INDEX_LABEL`).
    to_volts : sequence of (float | None) | None
        Per-column factor to volts (None: no unit, decided from the first samples: median
        |x| above :data:`MICROVOLT_GUESS` means microvolts). None: every column in volts.
    exclude : callable | None
        ``exclude(channels) -> SourceProcessor``: the chain rebuilt without ``channels``
        (the ``"exclude"`` policy; raise ValueError when impossible). Required for that
        policy.

    Raises
    ------
    ValueError
        For an invalid schedule or decimation, or the exclude policy without ``exclude``.
    """

    def __init__(self, processor: SourceProcessor, labels: Sequence[str], sfreq: float,
                 cfg: StreamConfig, *, decimate: int = 1, decimation_note: str = "",
                 refine_ms_per_volume: float | None = None,
                 schedule: Schedule | None = None, index_col: int | None = None,
                 to_volts: Sequence[float | None] | None = None,
                 exclude: Callable[[list[str]], SourceProcessor] | None = None) -> None:
        self.schedule = check_value(schedule or cfg.schedule, get_args(Schedule), "schedule")
        if isinstance(decimate, bool) or int(decimate) < 1:
            raise ValueError(f"decimate = {decimate!r} must be an integer >= 1.")
        if cfg.bad_data == "exclude" and exclude is None:
            raise ValueError("stream.bad_data = 'exclude' needs a way to rebuild the chain "
                             "(the exclude argument).")
        self.processor = processor
        self.labels = list(labels)
        self.sfreq = float(sfreq)
        self.cfg = cfg
        self.decimate = int(decimate)
        self.decimation_note = decimation_note
        self.refine_ms_per_volume = refine_ms_per_volume
        self.index_col = index_col
        self._exclude_fn = exclude
        n_ch = len(self.labels)
        self.window, self.hop = window_hop(cfg, self.sfreq)
        self.ring = RingBuffer.from_config(cfg, self.sfreq, n_ch, overflow=cfg.overflow)
        n_win = max(self.window, self.hop_end(0) + 1)
        self._win = np.zeros((n_win, n_ch), np.float32)
        self._win_ts = np.zeros(n_win)
        n_reg = processor.regions.n_regions
        self._out = np.zeros((4 * self.hop, n_reg), np.float32)
        self._out_ts = np.zeros(4 * self.hop)
        scale = np.ones(n_ch, np.float32)
        unknown: list[int] = []
        for i, f in enumerate(to_volts if to_volts is not None else [1.0] * n_ch):
            if f is None:
                unknown.append(i)
            else:
                scale[i] = f
        self._scale = scale
        self._apply_scale = bool(np.any(scale != 1.0))
        self._unknown = np.array([i for i in unknown if i in set(self._used_cols())], np.intp)
        self._stated = np.array([i for i in self._used_cols() if i not in set(unknown)],
                                np.intp)
        self._units_checked = len(self._stated) == 0
        self._scaled = np.zeros((0, n_ch), np.float32)
        self.excluded: list[str] = []
        self._setup_checks()
        self.n_in = self.n_out = self.n_flagged = 0
        self.n_index_gaps = self.n_duplicated = self.n_ts_gaps = self.n_backwards = 0
        self._dropped_before = 0
        #: Leading output rows of the processor's last call that were not published (the
        #: first sample after a filter start), for callers that read the processor's
        #: buffers (the volume outlet).
        self.skipped_rows = 0
        self._announced = False
        self.reset()

    # -- state ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Start a new segment (the input returned after a loss): forget buffered samples,
        context, filter state, index and stamp continuity; the hop grid and the decimation
        restart at the next sample. Counters are kept."""
        self.ring.clear()
        self._check.reset()
        self._references: set[str] = set()
        self.k = 0
        self._restart_k: int | None = 0  # first sample after a filter (re)start
        self.processor.reset()
        self._need_reset = False
        self._episode_flagged = 0
        # the last sample_index before a loss: the return's first index says what was missed
        self._resume_index = getattr(self, "_last_index", None)
        self._last_index: int | None = None
        self._last_ts: float | None = None
        self._rate_t0: float | None = None
        self._rate_n = 0
        self._rate_checked = False
        self.foreign_clock = False
        self._arr_k = 0
        self._arr_offsets: deque[tuple[float, float]] = deque()
        self._clock_checked = False
        self.measured_hz: float | None = None

    @property
    def n_dropped(self) -> int:
        """Input samples known lost: buffer overflow plus skipped sample indices."""
        return int(self.ring.n_dropped) + self.n_index_gaps + self._dropped_before

    def carry_counters(self, old: HopScheduler) -> None:
        """Continue the counters of the scheduler this one replaces (the chain rebuilt
        for another rate)."""
        self.n_in, self.n_out, self.n_flagged = old.n_in, old.n_out, old.n_flagged
        self.n_index_gaps, self.n_duplicated = old.n_index_gaps, old.n_duplicated
        self.n_ts_gaps, self.n_backwards = old.n_ts_gaps, old.n_backwards
        self._dropped_before = int(old.ring.n_dropped) + old._dropped_before

    @property
    def to_volts(self) -> NDArray:
        """Per-column factors to volts in use (units already decided)."""
        return self._scale.copy()

    def hop_end(self, k: int) -> int:
        """Index of the last sample of the hop that sample ``k`` belongs to."""
        w, h = self.window, self.hop
        first = -(-w // h) * h - 1
        return first if k <= first else (k // h + 1) * h - 1

    def _used_cols(self) -> NDArray:
        return self.processor.mapper.mapping.stream_index

    def _setup_checks(self) -> None:
        cfg = self.cfg
        self._check_cols = np.asarray(self._used_cols(), np.intp)
        self._check = SignalCheck(
            [self.labels[i] for i in self._check_cols], self.sfreq, flat_uv=cfg.flat_uv,
            flat_s=cfg.flat_s, clip_s=cfg.clip_s, range_uv=cfg.saturation_uv)

    # -- the step -------------------------------------------------------------------------
    def step(self, samples: NDArray, stamps: NDArray, *, flush: bool = False,
             deadline: float | None = None, max_pieces: int | None = None,
             clock: Callable[[], float] | None = None,
             now: float | None = None) -> StepResult:
        """Take the samples that arrived; return what to publish.

        Parameters
        ----------
        samples : (n, n_channels) array as pulled (any real dtype; every column of the
            input, in its units).
        stamps : (n,) float64 capture stamps (seconds, LSL clock).
        flush : also process a partial hop (the input paused, was lost, or a stop).
        deadline : with ``flush``, a ``clock()`` time after which samples still buffered
            are discarded (a ``stop_discarded`` event) instead of processed.
        max_pieces : handle at most this many pieces (published or withheld), so that a
            caller can publish, report and check for a stop between pieces of a backlog;
            ``StepResult.more`` says whether more were ready. None: all.
        clock : the clock ``deadline`` refers to (default ``time.monotonic``).
        now : the LSL clock (``pylsl.local_clock()``) when the samples were pulled: the
            stamps are checked against it (``foreign_clock``), and ``stream.timestamps =
            "arrival"`` re-stamps the samples from it. None: neither.

        Returns
        -------
        StepResult
            Rows to publish with their stamps, events, per-piece timings.
        """
        events: list[Event] = []
        if not self._announced:
            self._announced = True
            if self.decimation_note:
                events.append(Event("decimation", self.decimation_note,
                                    {"decimate": self.decimate,
                                     "output_rate_hz": self.sfreq / self.decimate,
                                     "refine_ms_per_volume": self.refine_ms_per_volume}))
        n = len(stamps)
        if samples.shape[0] != n:
            raise ValueError(f"{samples.shape[0]} samples but {n} stamps.")
        if n:
            stamps = np.asarray(stamps, np.float64)
            if self.cfg.timestamps == "arrival" and now is not None:
                stamps = self._arrival_stamps(n, now)
            elif now is not None and not self._clock_checked:
                self._check_clock(float(stamps[-1]), now, events)
            samples = self._ingest(samples, stamps, events)
            dropped = self.ring.write(samples, stamps)
            self.n_in += n
            if dropped:
                events.append(Event(
                    "overflow", f"The input buffer dropped {dropped} samples "
                    f"({self.ring.n_dropped} so far): processing is behind the input.",
                    {"dropped": int(self.ring.n_dropped)}))
        n_out, pieces, flagged, handled, more = 0, [], 0, 0, False
        while (avail := self.ring.n_available):
            if deadline is not None and (clock or time.monotonic)() > deadline:
                self.ring.discard(avail)
                events.append(Event(
                    "stop_discarded", f"Stopping: {avail} buffered input samples were not "
                    "processed in time (processing was behind the input); they are not "
                    "published.", {"n_samples": avail}))
                break
            need = self.hop_end(self.k) - self.k + 1
            if avail >= need:
                m = need
            elif flush or (self.schedule == "arrival" and self.k > self.hop_end(0)):
                m = avail
            else:
                break  # wait for the rest of the hop (or of the first window)
            if max_pieces is not None and handled >= max_pieces:
                more = True
                break
            handled += 1
            got, piece, fl = self._piece(m, n_out, events)
            n_out += got
            flagged += fl
            if piece is not None:
                pieces.append(piece)
        return StepResult(self._out[:n_out], self._out_ts[:n_out], events, pieces, flagged,
                          more)

    def _ingest(self, samples: NDArray, stamps: NDArray, events: list[Event]) -> NDArray:
        """Index, stamp, rate and unit checks on new samples; returns them in volts."""
        if self.index_col is not None:
            self._check_index(samples[:, self.index_col], events)
        self._check_stamps(stamps, events)
        if len(self._unknown):
            self._guess_units(samples, events)
        if not self._units_checked:
            self._check_stated_units(samples, events)
        if self._apply_scale:
            n = samples.shape[0]
            if self._scaled.shape[0] < n:
                self._scaled = np.zeros((max(n, 2 * self._scaled.shape[0]), len(self.labels)),
                                        np.float32)
            out = self._scaled[:n]
            np.multiply(samples, self._scale, out=out)
            return out
        return samples

    def _arrival_stamps(self, n: int, now: float) -> NDArray:
        """Stamps for ``n`` samples whose newest arrived at ``now`` (``stream.timestamps =
        "arrival"``): sample ``k`` of the segment gets ``offset + k / sfreq``, where
        ``offset`` is the smallest ``arrival - k / sfreq`` seen over the last
        :data:`ARRIVAL_WINDOW_S` seconds (the least-delayed arrival; a sample cannot
        arrive before it was captured, so no stamp lies in the future), kept strictly
        increasing. Samples of one chunk that arrive over several pulls keep their
        spacing at the rate."""
        k_last = self._arr_k + n - 1
        c = now - k_last / self.sfreq
        win = self._arr_offsets
        while win and win[0][0] < now - ARRIVAL_WINDOW_S:
            win.popleft()
        while win and win[-1][1] >= c:  # a monotone deque: its head is the window's min
            win.pop()
        win.append((now, c))
        stamps = win[0][1] + (self._arr_k + np.arange(n)) / self.sfreq
        self._arr_k += n
        if self._last_ts is not None and stamps[0] <= self._last_ts:
            stamps = np.maximum(stamps, self._last_ts + 1e-6 * (1 + np.arange(n)))
        return stamps

    def _check_clock(self, newest: float, now: float, events: list[Event]) -> None:
        """Is the input stamped with the LSL clock? (Checked on a segment's first samples.)"""
        self._clock_checked = True
        offset = now - newest  # how old the newest sample is
        if -CLOCK_AHEAD_S <= offset <= self.cfg.buffer_s + CLOCK_BEHIND_EXTRA_S:
            return
        self.foreign_clock = True
        events.append(Event(
            "foreign_clock",
            f"Input timestamps are {abs(offset):.4g} s {'behind' if offset > 0 else 'ahead of'} "
            "the LSL clock (stamped with another clock, such as Unix time from time.time()): "
            "latency cannot be measured and is shown as unknown, and the output's stamps "
            "follow the input's clock. Set stream.timestamps = 'arrival' (--timestamps "
            "arrival) to re-stamp samples on arrival with the LSL clock.",
            {"stamp_minus_lsl_clock_s": -offset, "newest_stamp": newest, "lsl_clock": now}))

    def _check_index(self, col: NDArray, events: list[Event]) -> None:
        idx = np.asarray(col, dtype=np.int64)
        if self._last_index is None and self._resume_index is not None:
            self._check_return(int(idx[0]), events)
        prev, self._last_index = self._last_index, int(idx[-1])
        d = np.diff(idx) % INDEX_MODULO
        first = None if prev is None else (int(idx[0]) - prev) % INDEX_MODULO
        if (first is None or first == 1) and bool((d == 1).all()):
            return  # the usual case: consecutive indices
        if first is not None:
            d = np.r_[first, d]
        bad = d != 1
        missing = int(np.sum(d[bad & (d > 1) & (d < INDEX_MODULO // 2)] - 1))
        dup = int(np.count_nonzero(d[bad] == 0))
        self.n_index_gaps += missing
        self.n_duplicated += dup
        events.append(Event(
            "input_gap",
            f"The input's {INDEX_LABEL} channel skipped {missing} and repeated {dup} "
            f"samples ({self.n_index_gaps} skipped, {self.n_duplicated} repeated so "
            "far): the sender or the network lost data.",
            {"skipped": self.n_index_gaps, "repeated": self.n_duplicated}))

    def _check_return(self, first: int, events: list[Event]) -> None:
        """The first sample_index after the input returned: a sender that kept counting
        (first above the last index before the loss) missed the indices between; one that
        restarted (counting again from 0) missed those before ``first``, sent before
        rtsource reconnected. Either way they are counted as dropped and said."""
        last, self._resume_index = self._resume_index, None
        assert last is not None
        if first > last:
            missed, how = first - last - 1, (f"it kept counting from {last} and resumed at "
                                             f"{first}")
        else:
            missed, how = first, f"it restarted and the first index received was {first}"
        if missed <= 0:
            return
        self.n_index_gaps += missed
        events.append(Event(
            "input_gap",
            f"The returning input's {INDEX_LABEL} channel shows {missed} samples that never "
            f"reached rtsource ({how}): the sender pushed them before the stream was "
            f"reconnected. They are counted as dropped ({self.n_index_gaps} so far).",
            {"skipped": self.n_index_gaps, "repeated": self.n_duplicated,
             "missed_at_return": missed}))

    def _check_stamps(self, ts: NDArray, events: list[Event]) -> None:
        prev = self._last_ts
        d = np.diff(ts)
        first = None if prev is None else float(ts[0]) - prev
        back = int(np.count_nonzero(d < 0)) + (first is not None and first < 0)
        if back:
            last_back = float(d[d < 0][-1]) if (d < 0).any() else first
            self.n_backwards += back
            events.append(Event(
                "timestamps_backwards",
                f"Input timestamps jumped backwards ({self.n_backwards} times so far, last by "
                f"{-last_back:.6f} s). Samples are kept and published with their own "
                "capture times.", {"count": self.n_backwards}))
        limit = 2.5 / self.sfreq
        gaps = int(np.count_nonzero(d > limit)) + (first is not None and first > limit)
        if gaps:
            self.n_ts_gaps += gaps
            largest = max(float(d.max()) if len(d) else 0.0, first or 0.0)
            events.append(Event(
                "timestamp_gap", f"{gaps} gaps of more than 2.5 sample periods between input "
                f"timestamps (largest {largest:.4f} s; {self.n_ts_gaps} so far).",
                {"count": self.n_ts_gaps, "largest_s": largest}))
        self._last_ts = float(ts[-1])
        # measured rate over the first RATE_CHECK_S seconds of a segment
        if self._rate_t0 is None:
            self._rate_t0, self._rate_n = float(ts[0]), 0
        self._rate_n += len(ts)
        span = float(ts[-1]) - self._rate_t0
        if (not self._rate_checked and span >= RATE_CHECK_S and self._rate_n > 1
                and self.cfg.timestamps != "arrival"):
            self._rate_checked = True
            measured = (self._rate_n - 1) / span
            if abs(measured - self.sfreq) > RATE_TOLERANCE * self.sfreq:
                rate = measured_rate(measured)
                self.measured_hz = rate
                events.append(Event(
                    "rate_mismatch", f"The input declares {self.sfreq:g} Hz but delivers "
                    f"{measured:.4g} samples/s (its timestamps over {span:.1f} s). Filters "
                    f"designed for {self.sfreq:g} Hz would pass the wrong band and the output "
                    f"would declare a rate it does not produce: rtsource continues at "
                    f"{rate:g} Hz (filters redesigned, the output re-declared; filter state "
                    "restarts). Fix the sender's declared rate.",
                    {"declared_hz": self.sfreq, "measured_hz": measured, "adopted_hz": rate}))

    def _guess_units(self, samples: NDArray, events: list[Event]) -> None:
        cols = self._unknown
        factor, med = guess_volts_factor(samples[:, cols])
        self._scale[cols] = factor
        self._apply_scale = bool(np.any(self._scale != 1.0))
        self._unknown = np.zeros(0, np.intp)
        what = "microvolts" if factor == 1e-6 else "volts"
        events.append(Event(
            "units", f"{len(cols)} EEG channels carry no voltage unit; the first samples "
            f"(median |x| = {med:.3g}) look like {what}, so they are taken as {what}; set "
            "stream.units to state them.",
            {"factor": factor, "n_channels": len(cols)}))

    def _check_stated_units(self, samples: NDArray, events: list[Event]) -> None:
        """The units the stream states (or ``stream.units``) against the first values:
        a median |x| in volts that no EEG has means the statement is wrong. Units from
        the metadata are then corrected to what the values show; units the user set are
        kept, with a warning."""
        cols = self._stated
        vals = np.abs(np.asarray(samples[:, cols], np.float64))
        vals = vals[np.isfinite(vals) & (vals > 0)]
        if vals.size == 0:
            return  # nothing to judge yet (zeros or NaN): check the next samples
        self._units_checked = True
        factor = float(np.median(self._scale[cols]))
        med = float(np.median(vals))
        lo, hi = PLAUSIBLE_VOLTS
        if lo <= med * factor <= hi:
            return
        guess, _ = guess_volts_factor(vals)
        shown = {1.0: "volts", 1e-3: "millivolts", 1e-6: "microvolts", 1e-9: "nanovolts"}
        stated = shown.get(factor, f"x{factor:g} V")
        what = shown.get(guess, f"x{guess:g} V")
        if self.cfg.units.strip().lower() == "auto":
            self._scale[cols] = guess
            self._apply_scale = bool(np.any(self._scale != 1.0))
            message = (f"The stream says its EEG is in {stated}, but its first values (median "
                       f"|x| = {med:.3g}) would be {med * factor:.3g} V, which no EEG has: they "
                       f"are {what}, and are taken as such. Fix the sender's unit, or set "
                       "stream.units (--units) to state it.")
        else:
            message = (f"stream.units = {self.cfg.units!r}, but the first values (median |x| = "
                       f"{med:.3g}) would be {med * factor:.3g} V, which no EEG has; they look "
                       f"like {what} (--units {'uV' if guess == 1e-6 else 'V'}).")
        events.append(Event("units", message, {"factor": float(self._scale[cols][0]),
                                                "stated_factor": factor,
                                                "n_channels": len(cols)}))

    def _report_references(self, events: list[Event]) -> None:
        refs = [c for c in self._check.reference_channels if c not in self._references]
        if refs:
            self._references.update(refs)
            events.append(Event(
                "reference_channel",
                f"Channel(s) {', '.join(refs)} have been exactly zero since the start: taken "
                "as the recording reference and kept (the average reference includes them). "
                "If they are broken instead, list them in stream.bads.",
                {"channels": refs}))

    def _piece(self, n: int, n_out: int, events: list[Event]
               ) -> tuple[int, PieceLog | None, int]:
        """Read ``n`` new samples, check them and process them; returns the rows appended
        at ``n_out``, the piece's log (None when withheld) and the number of samples
        withheld."""
        new, new_ts = self._win[:n], self._win_ts[:n]
        self.ring.read(n, new, new_ts)
        k0 = self.k
        self.k += n
        report = self._check(new[:, self._check_cols])
        if not report.ok and self.cfg.bad_data == "exclude" and self._exclude(report, events):
            self._restart_k = k0  # a new chain: its filters start here
            report = self._check(new[:, self._check_cols])
        self._report_references(events)
        if not report.ok:
            hint = ("" if self.cfg.bad_data == "exclude" else
                    " A channel that stays bad stops the output: leave it out (--bads, "
                    "stream.bads) or let rtsource exclude it (--bad-data exclude).")
            return 0, None, self._withhold(report.message(offset=k0) + hint,
                                           report.bad_channels, new_ts, events)
        proc = self.processor
        if self._need_reset:
            proc.reset()
            self._restart_k = k0
            self._need_reset = False
            events.append(Event(
                "bad_data_end", f"Data are good again; publishing resumes at {new_ts[0]:.6f} "
                f"({proc.restarted}) after {self._episode_flagged} withheld samples.",
                {"flagged": self._episode_flagged, "t_resume": float(new_ts[0]),
                 "state_reset": True}))
            self._episode_flagged = 0
        sel = None
        if self.decimate > 1:
            first = (self.decimate - 1 - k0) % self.decimate
            sel = np.arange(first, n, self.decimate)
            new_ts = new_ts[sel]
        _, regions = proc.process(new, keep=sel, sources=False)
        got = len(new_ts)
        if got and not np.isfinite(regions).all():
            fl = self._withhold("The processing chain produced non-finite values (overflow?).",
                                [], new_ts, events, kind="nonfinite_output")
            return 0, None, fl
        n_zero = 0
        self.skipped_rows = 0
        if self._restart_k == k0:  # the first sample after a filter (re)start
            self._restart_k = None
            if got and proc.filter.first_output_empty and (sel is None or sel[0] == 0):
                regions, new_ts = regions[1:], new_ts[1:]  # it represents no data
                got -= 1
                n_zero = 1
                self.skipped_rows = 1  # the processor's first output row is not published
                self.n_flagged += 1
        if n_out + got > len(self._out):
            size = max(n_out + got, 2 * len(self._out))
            out, out_ts = np.zeros((size, self._out.shape[1]), np.float32), np.zeros(size)
            out[:n_out], out_ts[:n_out] = self._out[:n_out], self._out_ts[:n_out]
            self._out, self._out_ts = out, out_ts
        self._out[n_out: n_out + got] = regions
        self._out_ts[n_out: n_out + got] = new_ts
        self.n_out += got
        return got, PieceLog(n, got, float(self._win_ts[n - 1]), proc.times), n_zero

    def _withhold(self, what: str, channels: list[str], ts: NDArray, events: list[Event],
                  kind: str = "bad_data") -> int:
        n = len(ts)
        self.n_flagged += n
        self._episode_flagged += n
        self._need_reset = True
        events.append(Event(
            kind, f"{what} Samples {ts[0]:.6f}-{ts[-1]:.6f} are not published "
            f"({self.n_flagged} withheld so far).",
            {"channels": channels, "t_start": float(ts[0]), "t_stop": float(ts[-1]),
             "n_samples": n}))
        return n

    def _exclude(self, report: BadDataReport, events: list[Event]) -> bool:
        """Rebuild the chain without the bad channels; True when that succeeded."""
        bad = [c for c in report.bad_channels if c not in self.excluded]
        if not bad or self._exclude_fn is None:
            return False
        remaining = len(self._check_cols) - len(bad)
        if remaining < MIN_CHANNELS:
            events.append(Event(
                "exclude_failed", f"{report.message()} Too few channels would remain "
                f"({remaining}); the window is withheld instead.", {"channels": bad}))
            return False
        excluded = self.excluded + bad
        events.append(Event(
            "channel_excluded", f"{report.message()} Excluding {', '.join(bad)} for the rest "
            f"of the run; recomputing the inverse kernel for {remaining} channels.",
            {"channels": bad, "excluded": excluded}))
        try:
            proc = self._exclude_fn(excluded)
        except ValueError as err:
            events.append(Event("exclude_failed",
                                f"Could not exclude {', '.join(bad)}: {err}", {"channels": bad}))
            return False
        if proc.regions.names != self.processor.regions.names:
            raise RuntimeError("Excluding channels changed the region list; this is a bug.")
        self.processor = proc
        self.excluded = excluded
        self._setup_checks()
        self._need_reset = False
        events.append(Event(
            "kernel_ready", f"Inverse kernel for {proc.mapper.n_used} channels ready "
            f"(excluded: {', '.join(excluded)}).",
            {"n_channels": proc.mapper.n_used, "excluded": excluded}))
        return True

