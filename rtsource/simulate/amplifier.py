"""A simulated EEG amplifier on LSL with known sources in named atlas regions.

The signal is built in source space and projected with a head-model forward solution
(a three-shell sphere by default: a different conductor from the default BEM used by
``rtsource run``, so localisation is not an inverse crime):

* **active sources**: every ``segment_s`` seconds a new set of 1-3 atlas regions (BN246
  by default: cortical regions and thalamic nuclei) becomes active. Each active region
  is a patch of grid points (partial-volume weights) oscillating along the region's
  dominant orientation at its own frequency under a smooth envelope;
* **background**: random cortical dipoles with 1/f (pink) time courses, plus alpha
  (8-12 Hz) from occipital regions;
* **sensor noise**: white, independent per channel.

The stream looks like a real amplifier's (mne-lsl conventions): type ``EEG``, float32
samples in volts, ``desc/channels/channel/{label,type,unit}`` and the electrode position
in ``loc/{R0x..Ezz}`` (metres, head frame), and one extra channel ``sample_index`` of type
``misc`` carrying the sample number (modulo 2**24, exact in float32) so that a receiver
can prove that nothing was dropped or duplicated. A second, irregular string stream
(type ``Markers``) announces in JSON which regions are active, stamped with the capture
time of the first sample of each segment.

Generation (:meth:`SimulatedAmplifier.generate`) is deterministic for a seed and does not
depend on how the samples are chunked.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray
from scipy import signal

from .._util import logger, stable_hash
from ..config import HeadModelConfig
from ..stream._background import BackgroundSender
from ..stream.lslio import INDEX_LABEL, INDEX_MODULO

_LOC_NAMES = ("R0x", "R0y", "R0z", "Exx", "Exy", "Exz", "Eyx", "Eyy", "Eyz", "Ezx", "Ezy", "Ezz")
_DTYPES = {"float32": (pylsl.cf_float32, np.float32), "double64": (pylsl.cf_double64, np.float64)}
#: Region-name prefixes left out of the default pool of active regions (BN246 subcortical
#: structures other than the thalamus).
_EXCLUDED_PREFIXES = ("Amyg", "Hipp", "BG_")


@dataclass(frozen=True)
class ActiveSource:
    """One simulated active region during a segment.

    Attributes
    ----------
    region : str
        Atlas label.
    freq_hz : float
        Oscillation frequency (Hz).
    phase : float
        Phase at the segment start (radians).
    scalp_rms_uv : float
        Average-referenced scalp RMS over channels at the envelope's peak (µV).
    moment_nam : float
        Peak total dipole moment of the patch (nA·m).
    centroid_mni : tuple of 3 float
        Region centroid in MNI152 millimetres.
    """

    region: str
    freq_hz: float
    phase: float
    scalp_rms_uv: float
    moment_nam: float
    centroid_mni: tuple[float, float, float]


@dataclass(frozen=True)
class Segment:
    """A stretch of samples with a fixed set of active regions.

    Attributes
    ----------
    index : int
        Segment number (0, 1, ...).
    start : int
        First sample index (inclusive).
    stop : int
        Last sample index + 1.
    sources : tuple of ActiveSource
    """

    index: int
    start: int
    stop: int
    sources: tuple[ActiveSource, ...] = field(default_factory=tuple)

    @property
    def regions(self) -> list[str]:
        """Names of the active regions."""
        return [s.region for s in self.sources]

    def to_json(self, sfreq: float, timestamp: float | None = None) -> str:
        """The truth marker announcing this segment (JSON text)."""
        payload: dict[str, Any] = {
            "kind": "truth",
            "message": f"Active regions from sample {self.start}: {', '.join(self.regions)}.",
            "segment": self.index,
            "active": self.regions,
            "start_sample": self.start,
            "duration_s": (self.stop - self.start) / sfreq,
            "sources": [
                {
                    "region": s.region,
                    "freq_hz": s.freq_hz,
                    "scalp_rms_uv": round(s.scalp_rms_uv, 3),
                    "moment_nAm": round(s.moment_nam, 3),
                    "centroid_mni": [round(c, 1) for c in s.centroid_mni],
                }
                for s in self.sources
            ],
        }
        if timestamp is not None:
            payload["timestamp"] = timestamp
        return json.dumps(payload)


def _avg_ref_rms(topo: NDArray) -> NDArray:
    """RMS over channels of average-referenced topographies, shape (..., n_channels)."""
    t = topo - topo.mean(axis=-1, keepdims=True)
    return np.sqrt(np.mean(t**2, axis=-1))


class SimulatedAmplifier(BackgroundSender):
    """Simulated EEG amplifier: known sources, realistic background, LSL outlet.

    Parameters
    ----------
    montage : str
        MNE standard montage name or electrode file (the channels streamed).
    sfreq : float
        Sampling rate (Hz).
    name : str
        LSL stream name; the truth markers go to ``"<name>-truth"``.
    source_id : str | None
        LSL source_id (default: derived from name, montage, rate and seed).
    conductor : ``"sphere"`` | ``"bem"``
        Forward model used to project the sources (sphere by default: a different
        conductor from ``rtsource run``'s default BEM).
    atlas : str
        Atlas whose regions are activated (``"bn246"``, ``"aal3"``, ``"hcpex"`` or a path).
    regions : sequence of str | None
        Pool of regions that may become active (default: every region of the atlas except
        amygdala, hippocampus and basal ganglia; the thalamic nuclei are included).
    n_active : (int, int)
        Least and most regions active at a time.
    segment_s : float
        Seconds between changes of the active set.
    signal_uv : float
        Average-referenced scalp RMS of each active region at its envelope's peak (µV).
    background_uv : float
        Scalp RMS of the 1/f background (µV).
    alpha_uv : float
        Scalp RMS of the occipital alpha rhythm (µV).
    noise_uv : float
        Standard deviation of the white sensor noise (µV).
    chunk_size : int | None
        Samples per push (default: about 10 ms).
    seed : int
        Seed of every random choice and noise.
    dtype : ``"float32"`` | ``"double64"``
        LSL channel format.
    n_background : int
        Number of random background dipoles.
    headmodel_config : HeadModelConfig | None
        Full head-model settings (its ``montage`` and ``conductor`` are replaced by the
        arguments above).

    Attributes
    ----------
    ch_names : list of str
        EEG channel labels (the stream has one more channel, ``sample_index``).
    ch_pos : array, shape (n_eeg, 3)
        Electrode positions in metres (head frame), as written to ``loc``.
    n_pushed : int
        Samples pushed to LSL so far.
    segments : list of Segment
        Segments generated so far.
    push_log : collections.deque | None
        With ``record_push_times=True`` in :meth:`run`: ``(first_index, n, push_time)``
        per chunk, ``push_time`` being ``pylsl.local_clock()`` right after the push.
    t0 : float | None
        LSL time (capture time) of sample 0, once streaming.
    """

    _what = "Simulated amplifier"

    def __init__(
        self,
        montage: str = "biosemi128",
        sfreq: float = 1000.0,
        name: str = "rtsource-sim",
        source_id: str | None = None,
        *,
        conductor: str = "sphere",
        atlas: str = "bn246",
        regions: Sequence[str] | None = None,
        n_active: tuple[int, int] = (1, 3),
        segment_s: float = 4.0,
        signal_uv: float = 20.0,
        background_uv: float = 8.0,
        alpha_uv: float = 6.0,
        noise_uv: float = 1.0,
        chunk_size: int | None = None,
        seed: int = 0,
        dtype: str = "float32",
        n_background: int = 64,
        headmodel_config: HeadModelConfig | None = None,
    ) -> None:
        from ..headmodel import build_headmodel
        from ..regions import region_map

        if not (sfreq > 0 and math.isfinite(sfreq)):
            raise ValueError(f"sfreq must be a positive rate in Hz, got {sfreq}.")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype={dtype!r} is not valid; choose one of {list(_DTYPES)}.")
        lo, hi = (int(n_active[0]), int(n_active[1]))
        if not 0 <= lo <= hi:
            raise ValueError(f"n_active={n_active} must be (min, max) with 0 <= min <= max.")
        if not segment_s > 0:
            raise ValueError(f"segment_s must be positive, got {segment_s}.")
        self.sfreq = float(sfreq)
        self.name = name
        self.montage = str(montage)
        self.seed = int(seed)
        self.dtype = dtype
        self.source_id = source_id or (
            "rtsource-sim-" + stable_hash("simamp", name, self.montage, self.sfreq, self.seed)
        )
        self.truth_name = f"{name}-truth"
        self.chunk_size = int(chunk_size or max(1, round(self.sfreq / 100.0)))
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1 sample, got {chunk_size}.")
        self.segment_len = max(1, round(segment_s * self.sfreq))
        self.n_active = (lo, hi)
        self.signal_uv, self.background_uv = float(signal_uv), float(background_uv)
        self.alpha_uv, self.noise_uv = float(alpha_uv), float(noise_uv)

        hcfg = dataclasses.replace(
            headmodel_config or HeadModelConfig(), montage=self.montage, conductor=conductor
        )
        self.headmodel_config = hcfg
        hm = build_headmodel(hcfg, progress=False)
        self.headmodel = hm
        self.ch_names = list(hm.ch_names)
        self.ch_pos = np.asarray(hm.ch_pos, dtype=np.float64)
        self.n_eeg = len(self.ch_names)
        self.n_channels = self.n_eeg + 1
        rmap = region_map(hm, atlas)
        self.atlas = rmap.atlas
        self.region_names = list(rmap.names)
        if regions is None:
            pool = [r for r in rmap.names if not r.startswith(_EXCLUDED_PREFIXES)]
        else:
            unknown = [r for r in regions if r not in rmap.names]
            if unknown:
                raise ValueError(
                    f"Regions {unknown[:10]} are not in atlas {rmap.atlas!r}; valid names are "
                    f"e.g. {rmap.names[:6]}."
                )
            pool = list(regions)
        if len(pool) < hi:
            raise ValueError(
                f"The pool has {len(pool)} regions but up to {hi} must be active at once."
            )
        self.pool = pool
        self._pool_index = {r: i for i, r in enumerate(pool)}

        gain = np.asarray(hm.gain, dtype=np.float64)  # (n_ch, n_src, 3), V/(A·m)
        # Region topographies (patch along the dominant orientation), per A·m of moment
        lookup = {n: i for i, n in enumerate(rmap.names)}
        rows = np.array([lookup[r] for r in pool])
        w = rmap.weights[rows].astype(np.float64)  # (n_pool, n_src), rows sum to 1
        u = rmap.orientations[rows]  # (n_pool, 3)
        topo = np.einsum("ps,csk,pk->pc", w, gain, u)  # (n_pool, n_ch)
        self._pool_topo = topo
        self._pool_rms = _avg_ref_rms(topo)  # scalp RMS (V) per A·m
        self._pool_centroid = rmap.centroids_mni[rows]

        ss = np.random.SeedSequence(self.seed)
        s_struct, s_bg, s_alpha, s_noise, s_seg = ss.spawn(5)
        rng = np.random.default_rng(s_struct)
        # Background: random dipoles, each a sum of equal-variance AR(1) processes with
        # log-spaced corners (a 1/f spectrum between the lowest and highest corner).
        n_src = hm.n_sources
        idx = rng.choice(n_src, size=min(int(n_background), n_src), replace=False)
        ori = rng.standard_normal((len(idx), 3))
        ori /= np.linalg.norm(ori, axis=1, keepdims=True)
        bg_topo = np.einsum("csk,sk->sc", gain[:, idx, :], ori)  # (K, n_ch)
        corners = [f for f in (0.25, 1.0, 4.0, 16.0, 64.0, 256.0) if f < 0.4 * self.sfreq]
        self._ar_a = np.exp(-2 * np.pi * np.array(corners) / self.sfreq)  # (B,)
        self._ar_b = np.sqrt(1 - self._ar_a**2)
        # variance of each source's time course = number of bands; scale to background_uv
        bg_rms = math.sqrt(len(corners)) * float(
            np.sqrt(np.mean(_avg_ref_rms(bg_topo) ** 2) * len(idx))
        )
        self._bg_topo = bg_topo * (self.background_uv * 1e-6 / max(bg_rms, 1e-30))
        self._ar_state = np.zeros((len(idx), len(corners)))
        # start the AR processes in their stationary distribution
        self._ar_state[:] = np.random.default_rng(s_bg).standard_normal(self._ar_state.shape)
        self._rng_bg = np.random.default_rng(s_bg.spawn(1)[0])
        # Alpha: two occipital patches per hemisphere, band-limited noise at 8-12 Hz
        occ = [r for r in rmap.names if "OcC" in r or "occipital" in r.lower()]
        if not occ:  # other atlases: the most posterior regions
            order = np.argsort(rmap.centroids_mni[:, 1])
            occ = [rmap.names[i] for i in order[:4]]
        occ_rows = np.array([lookup[r] for r in occ])
        pick = rng.choice(len(occ_rows), size=min(4, len(occ_rows)), replace=False)
        occ_rows = occ_rows[pick]
        a_topo = np.einsum(
            "ps,csk,pk->pc",
            rmap.weights[occ_rows].astype(np.float64),
            gain,
            rmap.orientations[occ_rows],
        )
        self._alpha_regions = [rmap.names[i] for i in occ_rows]
        self._alpha_sos = (
            signal.butter(2, [8.0, 12.0], "bandpass", fs=self.sfreq, output="sos")
            if self.sfreq > 30
            else np.zeros((0, 6))
        )
        if len(self._alpha_sos):
            impulse = np.zeros(int(5 * self.sfreq))
            impulse[0] = 1.0
            gain_alpha = math.sqrt(float(np.sum(signal.sosfilt(self._alpha_sos, impulse) ** 2)))
            a_rms = gain_alpha * float(np.sqrt(np.mean(_avg_ref_rms(a_topo) ** 2) * len(a_topo)))
            self._alpha_topo = a_topo * (self.alpha_uv * 1e-6 / max(a_rms, 1e-30))
            self._alpha_zi = np.zeros((len(self._alpha_sos), 2, len(a_topo)))
        else:
            self._alpha_topo = np.zeros((0, self.n_eeg))
        self._rng_alpha = np.random.default_rng(s_alpha)
        self._rng_noise = np.random.default_rng(s_noise)
        self._rng_seg = np.random.default_rng(s_seg)
        self._ramp = max(1, min(self.segment_len // 4, round(0.25 * self.sfreq)))
        self.segments: list[Segment] = []
        self._k = 0  # next sample to generate
        self.n_pushed = 0
        self.t0: float | None = None
        self.push_log: deque[tuple[int, int, float]] | None = None
        self._init_background()
        logger.info(
            "Simulated amplifier: %d EEG channels (%s, %s forward) at %g Hz, %d candidate "
            "regions of %s.",
            self.n_eeg,
            self.montage,
            conductor,
            self.sfreq,
            len(pool),
            self.atlas,
        )

    # -- generation ---------------------------------------------------------------------
    def _segment(self, j: int) -> Segment:
        while len(self.segments) <= j:
            k = len(self.segments)
            rng = self._rng_seg
            n = int(rng.integers(self.n_active[0], self.n_active[1] + 1))
            chosen = rng.choice(len(self.pool), size=n, replace=False)
            sources = []
            for p in chosen:
                freq = float(np.round(rng.uniform(4.0, 25.0) * 2) / 2)
                phase = float(rng.uniform(0, 2 * np.pi))
                moment = self.signal_uv * 1e-6 / max(float(self._pool_rms[p]), 1e-30)
                c = self._pool_centroid[p]
                sources.append(
                    ActiveSource(
                        region=self.pool[p],
                        freq_hz=freq,
                        phase=phase,
                        scalp_rms_uv=self.signal_uv,
                        moment_nam=moment * 1e9,
                        centroid_mni=(float(c[0]), float(c[1]), float(c[2])),
                    )
                )
            self.segments.append(
                Segment(
                    index=k,
                    start=k * self.segment_len,
                    stop=(k + 1) * self.segment_len,
                    sources=tuple(sources),
                )
            )
        return self.segments[j]

    def _envelope(self, pos: NDArray) -> NDArray:
        """Smooth envelope (0..1) at positions ``pos`` within a segment (samples)."""
        r = self._ramp
        up = np.clip(pos / r, 0, 1)
        down = np.clip((self.segment_len - pos) / r, 0, 1)
        return np.sin(0.5 * np.pi * np.minimum(up, down)) ** 2

    def generate(self, n: int, out: NDArray | None = None) -> NDArray:
        """Generate the next ``n`` samples.

        Parameters
        ----------
        n : int
            Number of samples.
        out : array, shape (n, n_eeg + 1) | None
            Destination (allocated as float64 when None).

        Returns
        -------
        samples : array, shape (n, n_eeg + 1)
            EEG in volts (reference-free, as projected by the forward model) followed by
            the ``sample_index`` column (index modulo :data:`INDEX_MODULO`).
        """
        n = int(n)
        if out is None:
            out = np.empty((n, self.n_channels), dtype=np.float64)
        k0 = self._k
        idx = np.arange(k0, k0 + n)
        # background: AR(1) bank per dipole
        e = self._rng_bg.standard_normal((n, *self._ar_state.shape))
        bg = np.empty((n, self._ar_state.shape[0]))
        state = self._ar_state
        for b, (a, bb) in enumerate(zip(self._ar_a, self._ar_b, strict=True)):
            y, _ = signal.lfilter([bb], [1.0, -a], e[:, :, b], axis=0, zi=a * state[None, :, b])
            if n:
                state[:, b] = y[-1]
            if b == 0:
                bg[:] = y
            else:
                bg += y
        eeg = bg @ self._bg_topo
        # alpha
        if len(self._alpha_topo):
            w = self._rng_alpha.standard_normal((n, len(self._alpha_topo)))
            al, self._alpha_zi = signal.sosfilt(self._alpha_sos, w, axis=0, zi=self._alpha_zi)
            eeg += al @ self._alpha_topo
        # active sources, segment by segment
        j0, j1 = k0 // self.segment_len, (k0 + n - 1) // self.segment_len
        for j in range(j0, j1 + 1):
            seg = self._segment(j)
            lo, hi = max(seg.start, k0), min(seg.stop, k0 + n)
            if hi <= lo or not seg.sources:
                continue
            pos = np.arange(lo, hi) - seg.start
            env = self._envelope(pos.astype(np.float64))
            t = pos / self.sfreq
            for s in seg.sources:
                p = self._pool_index[s.region]
                wave = env * np.sin(2 * np.pi * s.freq_hz * t + s.phase) * math.sqrt(2.0)
                amp = s.moment_nam * 1e-9
                eeg[lo - k0 : hi - k0] += np.outer(wave * amp, self._pool_topo[p])
        eeg += self._rng_noise.standard_normal(eeg.shape) * (self.noise_uv * 1e-6)
        out[:, : self.n_eeg] = eeg
        out[:, self.n_eeg] = idx % INDEX_MODULO
        self._k = k0 + n
        return out

    def truth_at(self, sample: int) -> Segment:
        """The segment (active regions) in force at sample index ``sample``."""
        return self._segment(int(sample) // self.segment_len)

    # -- LSL ----------------------------------------------------------------------------
    def stream_info(self) -> pylsl.StreamInfo:
        """StreamInfo of the EEG stream (labels, types, units, MNE ``loc`` positions)."""
        fmt = _DTYPES[self.dtype][0]
        info = pylsl.StreamInfo(
            self.name, "EEG", self.n_channels, self.sfreq, fmt, self.source_id
        )
        desc = info.desc()
        desc.append_child_value("manufacturer", "rtsource simulated amplifier")
        chans = desc.append_child("channels")
        for lab, pos in zip(self.ch_names, self.ch_pos, strict=True):
            ch = chans.append_child("channel")
            ch.append_child_value("label", lab)
            ch.append_child_value("type", "eeg")
            ch.append_child_value("unit", "volts")
            loc = ch.append_child("loc")
            values = np.zeros(12)
            values[:3] = pos
            for key, value in zip(_LOC_NAMES, values, strict=True):
                loc.append_child_value(key, repr(float(value)))
        ch = chans.append_child("channel")
        ch.append_child_value("label", INDEX_LABEL)
        ch.append_child_value("type", "misc")
        ch.append_child_value("unit", "none")
        sim = desc.append_child("simulation")
        for key, value in (
            ("montage", self.montage),
            ("conductor", self.headmodel_config.conductor),
            ("headmodel_hash", self.headmodel.hash),
            ("atlas", self.atlas),
            ("segment_s", repr(self.segment_len / self.sfreq)),
            ("signal_uv", repr(self.signal_uv)),
            ("background_uv", repr(self.background_uv)),
            ("alpha_uv", repr(self.alpha_uv)),
            ("noise_uv", repr(self.noise_uv)),
            ("seed", str(self.seed)),
            ("index_modulo", str(INDEX_MODULO)),
            ("truth_stream", self.truth_name),
        ):
            sim.append_child_value(key, value)
        ref = desc.append_child("reference")
        ref.append_child_value("label", "none (reference-free forward projection)")
        return info

    def truth_info(self) -> pylsl.StreamInfo:
        """StreamInfo of the truth marker stream (irregular, JSON strings)."""
        info = pylsl.StreamInfo(
            self.truth_name,
            "Markers",
            1,
            pylsl.IRREGULAR_RATE,
            pylsl.cf_string,
            f"{self.source_id}-truth",
        )
        ch = info.desc().append_child("channels").append_child("channel")
        ch.append_child_value("label", "truth")
        ch.append_child_value("type", "Markers")
        ch.append_child_value("format", "json")
        return info

    def run(
        self,
        duration_s: float | None = None,
        *,
        stop_event: threading.Event | None = None,
        ready_event: threading.Event | None = None,
        wait_for_consumer_s: float | None = None,
        record_push_times: bool = False,
        on_segment: Callable[[Segment], None] | None = None,
        linger_s: float = 0.5,
    ) -> int:
        """Stream in real time until ``duration_s`` elapsed or ``stop_event`` is set.

        Parameters
        ----------
        duration_s : float | None
            Seconds of signal to stream (None: until stopped).
        stop_event : threading.Event | None
            Set it to stop (checked between pushes).
        ready_event : threading.Event | None
            Set once both outlets exist.
        wait_for_consumer_s : float | None
            Wait up to this long for an inlet on the EEG stream before the first sample.
        record_push_times : bool
            Fill :attr:`push_log` with ``(first_index, n, push_time)`` per chunk.
        on_segment : callable | None
            Called with each new :class:`Segment` as its first sample is pushed.
        linger_s : float
            Keep the outlets alive this long after the last push (so inlets can pull the
            last samples; liblsl drops what is unread once an outlet is gone).

        Returns
        -------
        n_pushed : int
            Samples pushed.
        """
        stop_event = stop_event or self._stop
        outlet = pylsl.StreamOutlet(self.stream_info(), chunk_size=0, max_buffered=360)
        truth = pylsl.StreamOutlet(self.truth_info())
        if record_push_times:
            self.push_log = deque()
        if ready_event is not None:
            ready_event.set()
        logger.info(
            "Streaming %r (source_id %s): %d channels at %g Hz; truth markers on %r.",
            self.name,
            self.source_id,
            self.n_channels,
            self.sfreq,
            self.truth_name,
        )
        try:
            if wait_for_consumer_s:
                deadline = pylsl.local_clock() + wait_for_consumer_s
                while not outlet.have_consumers() and pylsl.local_clock() < deadline:
                    if stop_event.wait(0.005):
                        break
            total = None if duration_s is None else max(0, round(duration_s * self.sfreq))
            period = 1.0 / self.sfreq
            np_dtype = _DTYPES[self.dtype][1]
            buf = np.empty((self.chunk_size, self.n_channels), dtype=np.float64)
            cast = np.empty((self.chunk_size, self.n_channels), dtype=np_dtype)
            ts = np.empty(self.chunk_size)
            offsets = np.arange(self.chunk_size, dtype=np.float64)
            self.t0 = t0 = pylsl.local_clock()
            announced = -1
            while not stop_event.is_set():
                k = self._k
                n = self.chunk_size if total is None else min(self.chunk_size, total - k)
                if n <= 0:
                    break
                self.generate(n, out=buf[:n])
                np.copyto(cast[:n], buf[:n], casting="unsafe")
                np.multiply(offsets[:n] + k, period, out=ts[:n])
                ts[:n] += t0
                j = (k + n - 1) // self.segment_len
                # a sample is pushed once its capture time has come
                delay = ts[n - 1] - pylsl.local_clock()
                if delay > 0 and stop_event.wait(delay):
                    break
                for jj in range(announced + 1, j + 1):
                    seg = self._segment(jj)
                    stamp = t0 + seg.start * period
                    truth.push_sample([seg.to_json(self.sfreq, stamp)], stamp)
                    if on_segment is not None:
                        on_segment(seg)
                announced = j
                outlet.push_chunk(cast[:n], ts[:n])
                if self.push_log is not None:
                    self.push_log.append((k, n, pylsl.local_clock()))
                self.n_pushed += n
            if linger_s > 0 and not stop_event.is_set():
                stop_event.wait(linger_s)
        finally:
            del outlet, truth
        logger.info("Simulated amplifier %r stopped after %d samples.", self.name, self.n_pushed)
        return self.n_pushed

    # -- background thread (start/stop/wait from BackgroundSender) ----------------------
    def _send(self, stop_event: threading.Event, ready_event: threading.Event,
              **kwargs: Any) -> None:
        self.run(stop_event=stop_event, ready_event=ready_event, **kwargs)
