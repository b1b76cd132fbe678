"""Seizure-onset-zone (SOZ) localisation: which regions lead epileptiform events.

A recording is processed in three steps:

1. **Detection** (:func:`detect_events`), on the EEG: a zero-phase Butterworth band-pass
   (default 1–30 Hz), the average reference, the global field power (GFP: the standard
   deviation over channels at each sample), smoothed by a 40 ms moving RMS. An event is a
   GFP peak at least ``threshold`` times (default 2) the higher of its two troughs within
   0.2 s on either side, above the recording's median GFP (robust z-score of the log GFP,
   median/MAD), and ``refractory_s`` from a larger one. A ratio to the neighbouring
   troughs, rather than a z-score against the whole recording, also finds the spikes of a
   discharge that fills the recording, and background alpha stays below it (its largest
   ratio was 1.4–1.6 on simulated spike-free EEG). Each event's onset is where the GFP,
   going back from the peak, falls below half of the peak's height over the trough.
   Events in trains (gaps under ``train_gap_s``, at least ``min_train`` events) are
   labelled ``"discharge"`` (rhythmic ictal activity), the others ``"spike"``.
2. **Region activity** (:func:`region_activity`): the whole recording is localised with
   :func:`rtsource.localize` (the causal temporal network runs over the recording from its
   start, as it would live, in segments with a warm-up when it is long; a linear method
   gives the same 226 BN246 nodes from the signed region mode). Rows are the brain
   model's nodes (:func:`rtsource.simulate.dynamics.brain_nodes`): 210 cortical regions
   and 16 thalamic nuclei.
3. **Ranking** (:func:`rank_regions`): each region's activity is cut around every event
   onset and baseline-corrected (mean of ``baseline_s`` before the onset); its *early
   activity* is the RMS from ``early_s[0]`` after the onset to ``early_s[1]`` after the
   event's GFP peak (the rise of the event: regions that join later, by propagation, score
   lower). Per event the early activity is divided by the largest over regions, so each
   event counts the same; the **score** is the mean over events (1: the strongest region of
   every event). The **onset latency** of a region is where its event-averaged,
   baseline-corrected activity (its absolute value), going back from its peak between
   the baseline and the end of the (median) early window, falls below half of that peak,
   in milliseconds after the EEG onset (negative: before it); NaN where the average does
   not stand out of its own uncertainty (peak under three standard errors of the mean:
   no time-locked response).

The evaluation (:func:`evaluate_soz`, ``bench/eval_soz.py``) simulates recordings from the
brain model's interictal and ictal libraries on a head model and montage no network saw in
training and reports the top-3 hit rate and the distance of the top region from the true
focus, for any methods.

Sources: DeepSIF (Sun, Sohrabpour, Worrell, He; PNAS 2022, 119:e2201128119), neural-mass
simulations of epileptic foci and a spatio-temporal network that localises them;
Yu, Hu, Zhao, Liu (Cogn Neurodyn 2024), the BN246 brain model with thalamic nuclei, its
convolutional-recurrent network and its use for seizure-onset-zone localisation. The GFP
is Lehmann & Skrandies (1980, Electroencephalogr Clin Neurophysiol 48:609).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ._util import logger, stable_hash
from .config import HeadModelConfig, check_range, check_value

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .simulate.dynamics import RegionProjector, WaveformLibrary

__all__ = [
    "MIN_DURATION_S", "NOISE_RATIO", "DetectorConfig", "Events", "NoEventsError", "RankingConfig",
    "RegionActivity", "SOZEvalConfig", "SOZEvalResult", "SOZResult", "SimulatedRecording",
    "detect_events", "evaluate_soz", "evaluation_recording", "localize_soz", "plot_soz",
    "rank_regions", "region_activity", "simulate_recording", "soz_markdown",
    "write_soz_report",
]

#: The shortest recording accepted (s): the detector's statistics and one event window.
MIN_DURATION_S = 3.0
#: Output samples per localisation call of a long recording (source vectors: about 1 GB).
_SEGMENT_OUTPUT_SAMPLES = 16_384
#: Robust z-score: the MAD of a normal distribution is 0.6745 of its SD.
_MAD_TO_SD = 1.4826


class NoEventsError(ValueError):
    """No epileptiform event was found (or none with a whole window inside the recording).

    Attributes
    ----------
    events : Events
        What the detector saw (its GFP z-score trace and threshold).
    """

    def __init__(self, message: str, events: Events) -> None:
        super().__init__(message)
        self.events = events


# ---------------------------------------------------------------------------------------
# detection
# ---------------------------------------------------------------------------------------


#: The largest GFP peak-to-trough ratio seen in simulated spike-free EEG (alpha background,
#: 5-40 dB sensor noise: 1.4-1.6); detection thresholds below it warn.
NOISE_RATIO = 1.6


@dataclass(frozen=True)
class DetectorConfig:
    """Settings of :func:`detect_events`.

    Attributes
    ----------
    band_hz : (float, float)
        Zero-phase Butterworth band-pass (Hz) before the GFP; the upper edge is lowered to
        0.45 × the sampling rate where needed.
    order : int
        Butterworth order (applied forward and backward: twice the attenuation).
    smooth_s : float
        Length of the centred moving RMS applied to the GFP (s; 0: none). It removes the
        GFP's ripple at twice the alpha frequency.
    threshold : float
        Peak-to-trough ratio an event needs: the smoothed GFP at the peak divided by the
        higher of its two minima within ``trough_s`` on either side (default 2: the GFP
        at least doubles and halves again).
    trough_s : float
        Half-width of the window in which the troughs are sought (s).
    min_z : float
        The peak must also exceed the median GFP by ``min_z`` robust SDs (median/MAD of the
        log GFP; default 0: above the median).
    refractory_s : float
        Least time between two events' peaks (s).
    onset_fraction : float
        The onset is where the GFP, going back from the peak, falls below the trough plus
        this fraction of the peak's height above it.
    edge_s : float
        Peaks this close to the start or end are ignored (filter edge effects; s).
    train_gap_s, min_train : float, int
        Events closer than ``train_gap_s`` in runs of at least ``min_train`` are labelled
        ``"discharge"``; the others ``"spike"``.
    """

    band_hz: tuple[float, float] = (1.0, 30.0)
    order: int = 4
    smooth_s: float = 0.04
    threshold: float = 2.0
    trough_s: float = 0.2
    min_z: float = 0.0
    refractory_s: float = 0.15
    onset_fraction: float = 0.5
    edge_s: float = 0.25
    train_gap_s: float = 0.5
    min_train: int = 3

    def __post_init__(self) -> None:
        lo, hi = self.band_hz
        if not 0 < lo < hi:
            raise ValueError(f"band_hz = {self.band_hz} must be (low, high) with 0 < low < high "
                             "(Hz; default (1, 30)).")
        if not self.threshold > 1:
            raise ValueError(f"threshold = {self.threshold} must be a peak-to-trough ratio "
                             "above 1 (default 2).")
        if self.threshold < NOISE_RATIO:
            import warnings

            warnings.warn(
                f"threshold = {self.threshold:g} is below the peak-to-trough ratios that "
                f"spike-free EEG reaches (up to {NOISE_RATIO:g} in simulated background with "
                "sensor noise): background fluctuations will be detected and ranked as "
                "events. Keep it at 1.6 or more unless the recording is known to be "
                "epileptiform throughout.", UserWarning, stacklevel=3)
        if not (self.refractory_s > 0 and self.trough_s > 0 and self.edge_s >= 0
                and self.smooth_s >= 0 and self.train_gap_s > 0):
            raise ValueError(f"refractory_s = {self.refractory_s}, trough_s = {self.trough_s}, "
                             f"train_gap_s = {self.train_gap_s} must be positive and edge_s = "
                             f"{self.edge_s}, smooth_s = {self.smooth_s} at least 0 (seconds).")
        if not 0 < self.onset_fraction < 1:
            raise ValueError(f"onset_fraction = {self.onset_fraction} must lie in (0, 1) "
                             "(default 0.5).")
        if self.order < 1 or self.min_train < 2:
            raise ValueError(f"order = {self.order} must be >= 1 and min_train = "
                             f"{self.min_train} >= 2.")


@dataclass
class Events:
    """Epileptiform events found by :func:`detect_events`.

    Attributes
    ----------
    onset_s, peak_s : array, shape (n_events,)
        Onset (the GFP's half-height rise) and GFP peak, seconds (the first sample is
        ``t0``).
    ratio : array, shape (n_events,)
        Peak-to-trough ratio of the GFP.
    z : array, shape (n_events,)
        Robust z-score of the log GFP at the peak.
    kind : array of str, shape (n_events,)
        ``"spike"`` or ``"discharge"`` (part of a rhythmic train).
    gfp : array, shape (n_times,)
        The band-passed, smoothed GFP (the data's unit).
    candidates : array, shape (n_peaks, 2)
        Every GFP peak considered: time (s) and peak-to-trough ratio (for diagnosis).
    sfreq : float
        Rate of ``gfp`` (Hz).
    t0 : float
        Time of the first sample (s).
    config : DetectorConfig
    """

    onset_s: np.ndarray
    peak_s: np.ndarray
    ratio: np.ndarray
    z: np.ndarray
    kind: np.ndarray
    gfp: np.ndarray
    candidates: np.ndarray
    sfreq: float
    t0: float
    config: DetectorConfig

    def __len__(self) -> int:
        return len(self.peak_s)

    @property
    def max_ratio(self) -> float:
        """The largest peak-to-trough ratio of any GFP peak (the best candidate when no event
        was found; NaN without peaks)."""
        return float(self.candidates[:, 1].max()) if len(self.candidates) else math.nan

    def counts(self) -> dict[str, int]:
        """Events per kind."""
        return {k: int((self.kind == k).sum()) for k in ("spike", "discharge")}

    def describe(self) -> str:
        c = self.counts()
        parts = [f"{v} {k}{'s' if v != 1 else ''}" for k, v in c.items() if v]
        return f"{len(self)} events ({', '.join(parts) or 'none'})"

    def none_found(self) -> str:
        """The message for a recording without events: threshold, best candidate, advice."""
        c = self.config
        best = (f"the largest GFP peak-to-trough ratio was {self.max_ratio:.2f}"
                if math.isfinite(self.max_ratio) else "the GFP has no peak")
        head = (f"No epileptiform event found: no GFP peak rose to {c.threshold:g} x its "
                f"troughs within {c.trough_s:g} s ({best}). ")
        band = (f"another band (threshold.band_hz / --band, now {c.band_hz[0]:g}-"
                f"{c.band_hz[1]:g} Hz), mark noisy channels bad")
        if not (math.isfinite(self.max_ratio) and self.max_ratio >= NOISE_RATIO):
            return (head + f"That is within what spike-free EEG reaches (up to {NOISE_RATIO:g}): "
                    "the recording probably holds no spikes or discharge. A lower threshold "
                    "would rank background fluctuations; check the recording, try "
                    f"{band}.")
        lower = max(NOISE_RATIO, round(0.95 * min(c.threshold, self.max_ratio), 2))
        return (head + f"Try a lower threshold (threshold / --threshold, e.g. {lower:g}; below "
                f"{NOISE_RATIO:g} background peaks pass), {band}, or check that the recording "
                "holds spikes or a discharge.")


def _check_eeg(eeg: np.ndarray, sfreq: float) -> np.ndarray:
    x = np.asarray(eeg)
    if x.ndim != 2:
        raise ValueError(f"eeg must have shape (n_channels, n_times); got {x.shape}.")
    if np.iscomplexobj(x):
        raise ValueError("eeg is complex; give real-valued EEG.")
    if not sfreq or not sfreq > 0:
        raise ValueError(f"sfreq = {sfreq} must be a positive rate in Hz.")
    if x.shape[0] < 3:
        raise ValueError(f"eeg has {x.shape[0]} channels; the GFP needs at least 3 (a "
                         "transposed array? give (n_channels, n_times)).")
    dur = x.shape[1] / sfreq
    if dur < MIN_DURATION_S:
        raise ValueError(f"The recording is {dur:.2f} s long ({x.shape[1]} samples at "
                         f"{sfreq:g} Hz); seizure-onset ranking needs at least "
                         f"{MIN_DURATION_S:g} s (the detector's background statistics and "
                         "a window around each event).")
    if not np.isfinite(x).all():
        bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
        raise ValueError(f"eeg contains NaN or Inf in {len(bad)} channel(s) (rows "
                         f"{bad[:8].tolist()}); interpolate or drop them first.")
    return x.astype(np.float64, copy=False)


def detect_events(eeg: np.ndarray, sfreq: float, config: DetectorConfig | None = None, *,
                  t0: float = 0.0, **overrides: Any) -> Events:
    """Find epileptiform events (interictal spikes, ictal discharges) in EEG.

    The EEG is band-passed (zero phase), average-referenced, reduced to its global field
    power (GFP: the SD over channels per sample) and smoothed (centred moving RMS). An event
    is a GFP peak that stands out of its surroundings: at least ``threshold`` times the
    higher of the two troughs within ``trough_s`` on either side, above the median GFP by
    ``min_z`` robust SDs (median and 1.4826 · MAD of the log GFP), and ``refractory_s``
    from a larger event. A ratio to the neighbouring troughs, rather than to the whole
    recording's median, also separates the spikes of a discharge that fills the recording;
    the smoothing keeps background alpha (whose GFP ripples at twice its frequency) below
    it. The onset is where the GFP, going back from the peak, falls below the higher trough
    plus ``onset_fraction`` of the peak's height above it.

    Parameters
    ----------
    eeg : array, shape (n_channels, n_times)
        EEG in any unit (the ratios do not depend on it), any reference.
    sfreq : float
        Sampling rate (Hz).
    config : DetectorConfig | None
        Settings (default :class:`DetectorConfig`); ``**overrides`` replace single fields,
        e.g. ``threshold=1.6``.
    t0 : float
        Time of the first sample (s).

    Returns
    -------
    Events
        Possibly empty (``len(events) == 0``; :meth:`Events.none_found` says why): no error
        is raised for that here.

    Raises
    ------
    ValueError
        For a wrong shape, fewer than 3 channels, NaN/Inf, a recording shorter than
        :data:`MIN_DURATION_S`, or invalid settings.
    """
    from scipy.signal import butter, find_peaks, sosfiltfilt

    cfg = config or DetectorConfig()
    if overrides:  # a replace re-runs the checks (and warnings) only when something changed
        cfg = dataclasses.replace(cfg, **overrides)
    x = _check_eeg(eeg, sfreq)
    lo, hi = cfg.band_hz
    hi = min(hi, 0.45 * sfreq)
    if not lo < hi:
        raise ValueError(f"band_hz = {cfg.band_hz} lies above 0.45 x the rate ({sfreq:g} Hz).")
    sos = butter(cfg.order, [lo, hi], btype="bandpass", fs=sfreq, output="sos")
    x = x - x.mean(axis=0, keepdims=True)  # average reference
    y = sosfiltfilt(sos, x, axis=1)
    gfp = y.std(axis=0)
    k = round(cfg.smooth_s * sfreq)
    if k > 1:
        gfp = np.sqrt(np.convolve(gfp**2, np.ones(k) / k, mode="same"))
    n = len(gfp)
    floor = max(float(gfp.max()) * 1e-12, 1e-300)
    lg = np.log(np.maximum(gfp, floor))
    edge = min(round(cfg.edge_s * sfreq), n // 4)
    core = lg[edge:n - edge]
    med = float(np.median(core))
    mad = float(np.median(np.abs(core - med))) * _MAD_TO_SD
    z = (lg - med) / max(mad, 1e-12)
    wlen = 2 * max(1, round(cfg.trough_s * sfreq)) + 1
    peaks, props = find_peaks(lg, prominence=0.0, wlen=wlen)
    inside = (peaks >= edge) & (peaks < n - edge)
    peaks, prom = peaks[inside], props["prominences"][inside]
    ratio = np.exp(prom)
    candidates = np.c_[t0 + peaks / sfreq, ratio] if len(peaks) else np.empty((0, 2))
    ok = (ratio >= cfg.threshold) & (z[peaks] >= cfg.min_z)
    peaks, ratio = peaks[ok], ratio[ok]
    # refractory period: keep the larger of two events closer than refractory_s
    order = np.argsort(-ratio, kind="stable")
    dist = max(1, round(cfg.refractory_s * sfreq))
    keep = np.zeros(len(peaks), bool)
    taken: list[int] = []
    for i in order:
        if all(abs(int(peaks[i]) - j) >= dist for j in taken):
            keep[i] = True
            taken.append(int(peaks[i]))
    peaks, ratio = peaks[keep], ratio[keep]
    onsets = np.empty(len(peaks), np.int64)
    half = max(1, round(cfg.trough_s * sfreq))
    for j, p in enumerate(peaks):
        a, b = max(0, p - half), min(n, p + half + 1)
        trough = max(float(gfp[a:p + 1].min()), float(gfp[p:b].min()))
        level = trough + cfg.onset_fraction * (gfp[p] - trough)
        i = p
        while i > a and gfp[i - 1] >= level:
            i -= 1
        onsets[j] = i
    kind = np.full(len(peaks), "spike", dtype=object)
    if len(peaks):
        gap = np.diff(peaks) / sfreq < cfg.train_gap_s
        start = 0
        for j in range(1, len(peaks) + 1):
            if j == len(peaks) or not gap[j - 1]:
                if j - start >= cfg.min_train:
                    kind[start:j] = "discharge"
                start = j
    return Events(onset_s=t0 + onsets / sfreq, peak_s=t0 + peaks / sfreq, ratio=ratio,
                  z=z[peaks], kind=kind.astype(str), gfp=gfp.astype(np.float32),
                  candidates=candidates, sfreq=float(sfreq), t0=float(t0), config=cfg)


# ---------------------------------------------------------------------------------------
# region activity
# ---------------------------------------------------------------------------------------


@dataclass
class RegionActivity:
    """Activity of the brain model's nodes over a whole recording.

    Attributes
    ----------
    data : array, shape (n_times, n_nodes), float32
        Node activity (temporal: mV-equivalent; linear methods: the signed region mode of
        the current density, A·m).
    times : array, shape (n_times,)
        Seconds.
    sfreq : float
        Rate of ``data`` (Hz; the temporal network's, 250 Hz, or the input's).
    names, kinds : list of str
        BN246 labels and ``"cortical"`` / ``"thalamic"``.
    centroids_mni : array, shape (n_nodes, 3)
        MNI152 millimetres.
    method : str
    provenance : dict
    """

    data: np.ndarray
    times: np.ndarray
    sfreq: float
    names: list[str]
    kinds: list[str]
    centroids_mni: np.ndarray
    method: str
    provenance: dict[str, str] = field(default_factory=dict)


def _localize_config(config: Any, checkpoint: str | os.PathLike | None) -> Any:
    """``config`` with ``refine.checkpoint`` set (a dict of sections, a Config or a path)."""
    if checkpoint is None:
        return config
    from .config import Config, load_config

    if config is None or isinstance(config, dict):
        cfg = {k: dict(v) if isinstance(v, dict) else v for k, v in (config or {}).items()}
        cfg.setdefault("refine", {})["checkpoint"] = str(checkpoint)
        return cfg
    cfg = config if isinstance(config, Config) else load_config(config)
    return dataclasses.replace(cfg, refine=dataclasses.replace(cfg.refine,
                                                               checkpoint=str(checkpoint)))


def region_activity(data: Any, ch_names: Sequence[str] | None = None,
                    sfreq: float | None = None, montage: Any = None, method: str = "temporal",
                    *, checkpoint: str | os.PathLike | None = None, config: Any = None,
                    exclude: Sequence[str] | str = "bads", units: str = "auto",
                    on_missing: str = "raise", filters: bool = False,
                    segment_s: float | None = None, warmup_s: float = 20.0,
                    progress: bool = False) -> RegionActivity:
    """Localise a whole recording and keep the brain model's 226 nodes.

    The recording runs through :func:`rtsource.localize` from its first sample, as it would
    live (the temporal network's state carries on). ``localize`` also returns the source
    vectors (12 bytes per grid point and output sample: 63 kB on the 7 mm grid), so a long
    recording is processed in segments of whole seconds (``segment_s``; default: about
    16,000 output samples, 1 GB of source vectors, per segment: 65 s for the temporal
    network at 250 Hz, 16 s for a linear method at 1 kHz). Where the chain has a state (the
    temporal network; ``filters=True``), each segment starts ``warmup_s`` earlier and the
    warm-up's output is discarded; a linear method without filters gives the same numbers
    either way. The network's state has a long memory: with stage 1's weights, on two simulated
    30 s recordings (ictal, interictal), a pass started 5 s in still differed from the pass
    from the first sample by 0.1 % and 7-9 % RMS 20 s later (5 % and 8 % after 10 s).

    Parameters
    ----------
    data : array (n_channels, n_times) in volts (or ``units``), or an MNE Raw.
    ch_names, sfreq, montage, config, exclude, units, on_missing, filters, progress :
        As :func:`rtsource.localize` (atlas BN246).
    method : str
        ``"temporal"`` (default) or any other method of :func:`rtsource.localize`
        (``"eloreta"``, ``"sloreta"``, ``"dspm"``, ``"mne"``, ``"piunet"``).
    checkpoint : path | None
        Temporal network weights (default: ``config``'s ``refine.checkpoint``, normally
        the shipped ones).
    segment_s, warmup_s : float
        Segment length (None: automatic) and warm-up (s; see above).

    Returns
    -------
    RegionActivity

    Raises
    ------
    ValueError
        As :func:`rtsource.localize`, or epoched data (give a continuous recording).
    FileNotFoundError
        A checkpoint that does not exist.
    """
    from .online.localize import localize
    from .simulate.dynamics import brain_nodes

    is_mne = hasattr(data, "info") and hasattr(data, "get_data")
    if is_mne and not hasattr(data, "n_times"):
        raise ValueError("Seizure-onset ranking needs a continuous recording (MNE Raw or a "
                         f"(n_channels, n_times) array), not {type(data).__name__}.")
    if not ((segment_s is None or segment_s > 0) and warmup_s >= 0):
        raise ValueError(f"segment_s = {segment_s} must be positive (or None) and warmup_s = "
                         f"{warmup_s} at least 0 (seconds).")
    if is_mne:
        fs, n = float(data.info["sfreq"]), int(data.n_times)
        t_first = float(data.times[0])
    else:
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise ValueError("Seizure-onset ranking needs a continuous recording, shape "
                             f"(n_channels, n_times); got {arr.shape}.")
        if sfreq is None:
            raise ValueError("With an array, pass ch_names=[...] and sfreq=... as well.")
        fs, n, t_first = float(sfreq), arr.shape[1], 0.0
    sec = max(1, round(fs))
    stateful = str(method).lower() == "temporal" or filters
    if segment_s is None:  # about 16,000 output samples per segment
        step = max(1, round(fs / 250.0)) if str(method).lower() == "temporal" else 1
        segment_s = max(1.0, math.floor(_SEGMENT_OUTPUT_SAMPLES * step / fs))
    seg = max(1, round(segment_s)) * sec
    warm = round(warmup_s) * sec if stateful else 0
    starts = list(range(0, n, seg))
    if len(starts) > 1 and n - starts[-1] < seg // 2:
        starts.pop()  # a short tail joins the segment before it
    stops = [*starts[1:], n]
    cfg = _localize_config(config, checkpoint)
    nodes = brain_nodes()
    parts, times, res = [], [], None
    for a, b in zip(starts, stops, strict=True):
        a0 = max(0, a - warm)
        if is_mne:
            import mne

            piece = mne.io.RawArray(data.get_data(start=a0, stop=b), data.info,
                                    verbose="error")
            offset = t_first + a0 / fs
        else:
            piece, offset = arr[:, a0:b], a0 / fs
        res = localize(piece, ch_names=ch_names, sfreq=sfreq, montage=montage, method=method,
                       atlas="bn246", config=cfg, exclude=exclude, units=units,
                       on_missing=on_missing, filters=filters, progress=progress)
        if not parts:
            index = {name: i for i, name in enumerate(res.region_names)}
            missing = [name for name in nodes.names if name not in index]
            if missing:
                raise ValueError(f"Method {res.method!r} gives no activity for nodes "
                                 f"{missing[:5]} (atlas BN246 expected).")
            rows = np.array([index[name] for name in nodes.names])
        t = res.times + offset  # the piece's times start at 0
        keep = t >= t_first + (a - 0.5) / fs
        parts.append(res.regions[keep][:, rows])
        times.append(t[keep])
    assert res is not None
    prov = dict(res.provenance)
    if len(starts) > 1:
        prov["soz_segments"] = (f"{len(starts)} segments of {segment_s:g} s"
                                + (f", each after {warmup_s:g} s of warm-up" if warm else ""))
    return RegionActivity(
        data=np.ascontiguousarray(np.concatenate(parts), np.float32),
        times=np.concatenate(times), sfreq=float(res.sfreq or fs), names=list(nodes.names),
        kinds=[str(k) for k in nodes.kinds], centroids_mni=nodes.centroids_mni.copy(),
        method=res.method, provenance=prov)


# ---------------------------------------------------------------------------------------
# ranking
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RankingConfig:
    """Settings of :func:`rank_regions` (seconds relative to each event's EEG onset).

    Attributes
    ----------
    window_s : (float, float)
        The cut around each onset (also the averaged time courses' span); events whose
        window leaves the recording are not used.
    baseline_s : (float, float)
        Baseline whose mean is removed per event and region.
    early_s : (float, float)
        The early window: from ``early_s[0]`` after the onset to ``early_s[1]`` after the
        event's GFP peak.
    """

    window_s: tuple[float, float] = (-0.5, 0.5)
    baseline_s: tuple[float, float] = (-0.5, -0.15)
    early_s: tuple[float, float] = (-0.02, 0.05)

    def __post_init__(self) -> None:
        w0, w1 = self.window_s
        b0, b1 = self.baseline_s
        if not (w0 < 0 < w1 and w0 <= b0 < b1 <= 0):
            raise ValueError(f"window_s = {self.window_s} must span the onset and baseline_s "
                             f"= {self.baseline_s} lie inside it, before the onset.")
        if not (w0 <= self.early_s[0] < w1 and self.early_s[1] < w1):
            raise ValueError(f"early_s = {self.early_s} must lie inside window_s = "
                             f"{self.window_s}.")


@dataclass
class SOZResult:
    """Regions ranked by how much they lead the events (best first).

    Attributes
    ----------
    regions, kinds : list of str
        BN246 labels and ``"cortical"`` / ``"thalamic"``, ranked.
    score : array, shape (n_regions,)
        Mean over events of the early activity divided by the event's largest (0–1).
    latency_ms : array, shape (n_regions,)
        Onset latency of the event-averaged activity after the EEG onset (ms; NaN: no
        clear response).
    centroids_mni : array, shape (n_regions, 3)
        MNI152 millimetres.
    events : Events
        All detected events; ``used`` marks those whose window fits the recording.
    used : bool array, shape (n_events,)
    average : array, shape (n_regions, n_lags)
        Event-averaged, baseline-corrected activity, ranked rows.
    lags_s : array, shape (n_lags,)
        Time of ``average``'s columns after the onset (s).
    method : str
    provenance : dict
    """

    regions: list[str]
    kinds: list[str]
    score: np.ndarray
    latency_ms: np.ndarray
    centroids_mni: np.ndarray
    events: Events
    used: np.ndarray
    average: np.ndarray
    lags_s: np.ndarray
    method: str
    provenance: dict[str, str] = field(default_factory=dict)

    @property
    def n_events(self) -> int:
        """Events used in the ranking."""
        return int(self.used.sum())

    def rows(self, top: int | None = None) -> list[dict[str, Any]]:
        """The ranking as dicts (rank, region, description, kind, score, latency_ms,
        x_mm, y_mm, z_mm)."""
        from .simulate.dynamics.nodes import THALAMIC_NUCLEI

        out = []
        for i in range(len(self.regions) if top is None else min(top, len(self.regions))):
            name = self.regions[i]
            desc = THALAMIC_NUCLEI.get(name[:-2], ("", ""))[1]
            x, y, z = (float(v) for v in self.centroids_mni[i])
            out.append({"rank": i + 1, "region": name,
                        "description": f"{desc} ({name[-1]})" if desc else "",
                        "kind": self.kinds[i], "score": round(float(self.score[i]), 4),
                        "latency_ms": (round(float(self.latency_ms[i]), 1)
                                       if math.isfinite(self.latency_ms[i]) else math.nan),
                        "x_mm": round(x, 1), "y_mm": round(y, 1), "z_mm": round(z, 1)})
        return out

    def table(self, top: int | None = 10) -> str:
        """A fixed-width text table of the ``top`` regions."""
        rows = self.rows(top)
        head = (f"{'rank':>4}  {'region':<14} {'kind':<9} {'score':>6} {'onset (ms)':>10}  "
                f"{'MNI x, y, z (mm)':<18} description")
        lines = [head, "-" * len(head)]
        for r in rows:
            lat = "–" if not math.isfinite(r["latency_ms"]) else f"{r['latency_ms']:+.0f}"
            xyz = f"{r['x_mm']:.0f}, {r['y_mm']:.0f}, {r['z_mm']:.0f}"
            lines.append(f"{r['rank']:>4}  {r['region']:<14} {r['kind']:<9} {r['score']:>6.3f} "
                         f"{lat:>10}  {xyz:<18} {r['description']}")
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike, top: int | None = None) -> Path:
        """Write the ranking (all regions, or the ``top``) as CSV; returns the path."""
        import csv

        rows = self.rows(top)
        path = Path(path)
        with open(path, "w", newline="") as fid:
            w = csv.DictWriter(fid, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        return path

    def events_csv(self, path: str | os.PathLike) -> Path:
        """Write the detected events (onset, peak in s, z, kind, used) as CSV."""
        import csv

        path = Path(path)
        ev = self.events
        with open(path, "w", newline="") as fid:
            w = csv.writer(fid)
            w.writerow(["event", "onset_s", "peak_s", "peak_trough_ratio", "gfp_z", "kind",
                        "used"])
            for k in range(len(ev)):
                w.writerow([k + 1, f"{ev.onset_s[k]:.4f}", f"{ev.peak_s[k]:.4f}",
                            f"{ev.ratio[k]:.3f}", f"{ev.z[k]:.2f}", ev.kind[k],
                            bool(self.used[k])])
        return path

    def plot(self, path: str | os.PathLike | None = None, *, top: int = 5, dpi: int = 110,
             note: str | None = None) -> Figure:
        """The region map and the top regions' averaged time courses (see
        :func:`plot_soz`)."""
        return plot_soz(self, path, top=top, dpi=dpi, note=note)


def rank_regions(activity: RegionActivity, events: Events,
                 config: RankingConfig | None = None) -> SOZResult:
    """Rank regions by their early activity around the events (module docstring, step 3).

    Parameters
    ----------
    activity : RegionActivity
        From :func:`region_activity` (same recording and time origin as ``events``).
    events : Events
        From :func:`detect_events`.
    config : RankingConfig | None

    Returns
    -------
    SOZResult

    Raises
    ------
    NoEventsError
        When ``events`` is empty or no event's window fits inside the recording.
    """
    cfg = config or RankingConfig()
    fs = activity.sfreq
    A = np.asarray(activity.data)
    n_t = len(A)
    lags = np.arange(math.floor(cfg.window_s[0] * fs), math.ceil(cfg.window_s[1] * fs) + 1)
    lags_s = lags / fs
    t_first = float(activity.times[0])
    on_idx = np.round((events.onset_s - t_first) * fs).astype(np.int64)
    used = (on_idx + lags[0] >= 0) & (on_idx + lags[-1] < n_t)
    if not used.any():
        if len(events) == 0:
            msg = events.none_found()
        else:
            msg = (f"All {len(events)} events lie within {-cfg.window_s[0]:g} s of the "
                   f"recording's start or {cfg.window_s[1]:g} s of its end; none can be used.")
        raise NoEventsError(msg, events)
    base = (lags_s >= cfg.baseline_s[0]) & (lags_s <= cfg.baseline_s[1])
    starts = on_idx[used]
    rise = (events.peak_s - events.onset_s)[used]
    amp = np.empty((len(starts), A.shape[1]))
    total = np.zeros((len(lags), A.shape[1]))
    total2 = np.zeros_like(total)
    for c in range(0, len(starts), 128):  # bounded memory for long recordings
        X = A[starts[c:c + 128, None] + lags[None, :]].astype(np.float64)  # (ev, lags, nodes)
        X -= X[:, base].mean(axis=1, keepdims=True)
        total += X.sum(axis=0)
        total2 += (X**2).sum(axis=0)
        for e in range(len(X)):
            w = (lags_s >= cfg.early_s[0]) & (lags_s <= rise[c + e] + cfg.early_s[1])
            amp[c + e] = np.sqrt(np.mean(X[e, w] ** 2, axis=0))
    norm = amp / np.maximum(amp.max(axis=1, keepdims=True), 1e-300)
    score = norm.mean(axis=0)
    n_ev = len(starts)
    avg = (total / n_ev).T  # (n_nodes, n_lags)
    var = np.maximum(total2.T / n_ev - avg**2, 0.0)
    sem = np.sqrt(var / max(n_ev - 1, 1))
    latency = _latency_ms(avg, sem, lags_s, float(np.median(rise)) + cfg.early_s[1], cfg)
    order = np.lexsort((np.nan_to_num(latency, nan=np.inf), -score))
    prov = {**activity.provenance, "ranking": json.dumps(dataclasses.asdict(cfg)),
            "detector": json.dumps(dataclasses.asdict(events.config))}
    return SOZResult(
        regions=[activity.names[i] for i in order], kinds=[activity.kinds[i] for i in order],
        score=score[order], latency_ms=latency[order],
        centroids_mni=np.asarray(activity.centroids_mni)[order], events=events, used=used,
        average=avg[order].astype(np.float32), lags_s=lags_s, method=activity.method,
        provenance=prov)


def _latency_ms(avg: np.ndarray, sem: np.ndarray, lags_s: np.ndarray, stop_s: float,
                cfg: RankingConfig) -> np.ndarray:
    """Onset latency per region (ms): going back from the peak of |avg| between the baseline's
    end and ``stop_s``, where it falls below half of that peak. NaN where the peak is under
    three times the region's median standard error of the mean (no time-locked response)."""
    env = np.abs(avg)
    idx = np.flatnonzero((lags_s > cfg.baseline_s[1]) & (lags_s <= stop_s))
    noise = np.median(sem, axis=1)
    out = np.full(len(avg), np.nan)
    for r in range(len(avg)):
        seg = env[r, idx]
        k = int(np.argmax(seg))
        peak = seg[k]
        if not peak > 3.0 * noise[r]:
            continue
        while k > 0 and seg[k - 1] >= 0.5 * peak:
            k -= 1
        out[r] = lags_s[idx[k]] * 1000.0
    return out


def _check_before_detection(eeg: np.ndarray, sfreq: float, method: str,
                            checkpoint: str | os.PathLike | None, units: str, *,
                            mne_volts: bool) -> None:
    """What localisation would refuse after event detection, refused before it: the network's
    weights (missing file) and rate, and units the values contradict (messages name the fix;
    ``mne_volts``: an MNE object, whose ``units="auto"`` means volts, as in localize)."""
    from .online.inputs import data_units, restate_mne_units

    if method == "temporal":  # the header only: localisation loads the weights
        from .models.checkpoint import read_header
        from .online.temporal import temporal_checkpoint_path, temporal_decimation

        path = temporal_checkpoint_path(str(checkpoint) if checkpoint is not None else "default")
        temporal_decimation(sfreq, float(read_header(path).get("sfreq", 250.0)))
    if mne_volts and units == "auto":
        try:
            data_units("V", eeg, "units")
        except ValueError as err:
            raise restate_mne_units(err) from None
    else:
        data_units(units, eeg, "units")


def localize_soz(data: Any, ch_names: Sequence[str] | None = None, sfreq: float | None = None,
                 montage: Any = None, method: str = "temporal", *,
                 checkpoint: str | os.PathLike | None = None, config: Any = None,
                 detector: DetectorConfig | None = None, ranking: RankingConfig | None = None,
                 exclude: Sequence[str] | str = "bads", units: str = "auto",
                 on_missing: str = "raise", filters: bool = False,
                 segment_s: float | None = None, warmup_s: float = 20.0,
                 progress: bool = False) -> SOZResult:
    """Detect epileptiform events in a recording and rank the regions that lead them.

    Parameters
    ----------
    data : array (n_channels, n_times) in volts (or ``units``), or an MNE Raw
        A continuous recording of at least :data:`MIN_DURATION_S` seconds.
    ch_names, sfreq : channel labels and rate (Hz), arrays only.
    montage : montage name, electrode file, DigMontage or (labels, positions); an MNE
        Raw's own positions by default.
    method : ``"temporal"`` (default: the causal conv-recurrent network, cortical and
        thalamic time courses) or a linear method (``"eloreta"``, ...) for comparison.
    checkpoint : temporal network weights (default: the shipped ones).
    config : rtsource configuration (Config, TOML path or dict of sections).
    detector, ranking : settings of :func:`detect_events` and :func:`rank_regions`.
    exclude, units, on_missing, filters, progress : as :func:`rtsource.localize`.
    segment_s, warmup_s : segments of a long recording (:func:`region_activity`).

    Returns
    -------
    SOZResult
        ``.table()``, ``.to_csv(path)``, ``.plot(path)``.

    Raises
    ------
    NoEventsError
        No event found (the message gives the threshold and the largest GFP z-score).
    ValueError
        Too short a recording, epoched data, wrong shapes, bad channels, invalid settings
        (each message names the problem).
    FileNotFoundError
        A checkpoint that does not exist.
    """
    if hasattr(data, "info") and hasattr(data, "get_data"):
        if not hasattr(data, "n_times"):
            raise ValueError("Seizure-onset ranking needs a continuous recording (MNE Raw), "
                             f"not {type(data).__name__}.")
        inst = data.copy().pick("eeg", exclude="bads" if exclude == "bads" else ())
        if exclude != "bads":
            inst.drop_channels([c for c in exclude if c in inst.ch_names])
        eeg, fs, t0 = inst.get_data(), float(inst.info["sfreq"]), float(inst.times[0])
    else:
        if ch_names is None or sfreq is None:
            raise ValueError("With an array, pass ch_names=[...] and sfreq=... as well.")
        arr = np.asarray(data)
        if arr.ndim != 2:
            raise ValueError("Seizure-onset ranking needs a continuous recording, shape "
                             f"(n_channels, n_times); got {arr.shape}"
                             + (" (epochs? give one continuous recording)." if arr.ndim == 3
                                else "."))
        keep = [i for i, c in enumerate(ch_names)
                if exclude == "bads" or c not in set(exclude)]
        eeg, fs, t0 = arr[keep], float(sfreq), 0.0
    _check_before_detection(eeg, fs, method, checkpoint if config is None or checkpoint
                            is not None else None, units, mne_volts=hasattr(data, "info"))
    events = detect_events(eeg, fs, detector, t0=t0)
    if len(events) == 0:
        raise NoEventsError(events.none_found(), events)
    act = region_activity(data, ch_names, sfreq, montage, method, checkpoint=checkpoint,
                          config=config, exclude=exclude, units=units, on_missing=on_missing,
                          filters=filters, segment_s=segment_s, warmup_s=warmup_s,
                          progress=progress)
    return rank_regions(act, events, ranking)


# ---------------------------------------------------------------------------------------
# plot
# ---------------------------------------------------------------------------------------

#: (name, projected axis, horizontal axis, vertical axis) in MNI152 (x, y, z)
_VIEWS = (("sagittal", 0, 1, 2), ("coronal", 1, 0, 2), ("axial", 2, 0, 1))


@lru_cache(maxsize=1)
def _brain_mask_2mm() -> tuple[np.ndarray, np.ndarray]:
    """The BN246 brain mask on a 2 mm grid and its voxel -> MNI152 affine."""
    from .regions import load_atlas

    at = load_atlas("bn246")
    mask = at.labels[::2, ::2, ::2] > 0
    aff = at.affine.copy()
    aff[:3, :3] *= 2
    return mask, aff


def plot_soz(result: SOZResult, path: str | os.PathLike | None = None, *, top: int = 5,
             dpi: int = 110, note: str | None = None) -> Figure:
    """Region map (top regions on sagittal, coronal and axial projections of the template
    brain, MNI152) and the top regions' event-averaged time courses around the onset.

    Parameters
    ----------
    result : SOZResult
    path : where to save (PNG, PDF, SVG... by extension); None: not saved.
    top : regions highlighted and plotted.
    dpi : resolution of a saved raster image.
    note : a second title line (e.g. the true focus of a simulation).

    Returns
    -------
    matplotlib.figure.Figure
    """
    from matplotlib.figure import Figure

    top = max(1, min(top, len(result.regions)))
    fig = Figure(figsize=(16, 4.4))
    gs = fig.add_gridspec(1, 4, width_ratios=(1.05, 0.9, 0.9, 1.9))
    mask, aff = _brain_mask_2mm()
    c = np.asarray(result.centroids_mni)
    score = np.asarray(result.score)
    smax = max(float(score.max()), 1e-12)
    colors = [f"C{i}" for i in range(top)]
    for k, (name, ax_p, ax_h, ax_v) in enumerate(_VIEWS):
        ax = fig.add_subplot(gs[0, k])
        proj = mask.any(axis=ax_p).astype(float)  # indexed (horizontal, vertical)
        hc = aff[ax_h, ax_h] * np.arange(proj.shape[0]) + aff[ax_h, 3]
        vc = aff[ax_v, ax_v] * np.arange(proj.shape[1]) + aff[ax_v, 3]
        ax.contourf(hc, vc, proj.T, levels=[0.5, 1.5], colors=["0.93"])
        ax.contour(hc, vc, proj.T, levels=[0.5], colors="0.45", linewidths=0.8)
        rest = np.arange(top, len(c))
        ax.scatter(c[rest, ax_h], c[rest, ax_v], s=3 + 30 * score[rest] / smax, color="0.55",
                   alpha=0.6, linewidths=0)
        for i in range(top - 1, -1, -1):
            marker = "s" if result.kinds[i] == "thalamic" else "o"
            ax.scatter(c[i, ax_h], c[i, ax_v], s=40 + 160 * score[i] / smax, c=colors[i],
                       marker=marker, edgecolors="k", linewidths=0.8, zorder=3)
            ax.annotate(str(i + 1), (c[i, ax_h], c[i, ax_v]), fontsize=7, ha="center",
                        va="center", color="w", zorder=4, fontweight="bold")
        ax.set_aspect("equal")
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("xyz"[ax_h] + " (mm)", fontsize=8)
        ax.set_ylabel("xyz"[ax_v] + " (mm)", fontsize=8)
        ax.tick_params(labelsize=7)
    ax = fig.add_subplot(gs[0, 3])
    t_ms = result.lags_s * 1000.0
    for i in range(top):
        lat = result.latency_ms[i]
        lab = (f"{i + 1}. {result.regions[i]} ({result.kinds[i][:4]}.) score "
               f"{result.score[i]:.2f}" + (f", {lat:+.0f} ms" if math.isfinite(lat) else ""))
        ax.plot(t_ms, result.average[i], color=colors[i], lw=1.3, label=lab)
    ax.axvline(0, color="k", lw=0.8, ls="--")
    ax.set_xlabel("time from the EEG onset (ms)", fontsize=8)
    ax.set_ylabel("event-averaged activity" + (" (mV-eq.)" if result.method == "temporal"
                                               else " (A·m)"), fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6.5, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    ax.grid(alpha=0.3)
    ev = result.events
    fig.suptitle(f"Seizure-onset zone: {result.method}, {result.n_events} of "
                 f"{ev.describe()} used (GFP peak/trough >= {ev.config.threshold:g}); circles cortical, "
                 "squares thalamic, size = score" + (f"\n{note}" if note else ""), fontsize=9)
    fig.tight_layout()
    if path is not None:
        fig.savefig(path, dpi=dpi)
    return fig


# ---------------------------------------------------------------------------------------
# simulation and evaluation
# ---------------------------------------------------------------------------------------


@dataclass
class SimulatedRecording:
    """A recording of the brain model with a known focus.

    Attributes
    ----------
    eeg : array, shape (n_channels, n_times)
        Volts, average reference.
    sfreq : float
    ch_names : list of str
    regime : str
        ``"interictal"`` or ``"ictal"``.
    focus : int
        Node index of the focus.
    focus_name, focus_kind : str
    spikes_s : array
        Peaks of the focus' spikes (s), from the library.
    spread_mm, focus_snr_db, snr_db : float
        Settings drawn or given.
    focus_snr_at : str
        Where ``focus_snr_db`` is measured (``"scalp"`` or ``"source"``).
    """

    eeg: np.ndarray
    sfreq: float
    ch_names: list[str]
    regime: str
    focus: int
    focus_name: str
    focus_kind: str
    spikes_s: np.ndarray
    spread_mm: float
    focus_snr_db: float
    snr_db: float
    focus_snr_at: str = "scalp"


def simulate_recording(library: WaveformLibrary, run: int, projector: RegionProjector,
                       rng: np.random.Generator, *, snr_db: float = 10.0,
                       focus_snr_db: tuple[float, float] = (0.0, 10.0),
                       spread_mm: tuple[float, float] = (0.0, 20.0),
                       focus_snr_at: str = "scalp") -> SimulatedRecording:
    """EEG of one library run: the run's own node activity with its focus amplified.

    The run's simulation gives every node's activity: the focus' spikes or discharge, the
    other nodes' background, and what the focus drives through the connectome (a thalamic
    focus drives its cortical targets 20-80 ms later). As in the dynamic evaluation
    (:class:`~rtsource.simulate.dynamics.DynamicComposer`), the focus' waveform is spread
    over neighbouring cortical nodes (Gaussian, half amplitude at a distance drawn from
    ``spread_mm``; nodes at half amplitude or more replace their own activity by it) and
    scaled by a gain set from ``focus_snr_db`` (dB, drawn per recording), measured in 0.5 s
    windows around the focus' spikes (40 % before the peak):

    * ``focus_snr_at="scalp"`` (default): the focus' EEG power over the EEG power of all
      other nodes, so that its events are visible on the scalp, as seizure-onset analysis
      of scalp EEG presumes. A deep thalamic focus needs far more source power for this
      than a cortical one (about 40 against 25-35 dB over one background node).
    * ``focus_snr_at="source"``: the focus node's power over the mean power of the other
      nodes, the dynamic evaluation's (and the temporal network's training) definition;
      10-20 dB there is mostly invisible in the EEG of 225 background nodes, and a thalamic
      focus shows only through the cortex it drives.

    Thalamic nuclei point along one random unit vector each for the whole recording. White
    sensor noise gives a sensor SNR of ``snr_db`` over the recording.

    Parameters
    ----------
    library : WaveformLibrary
        An ``interictal`` or ``ictal`` library.
    run : int
        Run index (odd runs have a thalamic focus, even runs a cortical one).
    projector : RegionProjector
        Region lead fields of the head model making the EEG.
    rng : numpy Generator
    snr_db, focus_snr_db, spread_mm, focus_snr_at : see above.

    Returns
    -------
    SimulatedRecording

    Raises
    ------
    ValueError
        For a library without foci (spontaneous, evoked), a run out of range or another
        ``focus_snr_at``.
    """
    from .simulate.dynamics import spread_weights

    check_value(focus_snr_at, ("scalp", "source"), "focus_snr_at")
    if library.config.regime not in ("interictal", "ictal"):
        raise ValueError(f"Library regime {library.config.regime!r} has no epileptic focus; "
                         "use an 'interictal' or 'ictal' library.")
    if not 0 <= run < library.n_runs:
        raise ValueError(f"run = {run} is not one of the library's {library.n_runs} runs.")
    nodes = projector.nodes
    fs = library.sfreq
    W = library.waveforms[run].T.astype(np.float64)  # (n_nodes, n_t)
    n_t = W.shape[1]
    focus = int(library.foci[run, 0])
    half = float(rng.uniform(*spread_mm))
    S = spread_weights(nodes, [focus], half)[:, 0]
    truth = S >= 0.5
    sig = S[:, None] * W[focus][None, :]
    ev = library.events[run]
    n_w = round(0.5 * fs)
    mask = np.zeros(n_t, bool)
    for p in ev:
        a = max(0, int(p) - int(0.4 * n_w))
        mask[a:a + n_w] = True
    if not mask.any():
        mask[:] = True
    n_free = int((~nodes.cortical).sum())
    u = rng.standard_normal((n_free, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    L = projector.leadfield(u)
    eeg_sig = L[:, truth] @ sig[truth]
    eeg_bg = L[:, ~truth] @ W[~truth]
    eeg_sig -= eeg_sig.mean(axis=0, keepdims=True)
    eeg_bg -= eeg_bg.mean(axis=0, keepdims=True)
    if focus_snr_at == "scalp":
        p_sig = float(np.mean(eeg_sig[:, mask] ** 2))
        p_bg = float(np.mean(eeg_bg ** 2))
    else:
        p_sig = float(np.mean(sig[focus, mask] ** 2))
        p_bg = float(np.mean(W[~truth] ** 2))
    snr_src = float(rng.uniform(*focus_snr_db))
    gain = math.sqrt(p_bg * 10 ** (snr_src / 10) / max(p_sig, 1e-30))
    clean = gain * eeg_sig + eeg_bg
    sigma = clean.std() / math.sqrt(10 ** (snr_db / 10))
    eeg = clean + sigma * rng.standard_normal(clean.shape)
    eeg -= eeg.mean(axis=0, keepdims=True)
    return SimulatedRecording(
        eeg=eeg, sfreq=fs, ch_names=list(projector.headmodel.ch_names),
        regime=library.config.regime, focus=focus, focus_name=nodes.names[focus],
        focus_kind=str(nodes.kinds[focus]), spikes_s=np.asarray(ev, float) / fs,
        spread_mm=half, focus_snr_db=snr_src, snr_db=float(snr_db), focus_snr_at=focus_snr_at)


@dataclass(frozen=True)
class SOZEvalConfig:
    """Settings of :func:`evaluate_soz`.

    Attributes
    ----------
    headmodel : HeadModelConfig
        Head model and montage that make the EEG and the inverse (default: the held-out
        three-shell sphere, 0.332/0.0113/0.332 S/m, GSN-HydroCel-129, as the dynamic
        evaluation; no network saw it in training).
    regimes : tuple of str
        ``interictal`` and/or ``ictal``.
    n_recordings : int
        Recordings per regime (library runs: half cortical, half thalamic foci).
    duration_s : float
        Length of each recording (s).
    sfreq : float
        Rate of the libraries and recordings (Hz).
    snr_db : float
        Sensor SNR (dB).
    focus_snr_db, spread_mm : (float, float)
        Ranges of the focus' SNR (dB) and spread (mm) drawn per recording (see
        :func:`simulate_recording`).
    focus_snr_at : ``"scalp"`` | ``"source"``
        Where the focus' SNR is measured (:func:`simulate_recording`).
    seed : int
        Libraries' and recordings' seed (training used 11; 2024 is the evaluation's).
    top_k : int
        A hit: the true focus among the ``top_k`` ranked regions.
    detector, ranking : DetectorConfig, RankingConfig
    """

    headmodel: HeadModelConfig = HeadModelConfig(montage="GSN-HydroCel-129", conductor="sphere",
                                                 conductivity=(0.332, 0.0113, 0.332))
    regimes: tuple[str, ...] = ("interictal", "ictal")
    n_recordings: int = 20
    duration_s: float = 30.0
    sfreq: float = 250.0
    snr_db: float = 10.0
    focus_snr_db: tuple[float, float] = (0.0, 10.0)
    focus_snr_at: str = "scalp"
    spread_mm: tuple[float, float] = (0.0, 20.0)
    seed: int = 2024
    top_k: int = 3
    detector: DetectorConfig = DetectorConfig()
    ranking: RankingConfig = RankingConfig()

    def __post_init__(self) -> None:
        for r in self.regimes:
            check_value(r, ("interictal", "ictal"), "SOZ evaluation regime")
        check_value(self.focus_snr_at, ("scalp", "source"), "focus_snr_at")
        if self.n_recordings < 2 or self.top_k < 1:
            raise ValueError(f"n_recordings = {self.n_recordings} must be >= 2 (cortical and "
                             f"thalamic foci) and top_k = {self.top_k} >= 1.")
        if self.duration_s < MIN_DURATION_S:
            raise ValueError(f"duration_s = {self.duration_s} must be at least "
                             f"{MIN_DURATION_S:g} s.")
        check_range("focus_snr_db (--focus-snr LO,HI)", tuple(self.focus_snr_db), low=-60.0,
                    high=60.0, unit="dB", example="0,10")
        check_range("spread_mm (--spread LO,HI)", tuple(self.spread_mm), low=0.0, unit="mm",
                    example="0,20")
        if not (math.isfinite(self.snr_db) and -60.0 <= self.snr_db <= 60.0):
            raise ValueError(f"snr_db = {self.snr_db} (--snr) must be finite dB within -60..60, "
                             "e.g. 10.")

    def localize_config(self) -> dict[str, Any]:
        """The ``config`` sections for :func:`rtsource.localize`: the inverse on
        ``headmodel`` (the montage is given separately)."""
        h = self.headmodel
        return {"headmodel": {"conductor": h.conductor, "conductivity": list(h.conductivity),
                              "spacing_mm": h.spacing_mm, "bem_ico": h.bem_ico,
                              "mindist_mm": h.mindist_mm}}


@dataclass
class SOZEvalResult:
    """rows: one dict per (recording, method); summary: per (regime, focus kind, method)
    and over both regimes; meta: provenance."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def _eval_setup(cfg: SOZEvalConfig, progress: bool = False
                ) -> tuple[RegionProjector, dict[str, WaveformLibrary]]:
    """The evaluation head model's region lead fields and the regimes' libraries."""
    from .config import InverseConfig
    from .simulate import load_entry
    from .simulate.dynamics import LibraryConfig, RegionProjector, brain_nodes, build_library

    _, hm = load_entry(cfg.headmodel, None, InverseConfig(method="eloreta"), progress=progress)
    libs = {regime: build_library(LibraryConfig(
        regime=regime, n_runs=cfg.n_recordings, duration_s=cfg.duration_s, sfreq=cfg.sfreq,
        seed=cfg.seed), progress=progress) for regime in cfg.regimes}
    return RegionProjector(hm, brain_nodes()), libs


def evaluation_recording(cfg: SOZEvalConfig, regime: str, run: int, *,
                         _setup: tuple | None = None) -> SimulatedRecording:
    """The recording :func:`evaluate_soz` makes from run ``run`` of ``regime`` (for figures
    and checks of single cases).

    Raises
    ------
    ValueError
        For a regime not in ``cfg.regimes`` or a run out of range.
    """
    check_value(regime, cfg.regimes, "regime")
    projector, libs = _setup or _eval_setup(cfg)
    rng = np.random.default_rng(int(stable_hash("soz-eval", cfg.seed, regime, run, length=12),
                                    16))
    return simulate_recording(libs[regime], run, projector, rng, snr_db=cfg.snr_db,
                              focus_snr_db=cfg.focus_snr_db, spread_mm=cfg.spread_mm,
                              focus_snr_at=cfg.focus_snr_at)


def evaluate_soz(cfg: SOZEvalConfig | None = None, *,
                 methods: tuple[str, ...] = ("temporal", "eloreta"),
                 checkpoint: str | os.PathLike | None = None,
                 progress: bool = True) -> SOZEvalResult:
    """Seizure-onset ranking on simulated recordings with known foci, per method.

    For every regime, a library of ``n_recordings`` runs (seed ``cfg.seed``) gives one
    recording each (:func:`simulate_recording`, the run's focus: even runs cortical, odd runs
    thalamic); each recording goes through the same detector and ranking for every method
    (:func:`localize_soz` steps; localisation on ``cfg.headmodel``). Per recording: whether
    the focus is among the ``top_k`` regions, its rank, and the distance (mm) from the top
    region's centroid to the focus' centroid. A recording without a usable event is a miss
    (rank and distance NaN).

    Parameters
    ----------
    cfg : SOZEvalConfig
    methods : methods of :func:`rtsource.localize` (``"temporal"``, ``"eloreta"``, ...).
    checkpoint : temporal network weights (default: the shipped ones).
    progress : progress bars.

    Returns
    -------
    SOZEvalResult
        ``summary`` rows: regime (``"all"`` for both), focus kind, method, n, top-k hit
        rate, median rank, median distance of the top region (mm), fraction of recordings
        with a top-k region within 15 mm of the focus (the right neighbourhood, e.g. a
        neighbouring thalamic nucleus), recordings without events, events per recording.
    """
    from tqdm.auto import tqdm

    from ._util import file_sha256, host_provenance
    from .simulate.dynamics import brain_nodes

    cfg = cfg or SOZEvalConfig()
    nodes = brain_nodes()
    dist = nodes.distances_mm()
    inv_cfg = cfg.localize_config()
    rows: list[dict[str, Any]] = []
    timing: dict[str, float] = {m: 0.0 for m in methods}
    runtime: dict[str, str] = {}  # the temporal network's runtime (backend, precision)
    t_start = time.perf_counter()
    projector, libs = _eval_setup(cfg, progress)
    hm = projector.headmodel
    bar = tqdm(total=len(cfg.regimes) * cfg.n_recordings, desc="SOZ evaluation",
               unit="recording", disable=not progress)
    for regime in cfg.regimes:
        lib = libs[regime]
        for run in range(lib.n_runs):
            rec = evaluation_recording(cfg, regime, run, _setup=(projector, libs))
            events = detect_events(rec.eeg, rec.sfreq, cfg.detector)
            hits = _match_spikes(events.peak_s, rec.spikes_s)
            for m in methods:
                base = {"regime": regime, "run": run, "focus": rec.focus_name,
                        "focus_kind": rec.focus_kind, "method": m,
                        "spread_mm": round(rec.spread_mm, 2),
                        "focus_snr_db": round(rec.focus_snr_db, 2),
                        "n_spikes_true": len(rec.spikes_s), "n_events": len(events),
                        "events_matched": hits}
                t0 = time.perf_counter()
                try:
                    if len(events) == 0:
                        raise NoEventsError("no event", events)
                    act = region_activity(rec.eeg, rec.ch_names, rec.sfreq,
                                          cfg.headmodel.montage, m, checkpoint=checkpoint,
                                          config=inv_cfg)
                    res = rank_regions(act, events, cfg.ranking)
                    if "temporal_backend" in act.provenance:
                        runtime = {"backend": act.provenance["temporal_backend"],
                                   "precision": act.provenance["temporal_precision"]}
                except NoEventsError:
                    rows.append({**base, "n_used": 0, "rank": math.nan, "hit": False,
                                 "top_region": "", "top_kind": "", "top_dist_mm": math.nan,
                                 "topk_nearest_mm": math.nan, "focus_score": math.nan,
                                 "focus_latency_ms": math.nan})
                    continue
                finally:
                    timing[m] += time.perf_counter() - t0
                rank = res.regions.index(rec.focus_name) + 1
                top = nodes.names.index(res.regions[0])
                top_k = [nodes.names.index(x) for x in res.regions[:cfg.top_k]]
                rows.append({**base, "n_used": res.n_events, "rank": rank,
                             "hit": rank <= cfg.top_k, "top_region": res.regions[0],
                             "top_kind": res.kinds[0],
                             "top_dist_mm": round(float(dist[top, rec.focus]), 2),
                             "topk_nearest_mm": round(float(dist[top_k, rec.focus].min()), 2),
                             "focus_score": round(float(res.score[rank - 1]), 4),
                             "focus_latency_ms": float(res.latency_ms[rank - 1])})
            bar.update()
    bar.close()
    summary = _summarise(rows, methods, cfg)
    wall = time.perf_counter() - t_start
    ck = checkpoint
    net: dict[str, Any] = {}
    if "temporal" in methods:
        from .online.temporal import SHIPPED

        path = Path(ck) if ck is not None else SHIPPED
        net = {"path": str(path), "sha256": file_sha256(path) if path.exists() else None,
               **runtime}
    meta = {"config": dataclasses.asdict(cfg), "methods": list(methods), "network": net,
            "eval_headmodel_hash": hm.hash, "inverse": "on the evaluation head model",
            **host_provenance(),  # cpu, python, cores, load average at the end
            "threads": {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                       "NUMBA_NUM_THREADS")},
            "wall_s": round(wall, 1),
            "localize_s_per_method": {k: round(v, 1) for k, v in timing.items()},
            "library_keys": {r: lib.config.key for r, lib in libs.items()}}
    return SOZEvalResult(rows=rows, summary=summary, meta=meta)


def _match_spikes(peaks_s: np.ndarray, true_s: np.ndarray, tol_s: float = 0.05) -> int:
    """How many detected peaks lie within ``tol_s`` of a true focus spike."""
    if not len(peaks_s) or not len(true_s):
        return 0
    d = np.abs(np.asarray(peaks_s)[:, None] - np.asarray(true_s)[None, :]).min(axis=1)
    return int((d <= tol_s).sum())


def _summarise(rows: list[dict[str, Any]], methods: Sequence[str],
               cfg: SOZEvalConfig) -> list[dict[str, Any]]:
    out = []
    for regime in (*cfg.regimes, "all"):
        for kind in ("cortical", "thalamic"):
            for m in methods:
                sel = [r for r in rows if r["method"] == m and r["focus_kind"] == kind
                       and (regime == "all" or r["regime"] == regime)]
                if not sel:
                    continue
                ranks = np.array([r["rank"] for r in sel], float)
                d = np.array([r["top_dist_mm"] for r in sel], float)
                dk = np.array([r["topk_nearest_mm"] for r in sel], float)
                out.append({
                    "regime": regime, "focus_kind": kind, "method": m, "n": len(sel),
                    f"top{cfg.top_k}_hit_rate": round(float(np.mean([r["hit"] for r in sel])), 3),
                    "top1_hit_rate": round(float(np.mean(ranks == 1)), 3),
                    "median_rank": float(np.nanmedian(ranks)) if np.isfinite(ranks).any()
                    else math.nan,
                    "median_top_dist_mm": round(float(np.nanmedian(d)), 1)
                    if np.isfinite(d).any() else math.nan,
                    f"top{cfg.top_k}_within_15mm": round(float(np.mean(dk <= 15.0)), 3),
                    "no_event": int(sum(r["n_used"] == 0 for r in sel)),
                    "median_events": float(np.median([r["n_used"] for r in sel])),
                })
    return out


def soz_markdown(result: SOZEvalResult) -> str:
    """Markdown table of the summary."""
    k = result.meta.get("config", {}).get("top_k", 3)
    head = ["regime", "focus", "method", "n", f"top-{k} hit", "top-1 hit", "median rank",
            "median dist. top region (mm)", f"top-{k} within 15 mm", "no event",
            "events / rec. (median)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result.summary:
        def f(v: float, fmt: str) -> str:
            return "–" if not math.isfinite(v) else format(v, fmt)
        lines.append("| " + " | ".join([
            s["regime"], s["focus_kind"], s["method"], str(s["n"]),
            f"{100 * s[f'top{k}_hit_rate']:.0f} %", f"{100 * s['top1_hit_rate']:.0f} %",
            f(s["median_rank"], "g"), f(s["median_top_dist_mm"], ".1f"),
            f"{100 * s[f'top{k}_within_15mm']:.0f} %", str(s["no_event"]),
            f(s["median_events"], "g")]) + " |")
    return "\n".join(lines) + "\n"


_SNR_AT = {"scalp": "its EEG power in 0.5 s windows around its spikes over all other nodes' EEG",
           "source": "its power over a background node's"}


def write_soz_report(result: SOZEvalResult, out_dir: str | os.PathLike,
                     command: str | None = None) -> dict[str, Path]:
    """Write ``soz_recordings.csv``, ``soz_summary.csv``, ``soz_meta.json`` and
    ``soz_report.md`` under ``out_dir``; returns their paths."""
    from .evaluate.report import write_csv

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = {"recordings": write_csv(out / "soz_recordings.csv", result.rows),
             "summary": write_csv(out / "soz_summary.csv", result.summary)}
    meta = dict(result.meta)
    if command:
        meta["command"] = command
    (out / "soz_meta.json").write_text(json.dumps(meta, indent=2, default=str))
    files["meta"] = out / "soz_meta.json"
    c = meta.get("config", {})
    h = c.get("headmodel", {})
    text = ["# rtsource seizure-onset-zone evaluation\n",
            f"Simulated {', '.join(c.get('regimes', []))} recordings of {c.get('duration_s')} s "
            f"at {c.get('sfreq')} Hz from the brain model's libraries (seed {c.get('seed')}; "
            f"training used 11), {c.get('n_recordings')} per regime (even runs cortical, odd "
            f"runs thalamic foci); held-out {h.get('conductor')} head model, conductivities "
            f"{h.get('conductivity')} S/m, montage {h.get('montage')} (EEG and inverse); white "
            f"sensor noise at {c.get('snr_db')} dB; the focus' SNR ({c.get('focus_snr_at')}: "
            f"{_SNR_AT.get(str(c.get('focus_snr_at')), '')}) drawn from {c.get('focus_snr_db')} dB and its spread from {c.get('spread_mm')} mm "
            "per recording; each run keeps its own background and propagation. Same detector "
            "and ranking for every method. A hit: the true focus among the top "
            f"{c.get('top_k')} regions; a recording without a usable event is a miss. "
            "Distance: from the top-ranked region's centroid to the focus' (MNI152 mm); "
            "within 15 mm: a top-3 region's centroid that close to the focus' (the right "
            "neighbourhood, e.g. a neighbouring thalamic nucleus).\n"]
    if command:
        text.append(f"Command: `{command}`"
                    + (f" (code at commit {meta['git_commit']})" if meta.get("git_commit")
                       else "") + "\n")
    text.append(f"CPU: {meta.get('cpu')}; wall time {meta.get('wall_s')} s "
                f"(localisation per method, s: {meta.get('localize_s_per_method')}).\n")
    net = meta.get("network") or {}
    if net:
        text.append(f"Temporal network: `{Path(str(net.get('path'))).name}` sha256 "
                    f"`{str(net.get('sha256'))[:16]}…`.\n")
    text.append(soz_markdown(result))
    (out / "soz_report.md").write_text("\n".join(text))
    files["report"] = out / "soz_report.md"
    logger.info("SOZ report written to %s", out)
    return files
