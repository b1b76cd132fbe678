"""From region activity to EEG: region lead fields, spatial spread, sensor noise, samples.

* **Region lead fields** (:class:`RegionProjector`): a node's activity is a current spread
  over its source-grid points with rtsource's partial-volume weights
  (:func:`rtsource.regions.region_map`). Cortical points point along the cortex normal where
  the atlas volume shows one: the outward normal of the brain's surface, the negative
  gradient of the BN246 brain mask (sulci closed with a 4 mm ball, white matter filled,
  smoothed with a Gaussian of σ = 3 mm; scipy.ndimage) at the point, used where that
  gradient is at least a tenth of its largest value; elsewhere
  the region's dominant lead-field orientation (:class:`~rtsource.regions.RegionMap`).
  Thalamic nuclei have free orientation: a random unit vector per sample. The moment of a
  node is its activity (mV) times its volume (cm³) times ``moment_nam_per_mv_cm3`` nA·m.
* **Spread** (:func:`spread_weights`): as DeepSIF grows source patches, a cortical focus'
  waveform may also drive neighbouring cortical nodes with a Gaussian fall-off of the
  centroid distance, half amplitude at ``half_mm`` (thalamic nuclei do not spread).
* **Sensor noise** (:func:`sensor_noise`): white, spatially correlated (exp(−d/ℓ) between
  electrodes) or real resting EEG (``../shared/data/deepsif-resting``: 75 channels, 500 Hz,
  interpolated to the montage by MNE's spherical splines, resampled to the rate).
* **Samples** (:class:`DynamicComposer`): a window of a regime's library for its truth
  regions (scaled to a source SNR over the background), a window of the spontaneous library
  for every other node, projected and noised at a sensor SNR.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from scipy import ndimage

from ...headmodel import HeadModel
from ...regions import load_atlas, region_map
from ..noise import correlated_noise_factor
from .library import WaveformLibrary
from .nodes import BrainNodes

__all__ = ["NOISE_KINDS", "DynamicComposer", "DynamicSample", "RegionProjector",
           "eeg_power", "sensor_noise", "spread_weights"]

NOISE_KINDS = ("white", "correlated", "real")
"""Kinds of sensor noise."""

#: Where the real resting EEG lives (``$RTSOURCE_REAL_NOISE`` overrides).
REAL_NOISE_DIR = Path(__file__).resolve().parents[3].parent / "shared" / "data" / "deepsif-resting"


@lru_cache(maxsize=1)
def _mask_gradient() -> tuple[np.ndarray, np.ndarray]:
    at = load_atlas("bn246")
    # on a 2 mm grid (the 1 mm one costs 8x more for nothing at 7 mm source spacing)
    step = 2
    brain = at.labels[::step, ::step, ::step] > 0
    affine = at.affine.copy()
    affine[:3, :3] *= step
    # BN246 labels grey matter only: close the sulci (4 mm ball) and fill the white matter,
    # so that the boundary left is the brain's outer surface (and the medial wall)
    r = 4 // step
    g = np.mgrid[-r:r + 1, -r:r + 1, -r:r + 1]
    ball = (g**2).sum(0) <= r * r
    solid = ndimage.binary_fill_holes(ndimage.binary_closing(brain, ball))
    mask = ndimage.gaussian_filter(solid.astype(np.float32), 3.0 / step)
    grad = np.stack(np.gradient(mask), -1)  # per voxel axis
    return grad, affine


def cortex_normals(points_mni: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Outward cortex normals at MNI152 points (mm) from the smoothed BN246 brain mask.

    Returns
    -------
    normals : array, shape (n, 3)
        Unit vectors in MNI152 axes (zero where undefined).
    strength : array, shape (n,)
        Gradient magnitude (relative to its largest value over the volume).
    """
    grad, aff = _mask_gradient()
    lin = aff[:3, :3]
    ijk = np.round((points_mni - aff[:3, 3]) @ np.linalg.inv(lin).T).astype(int)
    ijk = np.clip(ijk, 0, np.array(grad.shape[:3]) - 1)
    g_vox = grad[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
    g_mm = g_vox @ np.linalg.inv(lin)  # chain rule: d/dx_mm = d/dijk · dijk/dx
    mag = np.linalg.norm(g_mm, axis=1)
    top = float(np.linalg.norm(grad.reshape(-1, 3) @ np.linalg.inv(lin), axis=1).max())
    n = -g_mm / np.maximum(mag, 1e-12)[:, None]
    return np.where(mag[:, None] > 0, n, 0.0), mag / max(top, 1e-12)


class RegionProjector:
    """Region lead fields of a head model for the brain model's nodes.

    Parameters
    ----------
    headmodel : HeadModel
        Any rtsource head model (conductor, montage).
    nodes : BrainNodes
    moment_nam_per_mv_cm3 : float
        Dipole moment per mV of activity and cm³ of region (nA·m).

    Attributes
    ----------
    fixed : array, shape (n_channels, n_nodes)
        EEG (V) per mV of activity, for fixed-orientation (cortical) nodes; thalamic
        columns are zero (see :meth:`leadfield`).
    free : array, shape (n_channels, n_thalamic, 3)
        EEG (V) per mV for the three orientations of each thalamic node.
    weights : array, shape (n_nodes, n_sources)
        Partial-volume weights (rows sum to 1).
    orientations : array, shape (n_sources, 3)
        Head-frame orientation used at every grid point of a cortical region.
    normal_fraction : float
        Fraction of cortical grid weight whose orientation follows the cortex normal.
    """

    def __init__(self, headmodel: HeadModel, nodes: BrainNodes, *,
                 moment_nam_per_mv_cm3: float = 10.0) -> None:
        rmap = region_map(headmodel, "bn246")
        rows = [rmap.names.index(n) for n in nodes.names]
        W = rmap.weights[rows].astype(np.float64)
        self.weights, self.nodes, self.headmodel = W, nodes, headmodel
        # head-frame <-> MNI152 linear map, fitted on the grid
        X = np.c_[headmodel.src_pos, np.ones(headmodel.n_sources)]
        M = np.linalg.lstsq(X, headmodel.src_pos_mni, rcond=None)[0][:3].T  # mni = M head
        normals_mni, strength = cortex_normals(headmodel.src_pos_mni)
        n_head = normals_mni @ np.linalg.inv(M).T
        n_head /= np.maximum(np.linalg.norm(n_head, axis=1, keepdims=True), 1e-12)
        ok = strength >= 0.1
        dom = rmap.orientations[rows]  # (n_nodes, 3)
        owner = W.argmax(0)  # node with most weight at each grid point
        ori = np.where(ok[:, None], n_head, dom[owner])
        self.orientations = ori
        cort = nodes.cortical
        self.normal_fraction = float((W[cort] * ok[None]).sum() / W[cort].sum())
        scale = np.asarray(nodes.n_voxels, float) / 1000.0 * moment_nam_per_mv_cm3 * 1e-9
        G = headmodel.gain  # (n_ch, n_src, 3)
        fixed = np.einsum("rs,csk,sk->cr", W, G, ori) * scale[None]
        fixed[:, ~cort] = 0.0
        self.fixed = fixed
        thal = np.flatnonzero(~cort)
        self._free_idx = thal
        self.free = np.einsum("rs,csk->crk", W[thal], G) * scale[thal][None, :, None]

    def leadfield(self, free_orientations: np.ndarray | None = None) -> np.ndarray:
        """Lead field (n_channels, n_nodes), V per mV, with the given orientations (n_free, 3)
        of the non-cortical nodes (unit vectors; None: each nucleus' strongest direction)."""
        L = self.fixed.copy()
        if len(self._free_idx):
            if free_orientations is None:
                u = np.stack([np.linalg.svd(self.free[:, k, :], full_matrices=False)[2][0]
                              for k in range(len(self._free_idx))])
            else:
                u = np.asarray(free_orientations, float)
            L[:, self._free_idx] = np.einsum("ckj,kj->ck", self.free, u)
        return L


def spread_weights(nodes: BrainNodes, centres: list[int], half_mm: float) -> np.ndarray:
    """Gaussian spread of cortical focus waveforms over neighbouring cortical nodes.

    Returns
    -------
    S : array, shape (n_nodes, len(centres))
        S[i, k] = exp(−ln2 · (d(i, c_k) / half_mm)²) for a cortical centre c_k and a
        cortical node i: 1 at the centre, half amplitude at ``half_mm``. A thalamic (or
        other subcortical) centre does not spread: its column is 1 at the centre only (the
        nuclei are separate structures a few millimetres apart).
    """
    centres = list(centres)
    d = nodes.distances_mm()[:, centres]
    S = np.exp(-np.log(2.0) * (d / max(half_mm, 1e-9)) ** 2) if half_mm > 0 else (d == 0) * 1.0
    cortical_pair = nodes.cortical[:, None] & nodes.cortical[centres][None, :]
    centre = np.arange(nodes.n_nodes)[:, None] == np.asarray(centres)[None, :]
    return np.where(cortical_pair, S, centre * 1.0)


@lru_cache(maxsize=4)
def _real_noise(ch_names: tuple[str, ...], ch_pos: bytes, sfreq: float) -> np.ndarray:
    import mne
    from scipy.io import loadmat
    from scipy.signal import resample_poly

    folder = Path(os.environ.get("RTSOURCE_REAL_NOISE", REAL_NOISE_DIR))
    path = folder / "realistic_noise.mat"
    if not path.exists():
        raise FileNotFoundError(
            f"noise='real' needs the resting EEG {path} (DeepSIF's realistic_noise.mat); set "
            "RTSOURCE_REAL_NOISE to its folder or use noise='white' or 'correlated'.")
    data = loadmat(str(path))["data"]  # (4, 500, 75)
    el = loadmat(str(folder / "electrode_75.mat"), simplify_cells=True)["eloc75"]
    labels = [str(e["labels"]) for e in el if str(e.get("type", "")) != "FID"][:data.shape[2]]
    name = ("colin27_1005" if "colin27_1005" in mne.channels.get_builtin_montages()
            else "standard_1005")
    std = mne.channels.make_standard_montage(name)
    pos = std.get_positions()["ch_pos"]
    lut = {k.lower(): v for k, v in pos.items()}
    keep = [i for i, lab in enumerate(labels) if lab.lower() in lut]
    src_names = [f"src-{labels[i]}" for i in keep]
    tgt_pos = np.frombuffer(ch_pos).reshape(-1, 3)
    names = src_names + list(ch_names)
    info = mne.create_info(names, 500.0, "eeg")
    dig = dict(zip(src_names, [lut[labels[i].lower()] for i in keep], strict=True))
    dig.update(zip(ch_names, tgt_pos, strict=True))
    info.set_montage(mne.channels.make_dig_montage(dig, coord_frame="head"))
    segs = []
    for seg in data:
        x = np.zeros((len(names), seg.shape[0]))
        x[:len(keep)] = seg[:, keep].T
        raw = mne.io.RawArray(x, info.copy(), verbose="error")
        raw.info["bads"] = list(ch_names)
        raw.interpolate_bads(reset_bads=True, origin=(0.0, 0.0, 0.04), verbose="error")
        y = raw.get_data(picks=list(ch_names))
        if sfreq != 500.0:
            from fractions import Fraction

            fr = Fraction(sfreq / 500.0).limit_denominator(100)
            y = resample_poly(y, fr.numerator, fr.denominator, axis=1)
        segs.append(y - y.mean(1, keepdims=True))
    return np.stack(segs)  # (4, n_channels, n_times), units as stored


def sensor_noise(kind: str, n_times: int, ch_names: list[str], ch_pos: np.ndarray,
                 sfreq: float, rng: np.random.Generator, *,
                 corr_length_mm: float = 40.0) -> np.ndarray:
    """Unit-variance sensor noise, shape (n_channels, n_times).

    Parameters
    ----------
    kind : ``"white"`` | ``"correlated"`` | ``"real"``
        White (independent), spatially correlated (covariance exp(−d/ℓ)), or a random
        stretch of real resting EEG interpolated to the montage.
    n_times : int
        Samples (for real noise at most the 1 s segments' length at ``sfreq``).
    ch_names, ch_pos : the montage (positions in metres, head frame).
    sfreq : float
    rng : numpy Generator

    Raises
    ------
    ValueError
        For another kind, or a window longer than the real segments.
    """
    from ...config import check_value

    check_value(kind, NOISE_KINDS, "noise")
    n_ch = len(ch_names)
    if kind == "white":
        x = rng.standard_normal((n_ch, n_times))
    elif kind == "correlated":
        L = correlated_noise_factor(np.asarray(ch_pos), corr_length_mm).astype(float)
        x = L @ rng.standard_normal((n_ch, n_times))
    else:
        segs = _real_noise(tuple(ch_names), np.ascontiguousarray(ch_pos, float).tobytes(),
                           float(sfreq))
        if n_times > segs.shape[2]:
            raise ValueError(f"Real noise segments are {segs.shape[2]} samples long at "
                             f"{sfreq:g} Hz; a window of {n_times} is too long: use windows "
                             "up to 1 s with noise='real'.")
        s = int(rng.integers(len(segs)))
        o = int(rng.integers(segs.shape[2] - n_times + 1))
        x = segs[s, :, o:o + n_times]
    return x / max(float(x.std()), 1e-30)


@dataclass
class DynamicSample:
    """One composed window.

    eeg : (n_channels, n_times) volts.
    activity : (n_nodes, n_times) mV, every node (truth regions scaled, plus background).
    target : (n_nodes, n_times) mV, the regime's activity only (zero outside ``truth``).
    truth : (n_nodes,) bool, regions that carry the regime's activity.
    focus : int, index of the (first) focus or stimulated nucleus (-1 for spontaneous).
    orientations : (n_free, 3) unit vectors of the free-orientation (thalamic) nodes, in the
        order of :meth:`RegionProjector.leadfield`'s argument (None when not recorded).
    """

    eeg: np.ndarray
    activity: np.ndarray
    target: np.ndarray
    truth: np.ndarray
    focus: int
    orientations: np.ndarray | None = None


def eeg_power(leadfield: np.ndarray, activity: np.ndarray) -> float:
    """Mean power of the average-referenced EEG of ``activity``.

    leadfield : (n_channels, n_nodes); activity : (n_nodes, n_times) mV. Returns V².
    """
    x = leadfield @ activity
    return float(np.mean((x - x.mean(0, keepdims=True)) ** 2))


class DynamicComposer:
    """Compose EEG windows from a regime library on a spontaneous background.

    Parameters
    ----------
    library : WaveformLibrary
        The regime's library (its truth regions carry the signal).
    background : WaveformLibrary
        A spontaneous library (same nodes, rate) for every other node.
    projector : RegionProjector
        Region lead fields of the head model that makes the EEG.
    window_s : float
        Window length (s), with a library event (spike, stimulus, ...) at ``event_frac``.
    event_frac : float
        Where in the window the event falls (0.4: at 40 % of it).
    snr_at : {"source", "scalp"}
        Where ``source_snr_db`` is measured.
    spread_mm : (float, float)
        Range of the Gaussian spread's half-amplitude distance (mm; DeepSIF: 40–60 mm for
        its 994-region model; 0 disables spreading).
    source_snr_db : (float, float)
        Range of the focus' SNR (dB): its power over the background's, in region activity
        (``snr_at = "source"``) or in average-referenced EEG over the whole window
        (``snr_at = "scalp"``, where a deep thalamic focus is as visible as a cortical one at
        the same value; :func:`rtsource.soz.simulate_recording` measures it only in 0.5 s
        around the focus' spikes, so its dB are higher for the same recording).
    noise : str
        Sensor noise kind (:data:`NOISE_KINDS`).
    """

    def __init__(self, library: WaveformLibrary, background: WaveformLibrary,
                 projector: RegionProjector, *, window_s: float = 0.5,
                 spread_mm: tuple[float, float] = (0.0, 20.0),
                 source_snr_db: tuple[float, float] = (10.0, 20.0), noise: str = "white",
                 event_frac: float = 0.4, snr_at: str = "source") -> None:
        if snr_at not in ("source", "scalp"):
            raise ValueError(f"snr_at = {snr_at!r} is not valid; choose 'source' or 'scalp'.")
        self.snr_at = snr_at
        if library.sfreq != background.sfreq or library.names != background.names:
            raise ValueError("The regime and background libraries must share nodes and rate.")
        if list(projector.nodes.names) != library.names:
            raise ValueError("The projector's nodes differ from the library's.")
        self.lib, self.bg, self.proj = library, background, projector
        self.n_times = round(window_s * library.sfreq)
        if self.n_times > min(library.waveforms.shape[1], background.waveforms.shape[1]):
            raise ValueError(f"window_s = {window_s} is longer than the library runs.")
        self.spread_mm, self.source_snr_db, self.noise = spread_mm, source_snr_db, noise
        if not 0.0 <= event_frac < 1.0:
            raise ValueError(f"event_frac = {event_frac} must be in [0, 1).")
        self.event_frac = float(event_frac)
        hm = projector.headmodel
        self.ch_names, self.ch_pos = list(hm.ch_names), np.asarray(hm.ch_pos)

    def sample(self, rng: np.random.Generator, sensor_snr_db: float) -> DynamicSample:
        """Draw one window (see the class docstring)."""
        lib, bg, n_t = self.lib, self.bg, self.n_times
        r = int(rng.integers(lib.n_runs))
        T = lib.waveforms.shape[1]
        ev = lib.events[r]
        at = int(self.event_frac * n_t)
        ev = ev[(ev - at >= 0) & (ev - at + n_t <= T)]
        start = (int(rng.choice(ev)) - at) if len(ev) else int(rng.integers(T - n_t + 1))
        truth0 = np.flatnonzero(lib.truth[r])
        if lib.config.regime == "spontaneous":  # an alpha generator drawn at random
            truth0 = np.array([int(rng.integers(len(lib.names)))])
        focus = int(lib.foci[r, 0]) if lib.foci[r, 0] >= 0 else int(truth0[0])
        sig = lib.waveforms[r, start:start + n_t].T.astype(np.float64)  # (n_nodes, n_t)
        half = float(rng.uniform(*self.spread_mm))
        S = spread_weights(self.proj.nodes, list(truth0), half)  # (n_nodes, n_truth)
        # each node takes its strongest spread source
        best = S.argmax(1)
        amp = S[np.arange(len(S)), best]
        truth = amp >= 0.5
        target = amp[:, None] * sig[truth0[best]]
        target[~truth] = 0.0
        rb = int(rng.integers(bg.n_runs))
        sb = int(rng.integers(bg.waveforms.shape[1] - n_t + 1))
        back = bg.waveforms[rb, sb:sb + n_t].T.astype(np.float64)
        p_bg = float(np.mean(back[~truth] ** 2)) if (~truth).any() else 1.0
        p_sig = float(np.mean(target[truth] ** 2))
        snr = float(rng.uniform(*self.source_snr_db))
        n_free = int((~self.proj.nodes.cortical).sum())
        u = rng.standard_normal((n_free, 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        L = self.proj.leadfield(u)
        if self.snr_at == "scalp" and (~truth).any():  # average-referenced EEG powers
            p_sig, p_bg = eeg_power(L, target), eeg_power(L[:, ~truth], back[~truth])
        target *= np.sqrt(p_bg * 10 ** (snr / 10) / max(p_sig, 1e-30))
        activity = np.where(truth[:, None], target, back)
        clean = L @ activity
        clean -= clean.mean(0, keepdims=True)
        sigma = clean.std() / np.sqrt(10 ** (sensor_snr_db / 10))
        noise = sensor_noise(self.noise, n_t, self.ch_names, self.ch_pos, lib.sfreq, rng)
        return DynamicSample(eeg=clean + sigma * noise, activity=activity, target=target,
                             truth=truth, focus=focus, orientations=u)
