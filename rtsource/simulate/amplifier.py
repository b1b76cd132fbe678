"""A simulated EEG amplifier on LSL with known sources in named atlas regions.

The signal (:class:`AmplifierSignal`, no LSL) is built in source space and projected with
a head-model forward solution (a three-shell sphere by default: a different conductor
from the default BEM used by ``rtsource run``, so localisation is not an inverse crime):

* **active sources**: every ``segment_s`` seconds a new set of 1-3 atlas regions (BN246
  by default: cortical regions and thalamic nuclei) becomes active. Each active region
  is a patch of grid points (partial-volume weights) oscillating along the region's
  dominant orientation at its own frequency under a smooth envelope;
* **background**: random cortical dipoles with 1/f (pink) time courses, plus alpha
  (8-12 Hz) from occipital regions;
* **sensor noise**: white, independent per channel.

:class:`SimulatedAmplifier` sends that signal in real time with the LSL sender of
:mod:`rtsource.stream.sender` (as mne-lsl's ``PlayerLSL`` sits on ``BasePlayer``). The
stream looks like a real amplifier's (mne-lsl conventions): type ``EEG``, float32 samples
in volts, ``desc/channels/channel/{label,type,unit}`` and the electrode position in
``loc/{R0x..Ezz}`` (metres, head frame), and one extra channel ``sample_index`` of type
``misc`` carrying the sample number (modulo 2**24, exact in float32) so that a receiver
can prove that nothing was dropped or duplicated. A second, irregular string stream
(type ``Markers``) announces in JSON which regions are active, stamped with the capture
time of the first sample of each segment.

Generation (:meth:`AmplifierSignal.generate`) is deterministic for a seed and does not
depend on how the samples are chunked.
"""

from __future__ import annotations

import dataclasses
import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray
from scipy import signal

from .._util import logger, stable_hash
from ..config import HeadModelConfig
from ..headmodel import build_headmodel
from ..regions import region_map
from ..stream.lslio import INDEX_LABEL, INDEX_MODULO
from ..stream.sender import LiveSender, check_dtype, eeg_stream_info

__all__ = ["INDEX_LABEL", "INDEX_MODULO", "ActiveSource", "AmplifierSignal", "Segment",
           "SimulatedAmplifier"]

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


class AmplifierSignal:
    """The simulated EEG (no LSL): known sources, realistic background, sensor noise.

    Parameters
    ----------
    montage : str
        MNE standard montage name or electrode file (the channels generated).
    sfreq : float
        Sampling rate (Hz).
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
    seed : int
        Seed of every random choice and noise.
    n_background : int
        Number of random background dipoles.
    headmodel_config : HeadModelConfig | None
        Full head-model settings (its ``montage`` and ``conductor`` are replaced by the
        arguments above).

    Attributes
    ----------
    ch_names : list of str
        EEG channel labels (:meth:`generate` adds one column, the sample index).
    ch_pos : array, shape (n_eeg, 3)
        Electrode positions in metres (head frame).
    n_eeg, n_channels : int
        EEG channels, and columns of :meth:`generate` (``n_eeg + 1``).
    headmodel : HeadModel
        The head model projecting the sources.
    atlas : str
        Name of the atlas.
    region_names : list of str
        Every region of the atlas.
    pool : list of str
        Regions that may become active.
    segment_len : int
        Samples per segment.
    segments : list of Segment
        Segments drawn so far.
    """

    def __init__(
        self,
        montage: str = "biosemi128",
        sfreq: float = 1000.0,
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
        seed: int = 0,
        n_background: int = 64,
        headmodel_config: HeadModelConfig | None = None,
    ) -> None:
        if not (sfreq > 0 and math.isfinite(sfreq)):
            raise ValueError(f"sfreq must be a positive rate in Hz, got {sfreq}.")
        lo, hi = (int(n_active[0]), int(n_active[1]))
        if not 0 <= lo <= hi:
            raise ValueError(f"n_active={n_active} must be (min, max) with 0 <= min <= max.")
        if not segment_s > 0:
            raise ValueError(f"segment_s must be positive, got {segment_s}.")
        self.sfreq = float(sfreq)
        self.montage = str(montage)
        self.seed = int(seed)
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
        logger.info(
            "Simulated EEG: %d channels (%s, %s forward) at %g Hz, %d candidate "
            "regions of %s.",
            self.n_eeg,
            self.montage,
            conductor,
            self.sfreq,
            len(pool),
            self.atlas,
        )

    @property
    def n_generated(self) -> int:
        """Samples generated so far (the index of the next sample)."""
        return self._k

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
            Destination (allocated as float64 when None). The signal is computed in
            float64 and cast on assignment to ``out``'s dtype (float32 for LSL).

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



def _from_signal(attr: str, doc: str) -> property:
    """A read-only attribute of :class:`SimulatedAmplifier` taken from its signal."""
    return property(lambda self: getattr(self.signal, attr), doc=doc)


class SimulatedAmplifier(LiveSender):
    """Simulated EEG amplifier: an :class:`AmplifierSignal` sent live on LSL.

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
    conductor, atlas, regions, n_active, segment_s, signal_uv, background_uv, alpha_uv,
    noise_uv, seed, n_background, headmodel_config
        The signal's settings: see :class:`AmplifierSignal`.
    chunk_size : int | None
        Samples per push (default: about 10 ms).
    dtype : ``"float32"`` | ``"double64"``
        LSL channel format.

    Attributes
    ----------
    signal : AmplifierSignal
        The generated signal (physics; no LSL).
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
    truth_name : str
        Name of the truth marker stream.
    """

    _what = "Simulated amplifier"

    sfreq = _from_signal("sfreq", "Sampling rate (Hz).")
    montage = _from_signal("montage", "Montage name or electrode file.")
    seed = _from_signal("seed", "Seed of the signal.")
    ch_names = _from_signal("ch_names", "EEG channel labels.")
    ch_pos = _from_signal("ch_pos", "Electrode positions, shape (n_eeg, 3), metres.")
    n_eeg = _from_signal("n_eeg", "Number of EEG channels.")
    headmodel = _from_signal("headmodel", "The head model projecting the sources.")
    headmodel_config = _from_signal("headmodel_config", "Settings of the head model.")
    atlas = _from_signal("atlas", "Name of the atlas of the active regions.")
    region_names = _from_signal("region_names", "Every region of the atlas.")
    pool = _from_signal("pool", "Regions that may become active.")
    segment_len = _from_signal("segment_len", "Samples per segment.")
    segments = _from_signal("segments", "Segments drawn so far (list of Segment).")

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
        check_dtype(dtype)  # before the head model is built
        if chunk_size and int(chunk_size) < 1:
            raise ValueError(f"chunk_size must be at least 1 sample, got {chunk_size}.")
        self.signal = AmplifierSignal(
            montage,
            sfreq,
            conductor=conductor,
            atlas=atlas,
            regions=regions,
            n_active=n_active,
            segment_s=segment_s,
            signal_uv=signal_uv,
            background_uv=background_uv,
            alpha_uv=alpha_uv,
            noise_uv=noise_uv,
            seed=seed,
            n_background=n_background,
            headmodel_config=headmodel_config,
        )
        sig = self.signal
        source_id = source_id or (
            "rtsource-sim-" + stable_hash("simamp", name, sig.montage, sig.sfreq, sig.seed)
        )
        super().__init__(
            name, sig.sfreq, sig.n_channels, source_id, chunk_size=chunk_size or None, dtype=dtype
        )
        self.truth_name = f"{name}-truth"

    # -- the signal -----------------------------------------------------------------------
    def generate(self, n: int, out: NDArray | None = None) -> NDArray:
        """Generate the next ``n`` samples (see :meth:`AmplifierSignal.generate`)."""
        return self.signal.generate(n, out)

    def truth_at(self, sample: int) -> Segment:
        """The segment (active regions) in force at sample index ``sample``."""
        return self.signal.truth_at(sample)

    # -- LSL ------------------------------------------------------------------------------
    def stream_info(self) -> pylsl.StreamInfo:
        """StreamInfo of the EEG stream (labels, types, units, MNE ``loc`` positions)."""
        sig = self.signal
        info = eeg_stream_info(
            self.name,
            sig.ch_names,
            sig.sfreq,
            self.source_id,
            ch_pos=sig.ch_pos,
            dtype=self.dtype,
            manufacturer="rtsource simulated amplifier",
        )
        desc = info.desc()
        sim = desc.append_child("simulation")
        for key, value in (
            ("montage", sig.montage),
            ("conductor", sig.headmodel_config.conductor),
            ("headmodel_hash", sig.headmodel.hash),
            ("atlas", sig.atlas),
            ("segment_s", repr(sig.segment_len / sig.sfreq)),
            ("signal_uv", repr(sig.signal_uv)),
            ("background_uv", repr(sig.background_uv)),
            ("alpha_uv", repr(sig.alpha_uv)),
            ("noise_uv", repr(sig.noise_uv)),
            ("seed", str(sig.seed)),
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

    def marker_info(self) -> pylsl.StreamInfo:
        """The truth marker stream (:meth:`truth_info`)."""
        return self.truth_info()

    def markers(self, start: int, stop: int) -> list[tuple[str, int]]:
        """Truth markers of the segments that begin at samples ``start .. stop - 1``."""
        seg_len = self.signal.segment_len
        out = []
        for j in range(-(-start // seg_len), (stop - 1) // seg_len + 1):
            seg = self.signal.truth_at(j * seg_len)
            out.append((seg.to_json(self.sfreq, self.sample_time(seg.start)), seg.start))
        return out

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

        Raises
        ------
        RuntimeError
            When :meth:`generate` was called outside :meth:`run`: the stream's sample
            count and the signal's would disagree.
        """
        if self.signal.n_generated != self.n_pushed + self.n_pending:
            raise RuntimeError(
                f"Simulated amplifier {self.name!r} cannot stream: its signal is at sample "
                f"{self.signal.n_generated} but {self.n_pushed + self.n_pending} samples were "
                "sent, because generate() was called outside run(). Use a separate "
                "SimulatedAmplifier (or an AmplifierSignal) to generate samples offline."
            )

        def announce(text: str, index: int) -> None:
            if on_segment is not None:
                on_segment(self.truth_at(index))

        return super().run(
            duration_s,
            stop_event=stop_event,
            ready_event=ready_event,
            wait_for_consumer_s=wait_for_consumer_s,
            record_push_times=record_push_times,
            on_marker=None if on_segment is None else announce,
            linger_s=linger_s,
        )
