"""The live pipeline: EEG from an LSL stream in, region activations out on LSL.

The thin threaded shell around the pure stages. One processing thread runs, for every pull::

    EEGInlet.pull (preallocated, clock-corrected capture times)
      -> HopScheduler.step (input hygiene, hop grid, context window, bad-data policy,
         decimation; SourceProcessor: channel mapping, causal filters, inverse kernel with
         the average reference folded in, [3D-PIUNet], atlas regions)
      -> RegionOutlet.push (the rows it returns, stamped with their capture times)
      -> MarkerOutlet (the events it returns, as JSON markers)

Everything that decides *what* is published lives in :class:`~.scheduler.HopScheduler`
and is tested without threads or LSL; this module owns only the thread, the inlet, the
outlets, the markers, the status and the recovery when the input is lost.

Decimation (method ``piunet``): when the network cannot keep up with every input sample,
one of every ``N`` samples is refined and published (:func:`~.refine.choose_decimation`);
the outlet declares ``nominal_srate = input rate / N``. The status line and the marker
stream (``rate`` every 10 s, ``falling_behind`` / ``caught_up``) report the rates achieved.

The caller's thread only starts, stops and reads :meth:`Pipeline.status`.
"""

from __future__ import annotations

import dataclasses
import math
import threading
import time
from pathlib import Path
from typing import Any, get_args

import numpy as np
import pylsl
from numpy.typing import NDArray
from pylsl.util import TimeoutError as _LslTimeoutError

from .._util import logger, stable_hash
from .._version import __version__
from ..config import Config, Schedule, check_value, load_config
from ..headmodel.montage import MontageSpec
from ..stream.lslio import (
    INDEX_LABEL,
    EEGInlet,
    StreamLostError,
    parse_channels,
    resolve_stream,
    stream_summary,
)
from ..stream.outlet import MarkerOutlet, RegionOutlet
from .inputs import (
    InputSpec,
    bad_channels,
    channel_labels,
    check_stream,
    choose_montage,
    input_units,
    parse_input,
)
from .processing import SourceProcessor
from .refine import choose_decimation, refine_batch_sizes
from .scheduler import Event, HopScheduler, StepResult, window_hop
from .status import PipelineStatus, StageLog
from .volume import VolumePublisher, volume_unit

__all__ = ["InputSpec", "Pipeline", "PipelineStatus", "StageLog", "parse_input"]

#: Seconds between "rate" markers.
_RATE_MARKER_S = 10.0
#: On a stop, seconds spent at most on a backlog before the rest is discarded.
_STOP_DRAIN_S = 2.0
#: Markers sent at most once per this many seconds per kind (others: every event).
_MARKER_INTERVAL_S = {"input_gap": 1.0, "timestamps_backwards": 1.0, "overflow": 1.0,
                      "timestamp_gap": 10.0, "exclude_failed": 1.0}
#: Marker kinds logged at INFO (others at WARNING).
_INFO_KINDS = frozenset({"started", "stopped", "stream_returned", "status", "rate",
                         "decimation", "caught_up", "kernel_ready", "bad_data_end", "units",
                         "reference_channel"})


# -- the pipeline ----------------------------------------------------------------------
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
        scfg = self.cfg.stream  # validated by StreamConfig itself
        schedule = check_value(schedule or scfg.schedule, get_args(Schedule), "schedule")
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
        self.scheduler: HopScheduler | None = None
        self.error: BaseException | None = None
        self.inlet: EEGInlet | None = None
        self.outlet: RegionOutlet | None = None
        self.markers: MarkerOutlet | None = None
        self.processor: SourceProcessor | None = None
        self.provenance: dict[str, Any] = {}
        self.volume: VolumePublisher | None = None  # stream.volume_hz: the volume outlet
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._status = PipelineStatus(method=self.cfg.method)
        self._status_event = threading.Event()
        self._last_marker: dict[str, float] = {}
        self._pending_rate: tuple[float, str] | None = None
        if self.cfg.stream.timestamps == "arrival":
            self._status.clock = "arrival"
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
            if (self.inlet.labels, self.inlet.sfreq) != (self._stream_labels,
                                                         self.declared_sfreq):
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
        """Read a stream's full metadata (labels, bad channels, positions, units) and build
        the stages and outlets for it (no subscription)."""
        scfg = self.cfg.stream
        name = info.name()
        sfreq, n_ch = check_stream(name, float(info.nominal_srate()),
                                   int(info.channel_count()), scfg,
                                   "string" if info.channel_format() == pylsl.cf_string
                                   else "numeric")
        self.declared_sfreq = sfreq
        self._info = info
        source_id = info.source_id()
        stream_chans = parse_channels(info)
        self._stream_labels = [c.label for c in stream_chans]
        chans, self._labels_text = channel_labels(name, stream_chans, scfg,
                                                  self.montage or self.cfg.headmodel.montage)
        bads, self._bads_text = bad_channels(chans, scfg)
        if bads:
            logger.info("Leaving out bad channels: %s.", self._bads_text)
        labels = [c.label for c in chans]
        bad_keys = {b.lower() for b in bads}
        types = ["bad" if c.label.lower() in bad_keys else c.type for c in chans]
        self._index_col = next(
            (c.index for c in chans if c.label.lower() == INDEX_LABEL and not c.is_eeg), None
        )
        montage, self.positions_used = choose_montage(
            [c for c in chans if c.label.lower() not in bad_keys], self.montage,
            self.cfg.headmodel.montage)
        self._montage_used = montage
        self._labels, self._types, self._chans = labels, types, chans
        self._no_samples = (np.zeros((0, n_ch), np.float32), np.zeros(0))  # flushes
        if not source_id:
            logger.warning(
                "Input stream %r has no source_id: if it disappears, its return cannot be "
                "recognised.", name,
            )
        self._build(sfreq, None)
        assert self.outlet is not None
        self.markers = MarkerOutlet(self.marker_name, f"{self.outlet.source_id}-markers")
        with self._lock:
            self._status.declared_hz = sfreq

    def _build(self, sfreq: float, to_volts: list[float | None] | None) -> None:
        """The chain, scheduler and region outlet for the input at ``sfreq`` Hz (the
        declared rate, or the measured one after a rate mismatch). ``to_volts``: unit
        factors already decided (None: from the metadata)."""
        scfg, info = self.cfg.stream, self._info
        self.sfreq = sfreq
        # window and hop in samples (the hop grid; also the size of the refiner's batches)
        w, h = window_hop(scfg, sfreq)
        self._refine_batches = refine_batch_sizes(self.cfg.refine, h)
        self.processor = proc = SourceProcessor(
            self.cfg, self._labels, sfreq, ch_types=self._types, montage=self._montage_used,
            on_missing="drop", progress=self.progress, refine_batch_sizes=self._refine_batches,
        )
        meta_volts, self._units_text = input_units(
            self._chans, proc.mapper.mapping.stream_index, scfg.units)
        self.backend = _backend_name(proc)
        note = "no refinement: every sample is published"
        if proc.refiner is not None:
            self.decimate, note, self.refine_s_per_volume = choose_decimation(
                proc.refiner, proc.headmodel.n_sources, sfreq, h, self.cfg.refine.decimate)
        elif proc.temporal is not None:
            self.decimate = proc.decimate
            note = (f"the temporal network runs at {proc.temporal.model_sfreq:g} Hz: one of every "
                    f"{self.decimate} samples (after a causal anti-alias low-pass) is published")
        self._decimation_note = note
        decimated = proc.refiner is not None or proc.temporal is not None
        self.scheduler = HopScheduler(
            proc, self._labels, sfreq, scfg, decimate=self.decimate,
            decimation_note=note if decimated else "",
            refine_ms_per_volume=None if self.refine_s_per_volume is None
            else self.refine_s_per_volume * 1e3,
            schedule=self.schedule, index_col=self._index_col,
            to_volts=to_volts if to_volts is not None else meta_volts,
            exclude=self._rebuild_without,
        )
        n_dec = self.decimate
        prov = _provenance(proc, info, sfreq, self.backend, w, h, self.schedule, n_dec, scfg,
                           positions=self.positions_used, units=self._units_text,
                           marker_stream=self.marker_name)
        prov["channel_labels"] = self._labels_text
        prov["bad_channels"] = self._bads_text
        cfg_hash = stable_hash(
            dataclasses.asdict(self.cfg), proc.headmodel.hash, proc.inverse.hash,
        )
        self.config_hash = cfg_hash
        if decimated:
            prov["decimation"] = note
            if self.refine_s_per_volume is not None:
                prov["refine_ms_per_volume"] = f"{self.refine_s_per_volume * 1e3:.3f}"
        if self.outlet is not None:  # re-declared at a new rate: same name and source_id
            self.outlet.close()
        if scfg.volume_hz:
            prov["volume_stream"] = f"{self.output_name}-volume"
        self.outlet = RegionOutlet(
            self.output_name, proc.regions.names, sfreq / n_dec, prov, info.source_id(),
            cfg_hash, unit=_region_unit(proc), channel_type="region",
        )
        if self.volume is not None:  # rebuilt at another rate
            self.volume.close()
            self.volume = None
        if scfg.volume_hz:
            self.volume = VolumePublisher(
                proc, f"{self.output_name}-volume", sfreq / n_dec, scfg.volume_hz,
                {**prov, "input_source_id": info.source_id(), "config_hash": cfg_hash},
                f"{self.outlet.source_id}-volume", volume_unit(proc.method))
        self.provenance = {**prov, "input_source_id": info.source_id(), "config_hash": cfg_hash}
        self._hop_s = h / sfreq
        with self._lock:
            self._status.method = proc.method
            self._status.backend = self.backend
            self._status.n_channels = proc.mapper.n_used
            self._status.decimate = n_dec
            self._status.sfreq = sfreq

    def _adopt_rate(self, rate: float, message: str) -> None:
        """The input delivers ``rate`` Hz, not what it declares: process what is buffered,
        then rebuild filters, hop grid and outlet for ``rate`` (the outlet keeps its name
        and source_id, so subscribers reconnect)."""
        old = self.scheduler
        assert old is not None
        while True:  # piece by piece, as the loop publishes
            res = old.step(*self._no_samples, flush=True, max_pieces=1)
            self._publish_step(res, 0.0, pylsl.local_clock())
            if not res.more:
                break
        self._build(rate, [float(f) for f in old.to_volts])
        assert self.scheduler is not None
        self.scheduler.carry_counters(old)
        with self._lock:
            self._status.warnings.append(message)
        self._marker("rate_adopted",
                     f"Now processing at {rate:g} Hz (declared {self.declared_sfreq:g} Hz): "
                     f"filters redesigned and the region stream re-declared at "
                     f"{rate / self.decimate:g} Hz.", force=True,
                     declared_hz=self.declared_sfreq, adopted_hz=rate)

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
            st = dataclasses.replace(self._status, excluded=list(self._status.excluded),
                                     warnings=list(self._status.warnings))
        if self._thread is not None:  # counters are plain ints, safe to read while running
            self._fill_counters(st)
        return st

    def _fill_counters(self, st: PipelineStatus) -> None:
        s = self.scheduler
        if s is not None:
            st.n_in, st.n_out, st.n_flagged, st.n_dropped = s.n_in, s.n_out, s.n_flagged, \
                s.n_dropped
            st.n_duplicated, st.n_ts_gaps, st.n_backwards = s.n_duplicated, s.n_ts_gaps, \
                s.n_backwards

    @property
    def window(self) -> int:
        """Window length in samples (the context checked for bad data)."""
        assert self.scheduler is not None, "open() the pipeline first"
        return self.scheduler.window

    @property
    def hop(self) -> int:
        """Hop in samples."""
        assert self.scheduler is not None, "open() the pipeline first"
        return self.scheduler.hop

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
        if self.volume is not None:
            self.volume.close()
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
        level = logger.info if kind in _INFO_KINDS else logger.warning
        level("[%s] %s", kind, message)
        if self.markers is not None:
            self.markers.push(message, kind=kind, timestamp=pylsl.local_clock(), **fields)

    # -- the loop ---
    def _run(self) -> None:
        self._tick_t = time.monotonic()
        self._tick_in = self._tick_out = 0
        self._lat: list[float] = []
        self._behind_since: float | None = None
        self._prev_lag: float | None = None
        self._tick_flagged = 0
        self._in_bad_episode = False
        self._last_data_t = time.monotonic()
        self._hop_s = self.hop / self.sfreq
        try:
            self._process(*self._no_samples)  # start-up events (decimation) before any data
            while not self._stop.is_set():
                try:
                    data, ts = self.inlet.pull(timeout=self.pull_timeout_s)  # type: ignore[union-attr]
                except StreamLostError:
                    self._process(*self._no_samples, flush=True)
                    if not self._wait_for_return():
                        break
                    continue
                if len(ts):
                    self._last_data_t = time.monotonic()
                paused = time.monotonic() - self._last_data_t > self._hop_s
                self._process(data, ts, flush=paused)
                self._tick()
            self._process(*self._no_samples, flush=True,
                          deadline=time.monotonic() + _STOP_DRAIN_S)
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

    def _process(self, data: NDArray, ts: NDArray, *, flush: bool = False,
                 deadline: float | None = None) -> None:
        """Hand the pulled samples to the scheduler; push what it returns; publish its
        events as markers."""
        sched = self.scheduler
        assert sched is not None and self.outlet is not None
        rec = self.stage_log is not None
        t_pulled = pylsl.local_clock() if rec else 0.0
        while True:
            t_start = pylsl.local_clock()
            # one piece per step: a backlog is published, reported and interruptible piece
            # by piece (a slow refiner can take long over a pull's worth of samples)
            res = sched.step(data, ts, flush=flush, deadline=deadline, max_pieces=1,
                             now=t_start)
            self._publish_step(res, t_pulled, t_start)
            if self._pending_rate is not None:  # the input delivers another rate
                rate, message = self._pending_rate
                self._pending_rate = None
                self._adopt_rate(rate, message)
                return
            if not res.more or (self._stop.is_set() and deadline is None):
                return
            data, ts = data[:0], ts[:0]
            self._tick()

    def _publish_step(self, res: StepResult, t_pulled: float, t_start: float) -> None:
        sched = self.scheduler
        assert sched is not None and self.outlet is not None
        rec = self.stage_log is not None
        t_push = 0.0
        lsl_clock = not sched.foreign_clock  # else latency cannot be measured
        if len(res.stamps):
            t0 = time.perf_counter()
            self.outlet.push(res.regions, res.stamps)
            t_push = time.perf_counter() - t0
            if lsl_clock:
                self._lat.append(pylsl.local_clock() - float(res.stamps[-1]))
            if self.volume is not None:  # after the regions: never delays them
                self.volume.publish(sched.processor, res.stamps, sched.skipped_rows)
        if rec:
            t_pushed = pylsl.local_clock()
            for j, piece in enumerate(res.pieces):
                st = piece.times
                last = j == len(res.pieces) - 1
                self.stage_log.append((  # type: ignore[union-attr]
                    piece.newest_ts, piece.n_new, piece.n_out, t_pulled, t_start,
                    st.preprocess, st.inverse, st.refine, st.regions,
                    t_push if last else 0.0, t_pushed))
        if sched.processor is not self.processor:  # channels were excluded
            self.processor = sched.processor
            with self._lock:
                self._status.excluded = list(sched.excluded)
                self._status.n_channels = sched.processor.mapper.n_used
        for ev in res.events:
            self._publish(ev)

    def _publish(self, ev: Event) -> None:
        """An event from the scheduler as a marker (rate-limited per kind)."""
        kind = ev.kind
        if kind in ("bad_data", "nonfinite_output"):
            first = not self._in_bad_episode
            self._in_bad_episode = True
            self._marker(kind, ev.message, key="bad_data",
                         min_interval_s=0.0 if first else 1.0, **ev.fields)
            return
        if kind == "bad_data_end":
            self._in_bad_episode = False
        if kind == "rate_mismatch":
            self._pending_rate = (float(ev.fields["adopted_hz"]), ev.message)
        if kind == "foreign_clock":
            with self._lock:
                self._status.clock = "foreign"
                self._status.warnings.append(ev.message)
        interval = _MARKER_INTERVAL_S.get(kind)
        self._marker(kind, ev.message, min_interval_s=interval or 0.0,
                     force=interval is None, **ev.fields)

    def _rebuild_without(self, excluded: list[str]) -> SourceProcessor:
        """The chain for the same input without the ``excluded`` channels (a new kernel)."""
        keys = {b.lower() for b in excluded}
        types = ["bad" if lab.lower() in keys else typ
                 for lab, typ in zip(self._labels, self._types, strict=True)]
        return SourceProcessor(
            self.cfg, self._labels, self.sfreq, ch_types=types, montage=self._montage_used,
            on_missing="drop", progress=False, refine_batch_sizes=self._refine_batches,
        )

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
            f"{self.scheduler.n_in} samples; waiting up to {timeout:g} s for it to return.",
            force=True, source_id=inlet.source_id, n_in=self.scheduler.n_in,
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
        if not math.isclose(inlet.sfreq, self.declared_sfreq, rel_tol=1e-6):
            raise ValueError(
                f"Input stream {inlet.name!r} came back at {inlet.sfreq:g} Hz but was "
                f"{self.declared_sfreq:g} Hz; restart the pipeline for the new rate."
            )
        # a new segment: buffered samples, context, filter state, index and stamp
        # continuity are forgotten; the hop grid and the decimation restart
        self.scheduler.reset()  # type: ignore[union-attr]
        self._last_data_t = time.monotonic()
        with self._lock:
            self._status.state = "running"
            self._status.n_reconnects = inlet.n_reconnects
        self._marker(
            "stream_returned",
            f"Input stream {inlet.name!r} (source_id={inlet.source_id!r}) is back; processing "
            f"resumes ({self.scheduler.processor.restarted}).", force=True,
            source_id=inlet.source_id, state_reset=True,
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
        # how far processing trails the input: the input received and not yet processed
        # (independent of the sender's clock and of any offset in its stamps)
        sched = self.scheduler
        assert sched is not None
        waiting = sched.ring.n_available + (self.inlet.samples_available()
                                            if self.inlet is not None else 0)
        lag = waiting / self.sfreq
        # behind: processing trails the input by more than a quarter second (or 5 hops)
        # for two refreshes in a row without working the backlog off. Not at start-up
        # (the input buffered while the pipeline waited for a subscriber is drained within
        # a second), nor while data are withheld or the chain is rebuilt (explained lag).
        threshold = max(0.25, 5 * self._hop_s)
        was_behind = self._behind_since is not None
        high = lag > threshold
        withheld = sched.n_flagged != self._tick_flagged
        if was_behind:
            behind = high
        else:
            behind = (high and self._prev_lag is not None and not withheld
                      and lag >= 0.8 * self._prev_lag)
        self._prev_lag = lag if high else None
        self._tick_flagged = sched.n_flagged
        with self._lock:
            st = self._status
            st.elapsed_s = now - self._t_start
            if dt > 0:
                st.in_rate_hz = (sched.n_in - self._tick_in) / dt
                st.out_rate_hz = (sched.n_out - self._tick_out) / dt
                # behind, the pulls lag the input: it still arrives at its rate
                st.out_rate_expected_hz = (self.sfreq if behind else st.in_rate_hz) \
                    / self.decimate
            st.latency_ms = (
                (float(np.median(lat)), float(np.percentile(lat, 95)), float(lat.max()))
                if lat is not None else (math.nan, math.nan, math.nan)
            )
            st.lag_ms = lag * 1e3
            st.behind = behind
            self._fill_counters(st)
            snap = dataclasses.replace(st, excluded=list(st.excluded), warnings=list(st.warnings))
        self._tick_t, self._tick_in, self._tick_out = now, sched.n_in, sched.n_out
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


def _backend_name(proc: SourceProcessor) -> str:
    """Where the per-hop compute runs (the refiner's engine for piunet)."""
    ref = proc.refiner
    if proc.temporal is not None:
        t = proc.temporal
        return ("onnxruntime-cpu" if t.backend == "onnx" else "torch-cpu") + " (" + (
            "bf16" if t.bf16 else "fp32") + ")"
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
    if method == "temporal":
        return "mV (node activity of the brain model, signed; scale set by the training gain)"
    if method in ("dspm", "sloreta"):
        return "dimensionless (noise-normalised)"
    return "A*m (mean current-density magnitude)" if proc.cfg.regions.mode == "magnitude" \
        else "A*m (signed, along the region's dominant orientation)"


def _provenance(proc: SourceProcessor, info: pylsl.StreamInfo, sfreq: float, backend: str,
                window: int, hop: int, schedule: str, decimate: int, scfg: Any, *,
                positions: str, units: str, marker_stream: str) -> dict[str, str]:
    """The region outlet's ``desc/rtsource`` metadata: every stage, the hop grid, the
    output rate and sample selection, stamps and delays, the input and its handling.
    ``sfreq``: the rate the chain runs at (the declared one unless the input delivers
    another)."""
    prov = dict(proc.provenance())
    prov.update({
        "rtsource_version": __version__,
        "backend": backend,
        "window_s": repr(window / sfreq),
        "hop_s": repr(hop / sfreq),
        "window_samples": str(window),
        "hop_samples": str(hop),
        "schedule": f"{schedule}: " + (
            "samples are processed as they arrive, at most a hop at a time"
            if schedule == "arrival" else "samples are processed a hop at a time"),
        "output_rate_hz": repr(sfreq / decimate),
        "decimate": str(decimate),
        "output_samples": (
            "one per input sample (each piece publishes its new samples)" if decimate == 1
            else f"one per {decimate} input samples: input samples k with (k + 1) % "
            f"{decimate} == 0, k counted from the first sample processed (and again "
            "after the input returns); the others are filtered, not published"),
        "processing_delay_s": f"{proc.filter.delay_s:.6f}",
        "processing_delay": "constant group delay of the causal filters at the pass-band "
        "centre; each sample is stamped with the capture time of the EEG sample it "
        "represents",
        "input_name": info.name(),
        "input_type": info.type(),
        "input_srate": repr(sfreq),
        "input_declared_srate": repr(float(info.nominal_srate())),
        "timestamps": ("capture time of the represented EEG sample (input stream clock, "
                       "LSL time-corrected to this host)" if scfg.timestamps == "source" else
                       "arrival time at rtsource (LSL clock), spaced at the rate "
                       "(stream.timestamps = 'arrival')"),
        "input_channels": str(info.channel_count()),
        "positions": positions,
        "channel_mapping": proc.mapper.describe(),
        "bad_data": scfg.bad_data,
        "ring_overflow": scfg.overflow,
        "units": units,
        "marker_stream": marker_stream,
    })
    return prov
