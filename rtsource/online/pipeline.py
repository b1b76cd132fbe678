"""The live pipeline: EEG from an LSL stream in, region activations out on LSL.

One processing thread runs, in order, for every pull::

    EEGInlet.pull (preallocated, clock-corrected capture times)
      -> RingBuffer (explicit overflow policy)
      -> pieces on the hop grid: the new samples, at most a hop at a time, with the
         preceding samples as context up to a full window
      -> BadDataCheck on the window (NaN/Inf, flat, saturated)
      -> SourceProcessor.process (channel mapping, causal filters, inverse kernel with the
         average reference folded in, [3D-PIUNet], atlas regions): the very chain that
         rtsource.localize runs, so both give the same numbers for the same data
      -> RegionOutlet.push (one sample per published input sample, stamped with its
         capture time)

State changes and problems go to a separate marker stream (:class:`MarkerOutlet`) as JSON.
Filters keep their state across pieces, so the window only adds context for the bad-data
check; each piece publishes exactly its new samples, and nothing is published twice.

Scheduling. Hops lie on a fixed grid counted from the first sample processed: hop ends
are the samples ``k`` with ``(k + 1) % hop == 0`` (amplifiers push in blocks counted from
their first sample, so a block of a hop's length is one piece), the first one at least a
window long. With ``schedule="arrival"`` (the default) samples are processed as soon as
they arrive, cut at hop ends (so a hop is the largest batch); with ``schedule="hop"`` a
partial hop waits for the rest (or for a pause of one hop's duration). Both publish the
same values; arrival lowers the latency when pushes do not fill whole hops.

Decimation (method ``piunet``). When the refinement network cannot keep up with every
input sample, the pipeline refines (and publishes) one of every ``N`` samples, those with
``(k + 1) % N == 0`` (``k`` counts samples since the start); every sample still
goes through the filters. ``refine.decimate = "auto"`` times the engine at start-up and
takes ``N = 1`` when refining every sample needs at most half of real time, otherwise the
smallest multiple of the hop that does; an integer forces ``N``. The outlet declares
``nominal_srate = input rate / N`` and stamps each sample with the capture time of the
EEG sample it refines. The status line and the marker stream (``rate`` every 10 s,
``falling_behind`` / ``caught_up``) report the rates achieved.

The caller's thread only starts, stops and reads :meth:`Pipeline.status`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pylsl
from numpy.typing import NDArray
from pylsl.util import TimeoutError as _LslTimeoutError

from .._util import logger, stable_hash
from .._version import __version__
from ..config import Config, load_config
from ..headmodel.montage import MontageSpec, montage_label
from ..stream.lslio import (
    INDEX_LABEL,
    INDEX_MODULO,
    EEGInlet,
    StreamLostError,
    describe_positions,
    parse_channels,
    positions_array,
    resolve_stream,
    stream_summary,
)
from ..stream.outlet import MarkerOutlet, RegionOutlet
from ..stream.ring import RingBuffer, Windower
from .preprocess import BadDataCheck, BadDataReport
from .processing import SourceProcessor

__all__ = [
    "InputSpec",
    "Pipeline",
    "PipelineStatus",
    "StageLog",
    "parse_input",
]

#: Plausible distance (metres) of scalp electrodes from the head-frame origin.
_POSITION_RADIUS_M = (0.04, 0.2)
#: Median |value| above which samples of channels without a unit are taken as microvolts.
_MICROVOLT_GUESS = 0.5
#: Refinement may use at most this fraction of real time for decimate = "auto" to refine
#: every sample (the rest is left to the inverse, LSL and jitter).
_REFINE_BUDGET = 0.5
#: Seconds between "rate" markers.
_RATE_MARKER_S = 10.0
#: On a stop, seconds spent at most on a backlog before the rest is discarded.
_STOP_DRAIN_S = 2.0
Schedule = Literal["arrival", "hop"]


# -- input specification --------------------------------------------------------------
@dataclass(frozen=True)
class InputSpec:
    """Which LSL stream to read: any combination of name, type and source_id."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None

    def __str__(self) -> str:
        return ", ".join(
            f"{k}={v!r}" for k, v in dataclasses.asdict(self).items() if v is not None
        )


def parse_input(text: str) -> InputSpec:
    """Parse ``--input``: a stream name, or ``key=value`` pairs joined by commas.

    Examples: ``"BioSemi"``, ``"type=EEG"``, ``"source_id=amp-1234"``,
    ``"name=BioSemi,type=EEG"``.
    """
    text = text.strip()
    if not text:
        raise ValueError("The input stream is empty; give a name, type=TYPE or source_id=ID.")
    if "=" not in text:
        return InputSpec(name=text)
    keys = {"name": "name", "type": "type", "source_id": "source_id", "sourceid": "source_id"}
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in keys or not value.strip():
            raise ValueError(
                f"Cannot read input {text!r}: use a stream name, or name=NAME, type=TYPE and/or "
                "source_id=ID separated by commas."
            )
        values[keys[key]] = value.strip()
    return InputSpec(**values)


# -- status ---------------------------------------------------------------------------
@dataclass
class PipelineStatus:
    """A snapshot of the pipeline (the loop refreshes rates and latency once a second).

    Attributes
    ----------
    state : str
        ``"created"``, ``"running"``, ``"waiting"`` (input lost), ``"stopped"`` or
        ``"failed"``.
    elapsed_s : float
        Seconds since the loop started.
    n_in, n_out : int
        Input samples pulled and output samples published.
    n_flagged : int
        Input samples not published because their window held bad data.
    n_dropped : int
        Input samples known lost: ring-buffer overflow plus gaps in the ``sample_index``
        channel (when the input has one).
    n_duplicated : int
        Repeated ``sample_index`` values seen.
    n_ts_gaps : int
        Gaps of more than 2.5 sample periods between consecutive input timestamps.
    n_backwards : int
        Input timestamps earlier than their predecessor.
    n_reconnects : int
        Times the input came back after being lost.
    in_rate_hz, out_rate_hz : float
        Samples per second over the last second.
    out_rate_expected_hz : float
        Output rate that the input rate calls for (``in_rate_hz / decimate``).
    decimate : int
        One of every ``decimate`` input samples is published (1: every sample).
    latency_ms : (float, float, float)
        Median, 95th percentile and maximum over the last second of (publish time - capture
        time) of the newest published sample of each processed piece, in milliseconds.
    lag_ms : float
        Largest (processing start - capture time of the newest sample) over the last
        second: how far processing trails the input.
    behind : bool
        True while processing trails the input by more than a quarter of a second (or
        five hops): the output is late and the input backlog grows.
    method, backend : str
    n_channels : int
        EEG channels used by the inverse.
    excluded : list of str
        Channels excluded because of bad data (``bad_data = "exclude"``).
    """

    state: str = "created"
    elapsed_s: float = 0.0
    n_in: int = 0
    n_out: int = 0
    n_flagged: int = 0
    n_dropped: int = 0
    n_duplicated: int = 0
    n_ts_gaps: int = 0
    n_backwards: int = 0
    n_reconnects: int = 0
    in_rate_hz: float = 0.0
    out_rate_hz: float = 0.0
    out_rate_expected_hz: float = 0.0
    decimate: int = 1
    latency_ms: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    lag_ms: float = math.nan
    behind: bool = False
    method: str = ""
    backend: str = ""
    n_channels: int = 0
    excluded: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One status line for a terminal."""
        med, p95, mx = self.latency_ms
        lat = "latency    -   " if math.isnan(med) else (
            f"latency {med:5.1f} ms (p95 {p95:5.1f}, max {mx:6.1f})"
        )
        extra = f" excluded {','.join(self.excluded)}" if self.excluded else ""
        dec = f" (1/{self.decimate} refined)" if self.decimate > 1 else ""
        by = "" if math.isnan(self.lag_ms) else f" by {self.lag_ms / 1e3:.2f} s"
        behind = (f" | BEHIND{by} (out {self.out_rate_hz:.1f} of "
                  f"{self.out_rate_expected_hz:.1f} Hz)" if self.behind else "")
        return (
            f"[{self.elapsed_s:7.1f} s] in {self.in_rate_hz:7.1f} Hz | out {self.out_rate_hz:7.1f} Hz"
            f"{dec} | {lat}{behind} | drops {self.n_dropped} | flagged {self.n_flagged}"
            f" | {self.method}/{self.backend} | {self.state}{extra}"
        )


class StageLog:
    """Per-piece timings recorded by a :class:`Pipeline` made with ``record_stages=True``.

    One row per processed piece (withheld pieces are not recorded). Columns
    (:attr:`FIELDS`): ``ts`` capture time of the newest published sample (of the newest
    sample when none was published), ``n_new`` samples processed, ``n_out`` samples
    published, ``t_pulled`` LSL clock when the pull that brought the newest sample
    returned, ``t_start`` LSL clock when processing began, ``preprocess``, ``inverse``,
    ``refine``, ``regions`` and ``push`` wall seconds, ``t_pushed`` LSL clock after the
    push.
    """

    FIELDS = ("ts", "n_new", "n_out", "t_pulled", "t_start", "preprocess", "inverse",
              "refine", "regions", "push", "t_pushed")

    def __init__(self, capacity: int = 4096) -> None:
        self._rows = np.zeros((capacity, len(self.FIELDS)))
        self.n = 0

    def append(self, row: Sequence[float]) -> None:
        if self.n == len(self._rows):
            self._rows = np.concatenate((self._rows, np.zeros_like(self._rows)))
        self._rows[self.n] = row
        self.n += 1

    def as_dict(self) -> dict[str, NDArray]:
        """Each column as an array (copies)."""
        return {f: self._rows[: self.n, i].copy() for i, f in enumerate(self.FIELDS)}


# -- the pipeline -----------------------------------------------------------------------
class Pipeline:
    """The live pipeline: LSL EEG stream -> regions on an LSL outlet (one thread).

    Parameters
    ----------
    cfg : Config | str | Path | None
        Configuration (a TOML path, or defaults when None). ``cfg.stream`` gives the input,
        output name, window, hop, filters, timeouts and bad-data policy.
    montage : MontageSpec | None
        Electrode positions. None (default): the positions in the stream's metadata when
        it carries plausible ones for its EEG channels, else ``cfg.headmodel.montage``.
        Given: used whatever the stream carries.
    input : str | InputSpec | None
        Overrides ``cfg.stream.input`` (see :func:`parse_input`).
    output : str | None
        Overrides ``cfg.stream.output`` (the region stream's name; markers go to
        ``"<output>-markers"``).
    linger_s : float
        On stop, keep the outlets alive this long after the last push so that subscribers
        can pull the last samples (liblsl drops what is unread once an outlet is gone).
    progress : bool
        Progress bars while building head model or kernel.
    pull_timeout_s : float
        Longest wait in one pull (bounds how quickly a stop request is seen).
    schedule : ``"arrival"`` | ``"hop"`` | None (``stream.schedule`` of the config)
        ``"arrival"`` (default): process samples as soon as they arrive, at most a hop at a
        time (cut at hop ends). ``"hop"``: wait until a hop is complete (or the input
        pauses for a hop's duration). Both publish the same values.
    record_stages : bool
        Record per-piece timings in :attr:`stage_log` (for benchmarks).

    Attributes
    ----------
    processor : SourceProcessor
        The chain of stages (after :meth:`open`).
    outlet : RegionOutlet
        The region stream (after :meth:`open`).
    markers : MarkerOutlet
        The marker stream (after :meth:`open`).
    inlet : EEGInlet
        The EEG input (after :meth:`open`).
    error : BaseException | None
        What ended the processing thread, if anything.
    provenance : dict
        The metadata written under ``desc/rtsource`` of the region stream.
    decimate : int
        One of every ``decimate`` input samples is refined and published (after
        :meth:`open`; 1 unless the method is piunet).
    refine_s_per_volume : float | None
        Refinement time per volume measured at start-up (piunet only).
    stage_log : StageLog | None
        Per-piece timings when ``record_stages`` is true.

    Examples
    --------
    >>> with Pipeline("configs/default.toml", input="BioSemi") as pipe:
    ...     while pipe.running:
    ...         print(pipe.wait_status(1.0).line())
    """

    def __init__(
        self,
        cfg: Config | str | Path | None = None,
        *,
        montage: MontageSpec | None = None,
        input: str | InputSpec | None = None,  # noqa: A002 - the CLI's name
        output: str | None = None,
        linger_s: float = 0.5,
        progress: bool = False,
        pull_timeout_s: float = 0.02,
        schedule: Schedule | None = None,
        record_stages: bool = False,
    ) -> None:
        self.cfg = cfg if isinstance(cfg, Config) else load_config(cfg)
        scfg = self.cfg.stream
        schedule = schedule or scfg.schedule
        if schedule not in ("arrival", "hop"):
            raise ValueError(f"schedule={schedule!r} is not valid; choose 'arrival' or 'hop'.")
        if not scfg.hop_s > 0 or not scfg.window_s > 0:
            raise ValueError(
                f"window_s = {scfg.window_s} and hop_s = {scfg.hop_s} must be positive seconds."
            )
        if scfg.hop_s > scfg.window_s:
            raise ValueError(
                f"hop_s = {scfg.hop_s} s must not exceed window_s = {scfg.window_s} s."
            )
        if isinstance(input, InputSpec):
            self.input_spec = input
        else:
            self.input_spec = parse_input(input if input is not None else scfg.input)
        self.output_name = output or scfg.output
        self.marker_name = f"{self.output_name}-markers"
        self.montage = montage
        self.linger_s = float(linger_s)
        self.progress = progress
        self.pull_timeout_s = float(pull_timeout_s)
        self.schedule: Schedule = schedule
        self.stage_log: StageLog | None = StageLog() if record_stages else None
        self.decimate = 1
        self.refine_s_per_volume: float | None = None
        self._decimation_note = ""
        self.error: BaseException | None = None
        self.inlet: EEGInlet | None = None
        self.outlet: RegionOutlet | None = None
        self.markers: MarkerOutlet | None = None
        self.processor: SourceProcessor | None = None
        self.provenance: dict[str, Any] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status = PipelineStatus(method=self.cfg.inverse.method)
        self._status_event = threading.Event()
        self._last_marker: dict[str, float] = {}
        self._opened = False
        self._closed = False

    # -- setup --------------------------------------------------------------------------
    def open(self) -> Pipeline:
        """Resolve the input, read its metadata, build the stages and open the outlets.

        Raises
        ------
        StreamNotFoundError
            (a TimeoutError) when no stream matches within ``resolve_timeout_s``.
        ValueError
            When the stream's rate or channel count differs from ``expected_srate`` /
            ``expected_channels``, when it is irregular, or when no channel matches the
            head model.
        """
        if self._opened:
            return self
        scfg = self.cfg.stream
        spec = self.input_spec
        info = resolve_stream(
            name=spec.name, type=spec.type, source_id=spec.source_id,
            timeout=scfg.resolve_timeout_s,
        )
        # Read the metadata and build every stage *before* subscribing, so that no backlog
        # piles up while head model and kernel load (or build, the first time).
        full = _full_info(info, timeout=10.0)
        self._max_chunk = max(1024, math.ceil(0.25 * max(full.nominal_srate(), 1.0)))
        try:
            self._setup(full)
            self.inlet = EEGInlet(info, max_chunk=self._max_chunk,
                                  max_buffered_s=scfg.buffer_s, clock_correction=True)
            if (self.inlet.labels, self.inlet.sfreq) != (self._labels, self.sfreq):
                raise ValueError(
                    f"Input stream {full.name()!r} changed while the pipeline was being built "
                    "(channel labels or rate differ); start again."
                )
        except BaseException:
            if self.inlet is not None:
                self.inlet.close()
            self._close_outlets()
            raise
        self._opened = True
        proc = self.processor
        assert proc is not None
        self._marker(
            "started",
            f"Reading {stream_summary(self.inlet.info)}. {self.positions_used} "
            f"{proc.mapper.describe()} Publishing {proc.regions.n_regions} regions on "
            f"{self.output_name!r} ({proc.method}, {self.backend}).",
            source_id=self.outlet.source_id if self.outlet is not None else "",
        )
        logger.info("Pipeline ready: %s -> %s.", full.name(), self.output_name)
        return self

    def _setup(self, info: pylsl.StreamInfo) -> None:
        """Build the stages and outlets for a stream's full metadata (no subscription)."""
        scfg = self.cfg.stream
        name = info.name()
        sfreq, n_ch = float(info.nominal_srate()), int(info.channel_count())
        if not sfreq > 0:
            raise ValueError(
                f"Input stream {name!r} has an irregular sampling rate (nominal_srate "
                "0); the pipeline needs a regularly sampled EEG stream."
            )
        if scfg.expected_srate is not None and not math.isclose(
            sfreq, scfg.expected_srate, rel_tol=1e-6
        ):
            raise ValueError(
                f"Input stream {name!r} samples at {sfreq:g} Hz but the configuration "
                f"expects {scfg.expected_srate:g} Hz (stream.expected_srate)."
            )
        if scfg.expected_channels is not None and n_ch != scfg.expected_channels:
            raise ValueError(
                f"Input stream {name!r} has {n_ch} channels but the configuration "
                f"expects {scfg.expected_channels} (stream.expected_channels)."
            )
        self.sfreq = sfreq
        source_id = info.source_id()
        chans = parse_channels(info)
        labels = [c.label for c in chans]
        types = [c.type for c in chans]
        self._index_col = next(
            (c.index for c in chans if c.label.lower() == INDEX_LABEL and not c.is_eeg), None
        )
        montage, self.positions_used = self._choose_montage(chans)
        # window and hop in samples (the hop grid; also the size of the refiner's batches)
        self.windower = Windower.from_config(scfg, sfreq, n_ch)
        w, h = self.windower.window, self.windower.hop
        self._refine_batches = _refine_batch_sizes(self.cfg, h)
        self.processor = proc = SourceProcessor(
            self.cfg, labels, sfreq, ch_types=types, montage=montage, on_missing="drop",
            progress=self.progress, refine_batch_sizes=self._refine_batches,
        )
        self._montage_used = montage
        self._labels, self._types = labels, types
        self._excluded: list[str] = []
        self._setup_units(chans)
        self._setup_checks()
        self.ring = RingBuffer.from_config(scfg, sfreq, n_ch, overflow=scfg.overflow)
        self.backend = _backend_name(proc)
        self._choose_decimation(proc, h)
        n_dec = self.decimate
        out_rate = sfreq / n_dec
        prov = dict(proc.provenance())
        prov.update(
            {
                "rtsource_version": __version__,
                "backend": self.backend,
                "window_s": repr(w / sfreq),
                "hop_s": repr(h / sfreq),
                "window_samples": str(w),
                "hop_samples": str(h),
                "schedule": f"{self.schedule}: " + (
                    "samples are processed as they arrive, at most a hop at a time"
                    if self.schedule == "arrival" else "samples are processed a hop at a time"),
                "output_rate_hz": repr(out_rate),
                "decimate": str(n_dec),
                "output_samples": (
                    "one per input sample (each piece publishes its new samples)" if n_dec == 1
                    else f"one per {n_dec} input samples: input samples k with (k + 1) % "
                    f"{n_dec} == 0, k counted from the first sample processed (and again "
                    "after the input returns); the others are filtered, not published"),
                "processing_delay_s": f"{proc.filter.delay_s:.6f}",
                "processing_delay": "constant group delay of the causal filters at the pass-band "
                "centre; each sample is stamped with the capture time of the EEG sample it "
                "represents",
                "timestamps": "capture time of the represented EEG sample (input stream clock, "
                "LSL time-corrected to this host)",
                "input_name": name,
                "input_type": info.type(),
                "input_srate": repr(sfreq),
                "input_channels": str(n_ch),
                "positions": self.positions_used,
                "channel_mapping": proc.mapper.describe(),
                "bad_data": scfg.bad_data,
                "ring_overflow": scfg.overflow,
                "units": self._units_text,
                "marker_stream": self.marker_name,
            }
        )
        cfg_hash = stable_hash(
            dataclasses.asdict(self.cfg), proc.headmodel.hash, proc.inverse.hash,
        )
        self.config_hash = cfg_hash
        if not source_id:
            logger.warning(
                "Input stream %r has no source_id: if it disappears, its return cannot be "
                "recognised.", name,
            )
        if proc.refiner is not None:
            prov["decimation"] = self._decimation_note
            if self.refine_s_per_volume is not None:
                prov["refine_ms_per_volume"] = f"{self.refine_s_per_volume * 1e3:.3f}"
        self.outlet = RegionOutlet(
            self.output_name, proc.regions.names, out_rate, prov, source_id, cfg_hash,
            unit=_region_unit(proc), channel_type="region",
        )
        self.provenance = {**prov, "input_source_id": source_id, "config_hash": cfg_hash}
        self.markers = MarkerOutlet(self.marker_name, f"{self.outlet.source_id}-markers")
        with self._lock:
            self._status.method = proc.method
            self._status.backend = self.backend
            self._status.n_channels = proc.mapper.n_used
            self._status.decimate = n_dec

    def _choose_decimation(self, proc: SourceProcessor, hop: int) -> None:
        """Set :attr:`decimate` from ``refine.decimate``, timing the refiner first."""
        ref = proc.refiner
        setting = self.cfg.refine.decimate
        if ref is None:
            self.decimate, self._decimation_note = 1, "no refinement: every sample is published"
            return
        if setting != "auto" and (isinstance(setting, bool) or int(setting) < 1):
            raise ValueError(
                f"refine.decimate = {setting!r} is not valid; give 'auto' or an integer >= 1 "
                "(refine one of every N samples)."
            )
        t1, t_hop = _time_refiner(ref, proc.headmodel.n_sources, hop)
        self.refine_s_per_volume = t1
        fs = self.sfreq
        per_sample = min(t1, t_hop)  # batches of a hop amortise where the engine has them
        load = fs * per_sample  # fraction of real time that refining every sample takes
        need = 1 if load <= _REFINE_BUDGET else hop * math.ceil(fs * t1 / (_REFINE_BUDGET * hop))
        timing = (f"refinement takes {t1 * 1e3:.2f} ms per volume at batch 1"
                  + (f" ({t_hop * 1e3:.2f} ms per volume in batches of {hop})"
                     if t_hop < t1 else "") + f" on {self.backend}")
        if setting == "auto":
            self.decimate = need
            self._decimation_note = (
                f"refine.decimate = auto: {timing}; refining every sample would take "
                f"{load:.0%} of real time, so "
                + ("every sample is refined." if need == 1 else
                   f"one of every {need} samples is refined and published "
                   f"({fs / need:g} Hz; refinement then takes about "
                   f"{fs * t1 / need:.0%} of real time).")
            )
        else:
            self.decimate = int(setting)
            keeps_up = fs * (per_sample if self.decimate == 1 else t1) / self.decimate <= 1.0
            self._decimation_note = (
                f"refine.decimate = {self.decimate}: {timing}; publishing "
                f"{fs / self.decimate:g} Hz" + ("." if keeps_up else
                f". This cannot keep up with {fs:g} Hz input (it needs decimate >= {need} to "
                "stay within half of real time): expect to fall behind.")
            )
        logger.info("%s", self._decimation_note)

    def _choose_montage(self, chans: Sequence[Any]) -> tuple[MontageSpec, str]:
        """Electrode positions: explicit montage > stream metadata > configuration."""
        if self.montage is not None:
            return self.montage, f"Electrode positions from the given montage " \
                                 f"{montage_label(self.montage)}."
        eeg = [c for c in chans if c.is_eeg or c.is_untyped]
        with_pos = [c for c in eeg if c.position is not None]
        if with_pos:
            pos = positions_array(with_pos)
            radius = float(np.median(np.linalg.norm(pos, axis=1)))
            lo, hi = _POSITION_RADIUS_M
            if lo <= radius <= hi and len({c.label.lower() for c in with_pos}) == len(with_pos):
                text = describe_positions(list(chans))
                if len(with_pos) < len(eeg):
                    missing = [c.label for c in eeg if c.position is None]
                    text += f" Channels without a position are left out: {', '.join(missing)}."
                    logger.warning("Input channels without a position are left out: %s.",
                                   ", ".join(missing))
                return ([c.label for c in with_pos], pos), text
            logger.warning(
                "The stream's electrode positions are implausible (median distance %.3f m from "
                "the head origin, or repeated labels); using the montage %s instead.",
                radius, self.cfg.headmodel.montage,
            )
            return self.cfg.headmodel.montage, (
                f"The stream's positions looked implausible (median radius {radius:.3f} m); "
                f"electrode positions from the configured montage {self.cfg.headmodel.montage}."
            )
        return self.cfg.headmodel.montage, (
            f"{describe_positions(list(chans))} Electrode positions from the configured montage "
            f"{self.cfg.headmodel.montage}."
        )

    def _setup_units(self, chans: Sequence[Any]) -> None:
        """Per-column factors to volts for the EEG channels used (unknown: decided on data)."""
        proc = self.processor
        assert proc is not None
        used = proc.mapper.mapping.stream_index
        scale = np.ones(len(chans), dtype=np.float32)
        unknown = []
        for i in used:
            f = chans[i].to_volts
            if f is None:
                unknown.append(int(i))
            else:
                scale[i] = f
        self._scale = scale
        self._unknown_unit_cols = np.array(unknown, dtype=np.intp)
        self._apply_scale = bool(np.any(scale != 1.0))
        units = sorted({chans[i].unit or "none" for i in used})
        self._units_text = (
            f"input units {', '.join(units)}"
            + ("; channels without a voltage unit: decided from the first samples "
               f"(median |x| > {_MICROVOLT_GUESS} means microvolts)" if unknown else "")
        )
        self._scaled = np.empty((self._max_chunk, len(chans)), dtype=np.float32)

    def _setup_checks(self) -> None:
        scfg = self.cfg.stream
        proc = self.processor
        assert proc is not None
        m = proc.mapper.mapping
        self._check_cols = m.stream_index
        self._check_names = [self._labels[i] for i in m.stream_index]
        self._bad = BadDataCheck(
            self._check_names,
            flat_v=None if scfg.flat_uv is None else scfg.flat_uv * 1e-6,
            saturation_v=None if scfg.saturation_uv is None else scfg.saturation_uv * 1e-6,
        )

    # -- running ------------------------------------------------------------------------
    def start(self, wait_for_consumer_s: float | None = None) -> Pipeline:
        """:meth:`open` if needed, then start the processing thread.

        Parameters
        ----------
        wait_for_consumer_s : float | None
            First wait up to this long for a subscriber on the region stream, so that it
            receives every output sample (the input is buffered meanwhile, nothing is lost).
        """
        if self._thread is not None:
            raise RuntimeError("The pipeline was already started.")
        self.open()
        if wait_for_consumer_s:
            assert self.outlet is not None
            deadline = time.monotonic() + float(wait_for_consumer_s)
            while (not self.outlet.have_consumers() and time.monotonic() < deadline
                   and not self._stop.wait(0.01)):
                pass
        self._t_start = time.monotonic()
        self._n_in = self._n_out = self._n_flagged = 0
        self._n_index_gaps = self._n_dup = self._n_ts_gaps = 0
        self._backwards_total = 0
        with self._lock:
            self._status.state = "running"
        self._thread = threading.Thread(target=self._run, name="rtsource-pipeline", daemon=True)
        self._thread.start()
        return self

    @property
    def running(self) -> bool:
        """True while the processing thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def request_stop(self) -> None:
        """Ask the processing thread to finish (safe from a signal handler); see :meth:`stop`."""
        self._stop.set()

    @property
    def stop_requested(self) -> bool:
        """True once :meth:`request_stop` or :meth:`stop` was called."""
        return self._stop.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the processing thread to end (error or stop); True if it ended."""
        if self._thread is None:
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def status(self) -> PipelineStatus:
        """The current status: counters are live, rates and latency refresh once a second."""
        with self._lock:
            st = dataclasses.replace(self._status, excluded=list(self._status.excluded))
        if self._thread is not None:  # counters are plain ints, safe to read while running
            st.n_in, st.n_out, st.n_flagged = self._n_in, self._n_out, self._n_flagged
            st.n_dropped = int(self.ring.n_dropped) + self._n_index_gaps
            st.n_duplicated, st.n_ts_gaps = self._n_dup, self._n_ts_gaps
            st.n_backwards = self._backwards_total
        return st

    def wait_status(self, timeout: float = 1.0) -> PipelineStatus:
        """Wait until the loop refreshes the status (about once a second), then return it."""
        self._status_event.clear()
        self._status_event.wait(timeout)
        return self.status()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop: process what is buffered, publish it, close the input, then the outlets.

        Raises
        ------
        Exception
            What ended the processing thread early, if anything (also kept in
            :attr:`error`).
        """
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"The pipeline thread did not stop within {timeout:g} s.")
        self.close()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        """Close the inlet, then (after ``linger_s``) the outlets. Idempotent."""
        if self._closed:
            return
        if self.running:
            self._stop.set()
            self._thread.join(10.0)  # type: ignore[union-attr]
        self._closed = True
        if self.inlet is not None:
            self.inlet.close()
        if self.markers is not None and self._opened:
            st = self.status()
            try:
                self._marker(
                    "stopped" if self.error is None else "error",
                    f"Pipeline stopped after {st.n_in} input and {st.n_out} output samples."
                    if self.error is None else f"Pipeline stopped on an error: {self.error}",
                    force=True, n_in=st.n_in, n_out=st.n_out,
                )
            except RuntimeError:
                pass  # marker outlet already closed
        if self.linger_s > 0 and self.outlet is not None:
            time.sleep(self.linger_s)  # let subscribers pull the last samples and markers
        self._close_outlets()
        with self._lock:
            if self._status.state not in ("failed",):
                self._status.state = "stopped"

    def _close_outlets(self) -> None:
        if self.outlet is not None:
            self.outlet.close()
        if self.markers is not None:
            self.markers.close()

    def __enter__(self) -> Pipeline:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- markers ------------------------------------------------------------------------
    def _marker(self, kind: str, message: str, *, key: str | None = None,
                min_interval_s: float = 0.0, force: bool = False, **fields: Any) -> None:
        """Publish a marker (at most one per ``min_interval_s`` for the same key)."""
        now = time.monotonic()
        key = key or kind
        if not force and now - self._last_marker.get(key, -math.inf) < min_interval_s:
            return
        self._last_marker[key] = now
        level = logger.info if kind in ("started", "stopped", "stream_returned", "status",
                                        "rate", "decimation", "caught_up") else logger.warning
        level("[%s] %s", kind, message)
        if self.markers is not None:
            self.markers.push(message, kind=kind, timestamp=pylsl.local_clock(), **fields)

    # -- the loop -----------------------------------------------------------------------
    def _run(self) -> None:
        self._tick_t = time.monotonic()
        self._tick_in = self._tick_out = 0
        self._lat: list[float] = []
        self._last_index: int | None = None
        self._last_ts: float | None = None
        self._backwards_seen = 0
        self._bad_active = False
        self._need_reset = False
        self._bad_episode_flagged = 0
        self._last_data_t = time.monotonic()
        self._hop_s = self.windower.hop / self.sfreq
        w = self.windower.window
        self._ctx = np.zeros((w, self.inlet.n_channels), dtype=np.float32)
        self._ctx_ts = np.zeros(w)
        self._ctx_n = 0
        # context + new samples: a window, or the first hop end's worth
        n_win = max(w, self._hop_end(0) + 1)
        self._win = np.zeros((n_win, self.inlet.n_channels), dtype=np.float32)
        self._win_ts = np.zeros(n_win)
        self._k = 0  # index of the next sample to process (since the start or a return)
        self._phase = self.decimate - 1  # samples k with k % decimate == phase are kept
        self._lag: list[float] = []
        self._behind_since: float | None = None
        self._t_pulled = 0.0
        try:
            if self.processor is not None and self.processor.refiner is not None:
                # here rather than in open(): subscribers usually connect between the two
                self._marker(
                    "decimation", self._decimation_note, force=True, decimate=self.decimate,
                    output_rate_hz=self.sfreq / self.decimate,
                    refine_ms_per_volume=(self.refine_s_per_volume or math.nan) * 1e3,
                )
            while not self._stop.is_set():
                try:
                    self._pull()
                except StreamLostError:
                    self._drain(final=True)
                    if not self._wait_for_return():
                        break
                    continue
                self._drain()
                self._tick()
            self._drain(final=True)
            self._tick(force=True)
        except BaseException as err:  # reported by stop() and on the marker stream
            self.error = err
            with self._lock:
                self._status.state = "failed"
            logger.error("Pipeline failed: %s", err)
            try:
                self._marker("error", f"Pipeline failed: {err}", force=True)
            except Exception:  # the marker outlet itself failed: already logged above
                logger.debug("Could not publish the error marker.", exc_info=True)
        finally:
            self._status_event.set()

    def _pull(self) -> None:
        inlet = self.inlet
        assert inlet is not None
        data, ts = inlet.pull(timeout=self.pull_timeout_s)
        n = len(ts)
        if n == 0:
            return
        self._last_data_t = time.monotonic()
        if inlet.n_backwards > self._backwards_seen:
            self._backwards_total += inlet.n_backwards - self._backwards_seen
            jump = (self._last_ts - float(ts[0])) if self._last_ts is not None else 0.0
            self._marker(
                "timestamps_backwards",
                f"Input timestamps jumped backwards ({inlet.n_backwards} times so far"
                + (f", last by {jump:.6f} s" if jump > 0 else "") + "). Samples are kept and "
                "published with their own capture times.",
                min_interval_s=1.0, count=inlet.n_backwards,
            )
            self._backwards_seen = inlet.n_backwards
        if self._last_ts is not None:
            period = 1.0 / self.sfreq
            d0 = float(ts[0]) - self._last_ts
            gaps = int(d0 > 2.5 * period)
            if n > 1:
                gaps += int(np.count_nonzero(np.diff(ts) > 2.5 * period))
            if gaps:
                self._n_ts_gaps += gaps
        self._last_ts = float(ts[-1])
        if self._index_col is not None:
            self._check_index(data[:, self._index_col])
        if len(self._unknown_unit_cols):
            self._guess_units(data)
        if self._apply_scale:
            out = self._scaled[:n]
            np.multiply(data, self._scale, out=out)
            data = out
        dropped = self.ring.write(data, ts)
        if self.stage_log is not None:
            self._t_pulled = pylsl.local_clock()
        self._n_in += n
        if dropped:
            self._marker(
                "overflow",
                f"The ring buffer dropped {dropped} samples ({self.ring.n_dropped} so far): "
                "processing is falling behind the input.",
                min_interval_s=1.0, dropped=int(self.ring.n_dropped),
            )

    def _guess_units(self, data: NDArray) -> None:
        cols = self._unknown_unit_cols
        vals = np.abs(data[:, cols])
        med = float(np.nanmedian(vals)) if np.isfinite(vals).any() else 0.0
        factor = 1e-6 if med > _MICROVOLT_GUESS else 1.0
        self._scale[cols] = factor
        self._apply_scale = bool(np.any(self._scale != 1.0))
        self._unknown_unit_cols = np.zeros(0, dtype=np.intp)
        what = "microvolts" if factor == 1e-6 else "volts"
        self._marker(
            "units",
            f"{len(cols)} EEG channels carry no voltage unit; the first samples (median |x| = "
            f"{med:.3g}) look like {what}, so they are taken as {what}.",
        )

    def _check_index(self, col: NDArray) -> None:
        idx = np.asarray(col, dtype=np.int64)
        prev = self._last_index
        seq = idx if prev is None else np.concatenate(([prev], idx))
        if len(seq) > 1:
            d = np.diff(seq) % INDEX_MODULO
            bad = d != 1
            if bad.any():
                missing = int(np.sum(d[bad & (d > 1) & (d < INDEX_MODULO // 2)] - 1))
                dup = int(np.count_nonzero(d[bad] == 0))
                self._n_index_gaps += missing
                self._n_dup += dup
                self._marker(
                    "input_gap",
                    f"The input's {INDEX_LABEL} channel skipped {missing} and repeated {dup} "
                    f"samples in this chunk ({self._n_index_gaps} skipped, {self._n_dup} repeated "
                    "so far): the sender or the network lost data.",
                    min_interval_s=1.0, skipped=self._n_index_gaps, repeated=self._n_dup,
                )
        self._last_index = int(idx[-1])

    def _hop_end(self, k: int) -> int:
        """Index of the last sample of the hop that sample ``k`` belongs to: hops end at
        ``k`` with ``(k + 1) % hop == 0``, the first one at least a window long."""
        w, h = self.windower.window, self.windower.hop
        first = -(-w // h) * h - 1
        if k <= first:
            return first
        return (k // h + 1) * h - 1

    def _drain(self, final: bool = False) -> None:
        """Process what the ring holds, in pieces that end at hop ends at the latest.

        A piece is processed once its hop is complete, or at once under
        ``schedule="arrival"`` (after the first full window), or when the input has paused
        for a hop's duration, or (``final``) before a stop and after a loss. On a stop, a
        backlog (a pipeline that fell behind) is processed for at most
        ``_STOP_DRAIN_S`` seconds; the rest is discarded and reported.
        """
        paused = final or time.monotonic() - self._last_data_t > self._hop_s
        arrival = self.schedule == "arrival"
        limit = time.monotonic() + _STOP_DRAIN_S if final and self._stop.is_set() else None
        while True:
            avail = self.ring.n_available
            if avail == 0:
                return
            if limit is not None and time.monotonic() > limit:
                self.ring.discard(avail)
                self._marker(
                    "stop_discarded",
                    f"Stopping: {avail} buffered input samples were not processed within "
                    f"{_STOP_DRAIN_S:g} s (processing was behind the input); they are not "
                    "published.", force=True, n_samples=avail,
                )
                return
            need = self._hop_end(self._k) - self._k + 1
            if avail >= need:
                n = need
            elif paused or (arrival and self._k > self._hop_end(0)):
                n = avail
            else:
                return  # wait for the rest of the hop (or of the first window)
            self._piece(n)
            if self._stop.is_set() and not final:
                return  # the final drain processes the rest
            self._tick()  # status and rate markers stay current while working off a backlog

    def _piece(self, n: int) -> None:
        """Read ``n`` new samples from the ring and handle them with the preceding samples
        as context, up to a full window."""
        keep = max(0, min(self._ctx_n, self.windower.window - n))
        m = keep + n
        win, wts = self._win[:m], self._win_ts[:m]
        if keep:
            win[:keep] = self._ctx[self._ctx_n - keep : self._ctx_n]
            wts[:keep] = self._ctx_ts[self._ctx_n - keep : self._ctx_n]
        self.ring.read(n, win[keep:], wts[keep:])
        self._handle(win, wts, n)

    def _handle(self, window: NDArray, ts: NDArray, n_new: int) -> None:
        """Check a window and publish the regions of its ``n_new`` newest samples (those
        the decimation keeps)."""
        rec = self.stage_log is not None
        t_start = pylsl.local_clock()
        k0 = self._k
        self._k += n_new
        k = min(len(window), len(self._ctx))  # context for the next piece
        self._ctx[:k] = window[-k:]
        self._ctx_ts[:k] = ts[-k:]
        self._ctx_n = k
        assert self.outlet is not None
        new, new_ts = window[-n_new:], ts[-n_new:]
        self._lag.append(t_start - float(new_ts[-1]))
        report = self._bad(np.take(window, self._check_cols, axis=1))
        if not report.ok and self.cfg.stream.bad_data == "exclude":
            if self._exclude(report):
                report = self._bad(np.take(window, self._check_cols, axis=1))
        proc = self.processor  # after a possible exclusion
        assert proc is not None
        if not report.ok:
            self._flag(report, new_ts)
            return
        if self._need_reset:
            proc.reset()
            self._need_reset = False
            self._marker(
                "bad_data_end",
                f"Data are good again; publishing resumes at {new_ts[0]:.6f} (filters restarted) "
                f"after {self._bad_episode_flagged} flagged samples.",
                force=True, flagged=self._bad_episode_flagged, t_resume=float(new_ts[0]),
            )
            self._bad_episode_flagged = 0
        n_dec = self.decimate
        keep = None
        if n_dec > 1:
            first = (self._phase - k0) % n_dec
            keep = np.arange(first, n_new, n_dec)
            new_ts = new_ts[keep]
        _, regions = proc.process(new, keep=keep)
        n_out = len(new_ts)
        t_push = 0.0
        if n_out:
            if not np.isfinite(regions).all():  # e.g. overflow inside the chain: never publish
                self._flag(BadDataReport(nonfinite={"output": [0]}, flat=[], saturated={}),
                           new_ts)
                return
            t0 = time.perf_counter()
            self.outlet.push(regions, new_ts)
            t_push = time.perf_counter() - t0
            self._n_out += n_out
            self._lat.append(pylsl.local_clock() - float(new_ts[-1]))
        if rec:
            st = proc.times
            self.stage_log.append((  # type: ignore[union-attr]
                float(new_ts[-1]) if n_out else float(ts[-1]), n_new, n_out, self._t_pulled,
                t_start, st.preprocess, st.inverse, st.refine, st.regions, t_push,
                pylsl.local_clock(),
            ))

    def _flag(self, report: BadDataReport, ts: NDArray) -> None:
        """Withhold a bad window's samples and say so on the marker stream."""
        n = len(ts)
        self._n_flagged += n
        self._bad_episode_flagged += n
        first = not self._need_reset
        self._need_reset = True
        self._marker(
            "bad_data",
            f"{report.message()} Samples {ts[0]:.6f}-{ts[-1]:.6f} are not published"
            f" ({self._n_flagged} withheld so far).",
            key="bad_data", min_interval_s=0.0 if first else 1.0,
            channels=report.bad_channels, t_start=float(ts[0]), t_stop=float(ts[-1]),
            n_samples=n,
        )

    def _exclude(self, report: BadDataReport) -> bool:
        """Rebuild the chain without the bad channels; True when that succeeded."""
        bad = [c for c in report.bad_channels if c not in self._excluded]
        if not bad:
            return False
        excluded = self._excluded + bad
        types = list(self._types)
        ex_keys = {b.lower() for b in excluded}
        for i, lab in enumerate(self._labels):
            if lab.lower() in ex_keys:
                types[i] = "bad"
        remaining = len(self._check_names) - len(bad)
        if remaining < 3:
            self._marker(
                "error",
                f"{report.message()} Too few channels would remain ({remaining}); the window is "
                "flagged instead.", key="exclude_failed", min_interval_s=1.0,
            )
            return False
        self._marker(
            "channel_excluded",
            f"{report.message()} Excluding {', '.join(bad)} for the rest of the run; "
            f"recomputing the inverse kernel for {remaining} channels (incoming data are "
            "buffered meanwhile).", force=True, channels=bad, excluded=excluded,
        )
        t0 = time.perf_counter()
        try:
            proc = SourceProcessor(
                self.cfg, self._labels, self.sfreq, ch_types=types, montage=self._montage_used,
                on_missing="drop", progress=False, refine_batch_sizes=self._refine_batches,
            )
        except ValueError as err:
            self._marker("error", f"Could not exclude {', '.join(bad)}: {err}", force=True)
            return False
        if proc.regions.names != self.processor.regions.names:  # type: ignore[union-attr]
            raise RuntimeError("Excluding channels changed the region list; this is a bug.")
        self.processor = proc
        self._excluded = excluded
        self._types = types
        self._setup_checks()
        self._need_reset = False
        with self._lock:
            self._status.excluded = list(excluded)
            self._status.n_channels = proc.mapper.n_used
        self._marker(
            "kernel_ready",
            f"Inverse kernel for {proc.mapper.n_used} channels ready in "
            f"{time.perf_counter() - t0:.1f} s (excluded: {', '.join(excluded)}).",
            force=True, n_channels=proc.mapper.n_used,
        )
        return True

    def _wait_for_return(self) -> bool:
        """After a loss: wait for the same source_id; False when asked to stop."""
        inlet = self.inlet
        assert inlet is not None
        timeout = self.cfg.stream.lost_timeout_s
        with self._lock:
            self._status.state = "waiting"
        self._marker(
            "stream_lost",
            f"Input stream {inlet.name!r} (source_id={inlet.source_id!r}) was lost after "
            f"{self._n_in} samples; waiting up to {timeout:g} s for it to return.",
            force=True, source_id=inlet.source_id, n_in=self._n_in,
        )
        if not inlet.source_id:
            raise StreamLostError(
                f"Input stream {inlet.name!r} was lost and has no source_id, so its return "
                "cannot be recognised; restart the pipeline when it is back."
            )
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise StreamLostError(
                    f"Input stream {inlet.name!r} (source_id={inlet.source_id!r}) was lost and "
                    f"did not return within stream.lost_timeout_s = {timeout:g} s."
                )
            self._tick()
            try:
                back = inlet.wait_for_return(min(0.5, remaining))
            except ValueError as err:
                raise ValueError(f"The input stream came back changed: {err}") from err
            except (StreamLostError, TimeoutError) as err:
                # a stale resolver entry of the old stream, or one that vanished again
                logger.debug("Input not back yet: %s", err)
                back = False
                self._stop.wait(0.1)
            if back:
                break
        else:
            return False
        if not math.isclose(inlet.sfreq, self.sfreq, rel_tol=1e-6):
            raise ValueError(
                f"Input stream {inlet.name!r} came back at {inlet.sfreq:g} Hz but was "
                f"{self.sfreq:g} Hz; restart the pipeline for the new rate."
            )
        # a new segment: forget partial windows, filter state and index continuity
        self.ring.clear()
        self.windower.reset()
        self._ctx_n = 0
        self._k = 0  # the hop grid and the decimation restart with the new segment
        self.processor.reset()  # type: ignore[union-attr]
        self._last_index = None
        self._last_ts = None
        self._backwards_seen = inlet.n_backwards
        with self._lock:
            self._status.state = "running"
            self._status.n_reconnects = inlet.n_reconnects
        self._marker(
            "stream_returned",
            f"Input stream {inlet.name!r} (source_id={inlet.source_id!r}) is back; processing "
            "resumes with fresh filter state.", force=True, source_id=inlet.source_id,
        )
        return True

    def _tick(self, force: bool = False) -> None:
        """Refresh the status snapshot about once a second."""
        now = time.monotonic()
        dt = now - self._tick_t
        if dt < 1.0 and not force:
            return
        lat = np.array(self._lat) * 1e3 if self._lat else None
        self._lat = []
        lag = max(self._lag) if self._lag else math.nan
        self._lag = []
        # behind: processing trails the input by more than a quarter second (or 5 hops)
        threshold = max(0.25, 5 * self._hop_s)
        was_behind = self._behind_since is not None
        behind = lag > threshold if not math.isnan(lag) else was_behind and self.ring.n_available > 0
        with self._lock:
            st = self._status
            st.elapsed_s = now - self._t_start
            if dt > 0:
                st.in_rate_hz = (self._n_in - self._tick_in) / dt
                st.out_rate_hz = (self._n_out - self._tick_out) / dt
                st.out_rate_expected_hz = st.in_rate_hz / self.decimate
            st.latency_ms = (
                (float(np.median(lat)), float(np.percentile(lat, 95)), float(lat.max()))
                if lat is not None else (math.nan, math.nan, math.nan)
            )
            st.lag_ms = lag * 1e3
            st.behind = behind
            st.n_in, st.n_out, st.n_flagged = self._n_in, self._n_out, self._n_flagged
            st.n_dropped = int(self.ring.n_dropped) + self._n_index_gaps
            st.n_duplicated = self._n_dup
            st.n_ts_gaps = self._n_ts_gaps
            st.n_backwards = self._backwards_total
            snap = dataclasses.replace(st, excluded=list(st.excluded))
        self._tick_t, self._tick_in, self._tick_out = now, self._n_in, self._n_out
        self._report_rate(snap, behind, was_behind, now, threshold)
        self._status_event.set()

    def _report_rate(self, st: PipelineStatus, behind: bool, was_behind: bool, now: float,
                     threshold: float) -> None:
        """Rates achieved on the marker stream: every 10 s, and when falling behind (every
        10 s while it lasts) or catching up."""
        fields = {
            "in_rate_hz": round(st.in_rate_hz, 3), "out_rate_hz": round(st.out_rate_hz, 3),
            "out_rate_expected_hz": round(st.out_rate_expected_hz, 3),
            "decimate": self.decimate, "declared_rate_hz": self.sfreq / self.decimate,
            "lag_ms": None if math.isnan(st.lag_ms) else round(st.lag_ms, 3),
            "latency_ms": [None if math.isnan(v) else round(v, 3) for v in st.latency_ms],
            "n_in": st.n_in, "n_out": st.n_out, "n_dropped": st.n_dropped,
        }
        rates = (f"input {st.in_rate_hz:.1f} Hz, output {st.out_rate_hz:.1f} Hz (expected "
                 f"{st.out_rate_expected_hz:.1f} Hz" + (f", one of every {self.decimate} samples"
                                                       if self.decimate > 1 else "") + ")")
        if behind and not was_behind:
            self._behind_since = now
        since = now - (self._behind_since if self._behind_since is not None else now)
        if behind:
            self._marker(
                "falling_behind",
                "Processing trails the input"
                + ("" if math.isnan(st.lag_ms) else f" by {st.lag_ms / 1e3:.2f} s")
                + f" (more than {threshold:g} s) for {since:.0f} s: {rates}. The output is "
                "late and the input backlog grows"
                + (" until the ring buffer drops samples." if self.cfg.stream.overflow ==
                   "drop_oldest" else "."),
                min_interval_s=_RATE_MARKER_S, force=not was_behind, **fields,
            )
        elif was_behind:
            self._marker("caught_up",
                         f"Processing caught up after {since:.0f} s behind: {rates}.",
                         force=True, **fields)
            self._behind_since = None
        if st.state == "running":
            self._marker("rate", f"Rates over the last second: {rates}.",
                         min_interval_s=_RATE_MARKER_S, **fields)


def _full_info(info: pylsl.StreamInfo, timeout: float) -> pylsl.StreamInfo:
    """The stream's full metadata (with ``desc``) without subscribing to its data."""
    inlet = pylsl.StreamInlet(info, max_buflen=1, recover=False)
    try:
        return inlet.info(timeout=timeout)
    except _LslTimeoutError as err:
        raise TimeoutError(
            f"LSL stream {info.name()!r} (source_id={info.source_id()!r}) was resolved but did "
            f"not send its metadata within {timeout:g} s."
        ) from err
    finally:
        del inlet


def _refine_batch_sizes(cfg: Config, hop: int) -> tuple[int, ...] | None:
    """Batch sizes for the refinement engine: (1, hop) on a GPU (a hop is the largest batch
    the pipeline hands it), else None (batch 1; compiling more sizes on a CPU costs
    start-up time and gains little)."""
    if cfg.inverse.method != "piunet" or hop <= 1:
        return None
    backend = cfg.refine.backend
    if backend in ("cuda", "tensorrt"):
        return (1, hop)
    if backend == "auto":
        import torch  # the refiner imports it anyway

        if torch.cuda.is_available():
            return (1, hop)
    return None


def _time_refiner(ref: Any, n_sources: int, hop: int, budget_s: float = 0.5
                  ) -> tuple[float, float]:
    """Seconds per volume of ``ref`` at batch 1, and per volume in batches of ``hop``
    (where the engine prepared that size; else the batch-1 figure). Medians of a few calls
    on random source vectors (at least 3, about ``budget_s`` seconds each)."""
    rng = np.random.default_rng(0)
    src = rng.standard_normal((hop, n_sources, 3)).astype(np.float32)

    def median_time(x: NDArray) -> float:
        ref(x)  # warm-up (lazy initialisation, caches)
        times: list[float] = []
        t_end = time.perf_counter() + budget_s
        while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 50):
            t0 = time.perf_counter()
            ref(x)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    t1 = median_time(src[:1])
    sizes = getattr(getattr(ref, "engine", None), "batch_sizes", (1,))
    t_hop = median_time(src) / hop if hop > 1 and hop in sizes else t1
    return t1, t_hop


def _backend_name(proc: SourceProcessor) -> str:
    """Where the per-hop compute runs (the refiner's engine for piunet)."""
    ref = proc.refiner
    if ref is None:
        return "numpy-cpu"
    for obj in (ref, getattr(ref, "engine", None)):
        for attr in ("backend", "name"):
            value = getattr(obj, attr, None) if obj is not None else None
            if isinstance(value, str) and value:
                return value
    return type(ref).__name__


def _region_unit(proc: SourceProcessor) -> str:
    method = proc.method
    if method in ("dspm", "sloreta"):
        return "dimensionless (noise-normalised)"
    return "A*m (mean current-density magnitude)" if proc.cfg.regions.mode == "magnitude" \
        else "A*m (signed, along the region's dominant orientation)"
