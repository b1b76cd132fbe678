"""Training the temporal network on the brain model (``rtsource train configs/train-temporal.toml``).

Samples are composed on the fly from the cached neural-mass libraries
(:mod:`rtsource.simulate.dynamics`), as DeepSIF's loader does (Sun et al. 2022):

* a window of a regime's library (spontaneous, evoked, interictal, ictal) with its event at
  a random position; with probability ``relocate_prob`` the focus waveform is moved to a
  random node (cortical, or a thalamic nucleus with probability ``thalamic_prob``), so that
  every region is a focus in training, not only the few the library simulated; one or two
  such sources per window;
* a Gaussian spread over neighbouring cortical nodes (half amplitude at ``spread_mm``),
  scaled to a source SNR (``source_snr_db``) over the spontaneous **background**, which stays
  in the EEG but not in the target;
* projected through a training head model (conductor × montage; thalamic orientations
  random), average-referenced, with white or spatially correlated sensor noise at
  ``sensor_snr_db``;
* mapped to the network's input by the eLORETA kernel averaged over each node
  (:func:`rtsource.models.node_feature_kernel`), sometimes the kernel of another conductor
  model (``mismatch_prob``).

Loss: squared error between the network output and the target, both divided by the
causal scale a stream gets (:class:`~rtsource.models.FeatureScaler`; the target also by the
window's activity-to-feature gain),
weighted ``1 + truth_weight`` on the nodes that carry the regime's activity and 1 elsewhere
(under a plain mean the few true nodes weigh little against the many silent ones, and the
network learns to shrink their waveforms); with ``focus_weight`` > 0, plus that weight times
:func:`focus_share_loss` (minus the log of the output power's share on the true nodes;
``focus_term = "share"``) or :func:`focus_distribution_loss` (the output's power map against
the target's; ``focus_term = "distribution"``).
AdamW, warm-up then cosine decay, bf16 autocast on CPUs with AVX-512-BF16 or AMX (fp32
elsewhere). Checkpoints (``last.safetensors`` + ``last.state.pt``) every few minutes; ``--resume``
continues at the saved step with the same batches an uninterrupted run would have drawn.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._util import cpu_features, logger, stable_hash
from .config import (
    HeadModelConfig,
    InverseConfig,
    check_positive,
    check_range,
    check_value,
    from_dict,
    read_toml,
)
from .models.temporal import FeatureScaler, TemporalNet, TemporalSpec, node_feature_kernel
from .simulate import load_entry
from .simulate.dynamics import (
    NOISE_KINDS,
    REGIMES,
    BrainNodes,
    LibraryConfig,
    RegionProjector,
    WaveformLibrary,
    brain_nodes,
    build_library,
    eeg_power,
    sensor_noise,
    spread_weights,
)
from .train import lr_factor, optimizer_step, use_bf16

__all__ = ["SHIPPED_TEMPORAL", "RegionActivity", "TemporalBatch", "TemporalSampler",
           "TemporalTrainConfig", "focus_distribution_loss", "focus_share",
           "focus_share_loss", "load_temporal_config", "node_power", "top1_hit",
           "scale_window", "ship_temporal", "train_temporal", "validation_batches",
           "validation_metrics", "weighted_mse"]

#: The shipped temporal network (``--method temporal`` with ``refine.checkpoint = "default"``).
SHIPPED_TEMPORAL = Path(__file__).resolve().parent / "data" / "temporal.safetensors"


def _hm(conductor: str, conductivity: tuple[float, float, float], bem_ico: int = 4
        ) -> HeadModelConfig:
    return HeadModelConfig(conductor=conductor, conductivity=conductivity, bem_ico=bem_ico)


@dataclass(frozen=True)
class TemporalTrainConfig:
    """Settings of :func:`train_temporal` (the ``[temporal]`` table of a training TOML).

    Model: ``hidden``, ``kernel``, ``n_lstm`` (:class:`~rtsource.models.TemporalSpec`).
    Optimisation: ``batch_size`` windows of ``window_s`` seconds, ``lr`` (AdamW peak),
    ``truth_weight`` (extra loss weight of the true nodes), ``focus_weight`` (weight of the
    focus term, 0: off), ``focus_term`` (``"share"``: :func:`focus_share_loss`, the output
    power's share on the true nodes, stage 4; ``"distribution"``:
    :func:`focus_distribution_loss`, the output's power map against the target's, which also
    asks for the centre of a spread source above its neighbours),
    ``weight_decay``, ``warmup_steps``, ``max_steps`` (the cosine spans them),
    ``max_minutes`` (training time, summed over resumes), ``grad_clip``, ``precision``
    (``auto``: bf16 where the CPU has AVX-512-BF16 or AMX), ``threads``.
    Data: ``regimes`` and their ``regime_weights``, library size (``library_runs`` ×
    ``library_s`` at ``sfreq``, seed ``library_seed``, never the evaluation's 2024),
    ``headmodels`` × ``montages`` (training only: the evaluation's sphere and
    GSN-HydroCel-129 are not among them), ``mismatch_prob``, ``relocate_prob``,
    ``thalamic_prob``, ``two_source_prob``, ``spread_mm``, ``source_snr_db`` (the focus'
    SNR range in dB, measured where ``snr_at`` says: ``"source"``, its power in region
    activity over the background nodes' mean power; ``"scalp"``, its EEG power over the
    background's EEG power, so that a deep thalamic focus is as visible as a cortical one),
    ``sensor_snr_db``, ``noise`` kinds, ``lambda2``; ``inputs``: ``"eloreta"`` (node vectors,
    any montage) or ``"sensors"`` (the average-referenced channels of one montage; kept for the
    comparison in ``bench/compare_temporal_inputs.py``, not usable by ``--method temporal``).
    Start: ``init_from`` (a checkpoint's weights, or ``"shipped"``; fine-tuning with a fresh
    optimiser and schedule; ignored by ``--resume``).
    Output: ``out_dir``, ``checkpoint_minutes``, ``log_steps``, ``val_windows``, ``seed``.
    """

    hidden: int = 256
    kernel: int = 5
    n_lstm: int = 2
    sfreq: float = 250.0
    window_s: float = 1.0
    batch_size: int = 16
    lr: float = 1e-3
    truth_weight: float = 3.0
    focus_weight: float = 0.0
    focus_term: str = "share"
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    warmup_steps: int = 100
    max_steps: int = 10000
    max_minutes: float | None = None
    grad_clip: float = 1.0
    precision: str = "auto"
    threads: int = 2
    regimes: tuple[str, ...] = ("spontaneous", "evoked", "interictal", "ictal")
    regime_weights: tuple[float, ...] = (0.15, 0.25, 0.35, 0.25)
    library_runs: int = 40
    library_s: float = 10.0
    library_seed: int = 11
    headmodels: tuple[HeadModelConfig, ...] = (
        _hm("bem", (0.3, 0.006, 0.3), 4), _hm("bem", (0.33, 0.0165, 0.33), 3))
    montages: tuple[str, ...] = ("biosemi64", "easycap-M10", "biosemi128")
    mismatch_prob: float = 0.2
    relocate_prob: float = 0.5
    thalamic_prob: float = 0.3
    two_source_prob: float = 0.3
    spread_mm: tuple[float, float] = (0.0, 30.0)
    source_snr_db: tuple[float, float] = (10.0, 20.0)
    snr_at: str = "source"
    sensor_snr_db: tuple[float, float] = (5.0, 20.0)
    noise: tuple[str, ...] = ("white", "correlated")
    lambda2: float = 1.0 / 9.0
    init_from: str | None = None
    out_dir: str = "runs/temporal"
    checkpoint_minutes: float = 5.0
    log_steps: int = 25
    val_windows: int = 64
    seed: int = 0
    inputs: str = "eloreta"

    def __post_init__(self) -> None:
        check_value(self.inputs, ("eloreta", "sensors"), "temporal.inputs")
        if self.inputs == "sensors" and len(self.montages) != 1:
            raise ValueError("temporal.inputs = 'sensors' feeds the channels to the network: it "
                             "serves one montage; give exactly one in temporal.montages.")
        for r in self.regimes:
            check_value(r, REGIMES, "temporal.regimes")
        for n in self.noise:
            check_value(n, NOISE_KINDS, "temporal.noise")
        check_value(self.precision, ("auto", "fp32", "bf16"), "temporal.precision")
        check_value(self.snr_at, ("source", "scalp"), "temporal.snr_at")
        check_value(self.focus_term, ("share", "distribution"), "temporal.focus_term")
        check_range("Setting temporal.source_snr_db", list(self.source_snr_db), low=-60.0,
                    high=60.0, unit="dB", example="[10.0, 20.0]" if self.snr_at == "source"
                    else "[-15.0, 10.0]")
        check_range("Setting temporal.sensor_snr_db", list(self.sensor_snr_db), low=-60.0,
                    high=60.0, unit="dB", example="[5.0, 20.0]")
        check_range("Setting temporal.spread_mm", list(self.spread_mm), low=0.0, unit="mm",
                    example="[0.0, 30.0]")
        for name in ("mismatch_prob", "relocate_prob", "thalamic_prob", "two_source_prob"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"Setting temporal.{name} = {getattr(self, name)!r} is a "
                                 "probability: give a value in [0, 1].")
        check_positive("temporal", **{n: getattr(self, n) for n in (
            "lr", "window_s", "library_s", "sfreq", "lambda2", "checkpoint_minutes",
            "max_minutes")})  # max_minutes None: no limit
        for name in ("truth_weight", "focus_weight", "weight_decay", "grad_clip",
                     "warmup_steps"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"Setting temporal.{name} = {getattr(self, name)!r} must be "
                                 ">= 0.")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ValueError(f"Setting temporal.min_lr_ratio = {self.min_lr_ratio!r} must be in "
                             "[0, 1] (the final learning rate as a fraction of temporal.lr).")
        if any(not (math.isfinite(w) and w >= 0) for w in self.regime_weights) or not sum(
                self.regime_weights) > 0:
            raise ValueError(f"Setting temporal.regime_weights = {list(self.regime_weights)} "
                             "must be finite, >= 0 and not all 0 (they are normalised to sum "
                             "to 1).")
        if len(self.regime_weights) != len(self.regimes):
            raise ValueError(f"temporal.regime_weights has {len(self.regime_weights)} values "
                             f"for {len(self.regimes)} regimes; give one weight per regime.")
        for name in ("batch_size", "max_steps", "library_runs", "threads", "hidden", "kernel",
                     "n_lstm", "log_steps", "val_windows"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Setting temporal.{name} = {getattr(self, name)!r} must be "
                                 ">= 1.")

    @property
    def spec(self) -> TemporalSpec:
        """The architecture (for ``inputs = "sensors"`` ``n_inputs`` is set from the
        montage's head model by :func:`train_temporal`)."""
        return TemporalSpec(hidden=self.hidden, kernel=self.kernel, n_lstm=self.n_lstm,
                            sfreq=self.sfreq)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def load_temporal_config(path: str | os.PathLike | None = None, **overrides: Any
                         ) -> TemporalTrainConfig:
    """Read the ``[temporal]`` table of a TOML file (unknown keys are errors); keyword
    overrides that are not None replace its values."""
    data = dict(read_toml(path)["temporal"]) if path is not None else {}
    hms = data.pop("headmodels", None)
    if data.get("init_from") == "":
        data["init_from"] = None
    weights = data.pop("regime_weights", None)
    cfg = from_dict(TemporalTrainConfig, data, prefix="temporal.")
    if weights is not None:
        if not isinstance(weights, list) or not all(isinstance(w, (int, float)) for w in weights):
            raise ValueError(f"Setting temporal.regime_weights = {weights!r} must be a list of "
                             "numbers, one per regime.")
        cfg = dataclasses.replace(cfg, regime_weights=tuple(float(w) for w in weights))
    if hms is not None:
        cfg = dataclasses.replace(cfg, headmodels=tuple(
            from_dict(HeadModelConfig, h, prefix=f"temporal.headmodels[{i}].")
            for i, h in enumerate(hms)))
    return dataclasses.replace(cfg, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class TemporalBatch:
    """inputs (B, T, 3 · n_nodes) scaled features; targets (B, T, n_nodes) scaled target;
    truth (B, n_nodes) bool; scale (B,) feature RMS; gain (B,) activity RMS / feature RMS."""

    inputs: torch.Tensor
    targets: torch.Tensor
    truth: np.ndarray
    scale: np.ndarray
    gain: np.ndarray


@dataclass
class _Head:
    name: str
    projector: RegionProjector
    features: list[np.ndarray] = field(default_factory=list)  # [own kernel, other kernels...]
    ch_names: list[str] = field(default_factory=list)
    ch_pos: np.ndarray | None = None


class RegionActivity:
    """Draws the brain model's activity of one training window (the composition shared by
    :class:`TemporalSampler` and :mod:`rtsource.adapt`): one or two sources (a regime's focus
    waveform at its own region or moved to a random node), Gaussian spread, scaled to a
    source SNR over a spontaneous background.

    Parameters
    ----------
    cfg : TemporalTrainConfig
        Regimes and their weights, library, relocation, spread and SNR settings.
    nodes : BrainNodes
    n_times : window length in samples at ``cfg.sfreq``.
    progress : progress bars while the libraries are built or loaded.
    """

    def __init__(self, cfg: TemporalTrainConfig, nodes: BrainNodes, n_times: int,
                 progress: bool = True) -> None:
        self.cfg, self.nodes, self.n_times = cfg, nodes, n_times
        self.libs: dict[str, WaveformLibrary] = {
            r: build_library(LibraryConfig(regime=r, n_runs=cfg.library_runs,
                                           duration_s=cfg.library_s, sfreq=cfg.sfreq,
                                           seed=cfg.library_seed), progress=progress)
            for r in dict.fromkeys(("spontaneous", *cfg.regimes))}
        self.cortical = np.flatnonzero(nodes.cortical)
        self.thalamic = np.flatnonzero(~nodes.cortical)
        w = np.asarray(cfg.regime_weights, float)
        self.regime_p = w / w.sum()

    def _window(self, lib: WaveformLibrary, rng: np.random.Generator) -> tuple[int, int]:
        n_t, T = self.n_times, lib.waveforms.shape[1]
        r = int(rng.integers(lib.n_runs))
        ev = lib.events[r]
        if lib.config.regime != "spontaneous" and len(ev):
            e = int(rng.choice(ev))
            start = e - int(rng.uniform(0.1, 0.9) * n_t)
            return r, int(np.clip(start, 0, T - n_t))
        return r, int(rng.integers(T - n_t + 1))

    def source(self, rng: np.random.Generator) -> tuple[list[int], np.ndarray]:
        """One source: (centre nodes, their waveforms (n_centres, n_times))."""
        regime = str(rng.choice(self.cfg.regimes, p=self.regime_p))
        lib = self.libs[regime]
        r, s = self._window(lib, rng)
        wav = lib.waveforms[r, s:s + self.n_times].T.astype(np.float64)  # (n_nodes, T)
        if regime == "spontaneous":
            c = int(rng.integers(self.nodes.n_nodes))
            return [c], wav[[c]]
        truth0 = np.flatnonzero(lib.truth[r])
        focus = int(lib.foci[r, 0]) if lib.foci[r, 0] >= 0 else int(truth0[0])
        if rng.random() < self.cfg.relocate_prob:
            pool = self.thalamic if rng.random() < self.cfg.thalamic_prob else self.cortical
            return [int(rng.choice(pool))], wav[[focus]]
        return list(truth0), wav[truth0]

    def draw(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(target, background, truth): target and background (n_nodes, n_times) mV, the
        background zero on the true nodes (their activity is target + background), truth
        (n_nodes,) bool."""
        cfg, n_t = self.cfg, self.n_times
        centres, waves = self.source(rng)
        if rng.random() < cfg.two_source_prob:
            c2, w2 = self.source(rng)
            keep = [i for i, c in enumerate(c2) if c not in centres]
            centres += [c2[i] for i in keep]
            waves = np.vstack([waves, w2[keep]])
        S = spread_weights(self.nodes, centres, float(rng.uniform(*cfg.spread_mm)))
        best = S.argmax(1)
        amp = S[np.arange(len(S)), best]
        truth = amp >= 0.5
        target = amp[:, None] * waves[best]
        target[~truth] = 0.0
        bg = self.libs["spontaneous"]
        rb, sb = int(rng.integers(bg.n_runs)), int(rng.integers(bg.waveforms.shape[1] - n_t + 1))
        back = bg.waveforms[rb, sb:sb + n_t].T.astype(np.float64)
        back[truth] = 0.0
        p_bg = float(np.mean(back[~truth] ** 2)) if (~truth).any() else 1.0
        p_sig = float(np.mean(target[truth] ** 2))
        snr = float(rng.uniform(*cfg.source_snr_db))
        target *= np.sqrt(p_bg * 10 ** (snr / 10) / max(p_sig, 1e-30))
        return target, back, truth

    def at_scalp(self, target: np.ndarray, back: np.ndarray, leadfield: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
        """With ``snr_at = "scalp"``: ``target`` rescaled so that its average-referenced EEG
        power over the background's, over the whole window, is a fresh draw from
        ``source_snr_db`` (dB); otherwise (or without background) ``target`` itself, and no
        draw from ``rng``.

        Parameters
        ----------
        target, back : arrays, shape (n_nodes, n_times), mV (from :meth:`draw`)
        leadfield : array, shape (n_channels, n_nodes), the window's region lead fields
        rng : the window's generator.

        Returns
        -------
        array, shape (n_nodes, n_times), mV
        """
        if self.cfg.snr_at != "scalp":
            return target
        p_sig, p_bg = eeg_power(leadfield, target), eeg_power(leadfield, back)
        if p_bg == 0.0:
            return target
        snr = float(rng.uniform(*self.cfg.source_snr_db))
        return target * np.sqrt(p_bg * 10 ** (snr / 10) / max(p_sig, 1e-30))


def scale_window(f: np.ndarray, target: np.ndarray | None, activity_rms: float, sfreq: float
                 ) -> tuple[np.ndarray, np.ndarray | None]:
    """A window scaled as training scales it: features (T, 3 n) divided by the causal scale a
    stream gets (:class:`~rtsource.models.FeatureScaler` started at the window's first
    sample), the target (T, n) by that scale times the window's gain (activity RMS /
    feature RMS), so that the network output times the stream's scale times the median gain
    is activity."""
    st = FeatureScaler(sfreq)(f)[:, None]
    if target is None:
        return f / st, None
    gain = activity_rms / float(np.sqrt(np.mean(np.square(f, dtype=np.float64))))
    return f / st, target / (st * gain)


def weighted_mse(y: torch.Tensor, target: torch.Tensor, truth: torch.Tensor,
                 truth_weight: float) -> torch.Tensor:
    """The training loss: squared error weighted ``1 + truth_weight`` on the true nodes;
    y, target (batch, T, n_nodes), truth (batch, n_nodes) bool."""
    w = 1.0 + truth_weight * truth.to(y.dtype)[:, None, :]
    return torch.mean(w * (y.float() - target) ** 2)


def focus_share_loss(y: torch.Tensor, truth: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Minus the log of the share of the output's power that lies on the true nodes.

    The squared error alone lets a network spread a focus' activity over its neighbours (a
    neighbouring thalamic nucleus ranks as high as the true one); the target is zero off the
    true nodes, so this term, 0 for the ideal output, asks for the same map and rewards
    putting the power where the focus is. A cross-entropy over nodes whose probabilities are
    the nodes' power shares (as a softmax over the nodes' log power).

    Parameters
    ----------
    y : tensor, shape (batch, n_times, n_nodes)
        Network output (scaled).
    truth : tensor, shape (batch, n_nodes), bool
        The nodes that carry the window's activity (each window has at least one).
    eps : float
        Added to both powers (windows whose output is all zero give −log 1 = 0, not NaN).

    Returns
    -------
    tensor, scalar
        Mean over windows of −log((Σ_true P + eps) / (Σ_all P + eps)), P the mean squared
        output per node over the window (float32). An all-zero output also scores 0: the
        term only shapes where power goes; the squared error asks for the power.
    """
    return torch.mean(-torch.log(focus_share(y, truth, eps)))


def node_power(x: torch.Tensor) -> torch.Tensor:
    """Mean square per node over each window (float32): x (batch, n_times, n_nodes) →
    (batch, n_nodes). The power map the focus terms and :func:`top1_hit` compare."""
    return torch.mean(x.float() ** 2, dim=1)


def focus_share(y: torch.Tensor, truth: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Share of each window's output power on its true nodes, (Σ_true P + eps) / (Σ_all P +
    eps), shape (batch,); P the mean squared output per node (see :func:`focus_share_loss`)."""
    p = node_power(y)
    return (torch.sum(p * truth.to(p.dtype), dim=1) + eps) / (p.sum(dim=1) + eps)


def focus_distribution_loss(y: torch.Tensor, target: torch.Tensor, eps: float = 1e-6
                            ) -> torch.Tensor:
    """The output's power map against the target's: KL(q ‖ p) over the nodes.

    :func:`focus_share_loss` asks for the output's power on the true nodes but not how it is
    shared among them; a source spread over neighbouring regions (a thalamic focus over the
    neighbouring nuclei) may then peak on any of them. Here q is the target's share of power
    per node (largest at the source's centre, falling with the spread) and p the output's, so
    the term also asks for the centre above its neighbours (the region a seizure-onset
    ranking reads first). The Kullback-Leibler divergence between power distributions over
    the nodes (the cross-entropy less the target's entropy: the same gradient, 0 at best).

    Parameters
    ----------
    y : tensor, shape (batch, n_times, n_nodes)
        Network output (scaled).
    target : tensor, shape (batch, n_times, n_nodes)
        The scaled target (zero off the true nodes; each window has a non-zero one).
    eps : float
        Added to every node's output power before it is normalised (an all-zero output
        gives the uniform map, not NaN).

    Returns
    -------
    tensor, scalar
        Mean over windows of Σ_n q_n log(q_n / p_n), q_n = T_n / Σ T, p_n = (P_n + eps) /
        Σ (P + eps), T and P the mean squared target and output per node over the window
        (float32); 0 for an output whose power map is the target's, at any scale whose
        per-node power is well above ``eps``.
    """
    p = node_power(y) + eps  # (batch, n_nodes)
    t = node_power(target)
    q = t / t.sum(dim=1, keepdim=True).clamp_min(1e-30)
    logp = torch.log(p) - torch.log(p.sum(dim=1, keepdim=True))
    kl = torch.xlogy(q, q) - q * logp
    return torch.mean(kl.sum(dim=1))


def top1_hit(y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per window (bool, shape (batch,)): is the output's most powerful node (mean square over
    the window) the target's? The region a ranking reads first; y, target (batch, T, n)."""
    return torch.argmax(node_power(y), dim=1) == torch.argmax(node_power(target), dim=1)


def validation_batches(sampler: TemporalSampler, cfg: TemporalTrainConfig
                       ) -> list[TemporalBatch]:
    """The fixed validation windows of a configuration (``val_windows`` of them, drawn from
    its seed): the same for every run, resume and comparison of that configuration."""
    g_val = np.random.default_rng(cfg.seed + 10_000_019)
    return [sampler.batch(min(cfg.batch_size, cfg.val_windows - i), g_val)
            for i in range(0, cfg.val_windows, cfg.batch_size)]


class TemporalSampler:
    """Composes training windows (see the module docstring).

    Parameters
    ----------
    cfg : TemporalTrainConfig
    progress : progress bars while libraries and head models are built or loaded.
    """

    def __init__(self, cfg: TemporalTrainConfig, progress: bool = True) -> None:
        self.cfg = cfg
        self.nodes: BrainNodes = brain_nodes()
        self.n_times = round(cfg.window_s * cfg.sfreq)
        self.activity = RegionActivity(cfg, self.nodes, self.n_times, progress=progress)
        self.thalamic = self.activity.thalamic
        inv = InverseConfig(method="eloreta", lambda2=cfg.lambda2)
        self.heads: list[_Head] = []
        for montage in cfg.montages:
            kernels, heads = [], []
            for hmc in cfg.headmodels:
                entry, hm = load_entry(hmc, montage, inv, progress=progress)
                proj = RegionProjector(hm, self.nodes)
                kernels.append(node_feature_kernel(entry.kernel.numpy(), proj.weights)
                               .astype(np.float32))
                heads.append(_Head(f"{montage}/{hmc.conductor}{hmc.conductivity}", proj,
                                   ch_names=list(hm.ch_names), ch_pos=np.asarray(hm.ch_pos)))
            for i, h in enumerate(heads):  # own kernel first, the other conductors' after
                h.features = [kernels[i]] + [k for j, k in enumerate(kernels) if j != i]
                self.heads.append(h)
    def sample_one(self, rng: np.random.Generator, head: _Head | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(features (T, 3 n_nodes) unscaled, target (T, n_nodes) mV, truth (n_nodes,),
        activity RMS)."""
        cfg, n_t = self.cfg, self.n_times
        target, back, truth = self.activity.draw(rng)
        head = head if head is not None else self.heads[int(rng.integers(len(self.heads)))]
        u = rng.standard_normal((len(self.thalamic), 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        L = head.projector.leadfield(u)
        target = self.activity.at_scalp(target, back, L, rng)
        activity = target + back
        clean = L @ activity
        clean -= clean.mean(0, keepdims=True)
        sigma = clean.std() / np.sqrt(10 ** (float(rng.uniform(*cfg.sensor_snr_db)) / 10))
        kind = str(rng.choice(cfg.noise))
        eeg = clean + sigma * sensor_noise(kind, n_t, head.ch_names, head.ch_pos, cfg.sfreq, rng)
        F = head.features[0]
        if len(head.features) > 1 and rng.random() < cfg.mismatch_prob:
            F = head.features[1 + int(rng.integers(len(head.features) - 1))]
        if cfg.inputs == "sensors":
            return eeg.T.astype(np.float32), target.T, truth, float(np.sqrt(np.mean(activity ** 2)))
        feats = (F @ eeg.astype(np.float32)).T  # (T, 3 n_nodes)
        return feats, target.T, truth, float(np.sqrt(np.mean(activity ** 2)))

    def batch(self, n: int, rng: np.random.Generator) -> TemporalBatch:
        """``n`` windows, scaled (see :class:`TemporalBatch`).

        Each window's features are divided by the causal scale a stream gets
        (:class:`~rtsource.models.FeatureScaler` started at the window's first sample), and the
        target by the same scale times the window's gain (activity RMS / feature RMS), so
        that the network output times the stream's scale times the median gain is activity."""
        X, Y, truth, scale, gain = [], [], [], [], []
        for _ in range(n):
            f, t, tr, a = self.sample_one(rng)
            s = float(np.sqrt(np.mean(np.square(f, dtype=np.float64))))
            x, y = scale_window(f, t, a, self.cfg.sfreq)
            X.append(x)
            Y.append(y)
            truth.append(tr)
            scale.append(s)
            gain.append(a / s)
        return TemporalBatch(torch.from_numpy(np.stack(X).astype(np.float32)),
                             torch.from_numpy(np.stack(Y).astype(np.float32)),
                             np.stack(truth), np.array(scale), np.array(gain))


def _check_init_from(cfg: TemporalTrainConfig) -> Path:
    """The checkpoint ``cfg.init_from`` names, checked (exists, a TemporalNet of this
    configuration's architecture) from its header alone."""
    from .models.checkpoint import init_from_header

    src, h = init_from_header("temporal.init_from", str(cfg.init_from), SHIPPED_TEMPORAL,
                              "TemporalNet", "the temporal network",
                              "weights/temporal-stage1.safetensors")
    want = dataclasses.asdict(cfg.spec)
    got = h.get("model_config") or {}
    diff = {k: (got.get(k), v) for k, v in want.items()
            if k not in ("n_inputs", "n_nodes") and got.get(k) != v}
    if diff:
        raise ValueError(f"temporal.init_from = {cfg.init_from!r} is a "
                         f"TemporalNet with {got}; this configuration builds a "
                         f"TemporalNet with {want} (differences, checkpoint vs config: {diff}): "
                         "match hidden, kernel, n_lstm and sfreq, or start from random weights.")
    return src


def _save(model: TemporalNet, out: Path, cfg: TemporalTrainConfig, step: int, elapsed: float,
          opt, metrics: dict[str, Any], gain: float, node_names: list[str],
          node_kinds: list[str], init_info: dict[str, str] | None = None) -> Path:
    from .models.checkpoint import save_checkpoint

    last = out / "last.safetensors"
    extra = {"node_names": node_names, "node_kinds": node_kinds, "sfreq": cfg.sfreq,
             "output_gain": gain,
             "features": ("eloreta node vectors (3 per node, head frame)" if cfg.inputs == "eloreta"
                          else f"sensors ({cfg.montages[0]}, average reference)"),
             "atlas": "bn246"}
    if init_info:
        extra["init_from"] = init_info  # the weights training started from (path, SHA-256)
    save_checkpoint(model, last, spacing_mm=7.0, training_config=cfg.to_dict(),
                    metrics=metrics, extra=extra)
    tmp = out / "last.state.pt.tmp"
    torch.save({"step": step, "elapsed_s": elapsed, "optimizer": opt.state_dict(),
                "gain": gain}, tmp)
    os.replace(tmp, out / "last.state.pt")
    return last


def _loss_terms(y: torch.Tensor, b: TemporalBatch, cfg: TemporalTrainConfig
                ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The training loss' two terms: the weighted squared error, and the focus term (None
    when ``cfg.focus_weight`` is 0), unweighted."""
    truth = torch.from_numpy(b.truth)
    mse = weighted_mse(y, b.targets, truth, cfg.truth_weight)
    if cfg.focus_weight <= 0:
        return mse, None
    return mse, (focus_share_loss(y, truth) if cfg.focus_term == "share"
                 else focus_distribution_loss(y, b.targets))


def _combine(mse: torch.Tensor, focus: torch.Tensor | None,
             cfg: TemporalTrainConfig) -> torch.Tensor:
    """The training loss from :func:`_loss_terms`' two terms."""
    return mse if focus is None else mse + cfg.focus_weight * focus


def _loss(y: torch.Tensor, b: TemporalBatch, cfg: TemporalTrainConfig) -> torch.Tensor:
    return _combine(*_loss_terms(y, b, cfg), cfg)


@torch.no_grad()
def validation_metrics(model: TemporalNet, val: list[TemporalBatch], bf16: bool,
                       cfg: TemporalTrainConfig) -> dict[str, float]:
    """A network scored on validation windows (from :func:`validation_batches`), one pass.

    Returns
    -------
    dict
        ``val_loss`` (the training loss of ``cfg``, focus term included), ``val_weighted_mse``
        (its squared error alone), ``val_zero_loss`` (the loss of an all-zero output),
        ``val_focus_share`` (median share of the output's power on the true nodes, what
        :func:`focus_share_loss` rewards) and ``val_top1`` (share of windows whose most
        powerful output node is the target's, :func:`top1_hit`).
    """
    model.eval()
    loss = mse = zero = 0.0
    shares, hits = [], []
    for b in val:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y, _ = model(b.inputs)
        truth = torch.from_numpy(b.truth)
        mse_b, focus_b = _loss_terms(y, b, cfg)
        mse += float(mse_b)
        loss += float(_combine(mse_b, focus_b, cfg))
        zero += float(_loss(torch.zeros_like(b.targets), b, cfg))
        shares.append(focus_share(y, truth))
        hits.append(top1_hit(y, b.targets))
    model.train()
    return {"val_loss": loss / len(val), "val_weighted_mse": mse / len(val),
            "val_zero_loss": zero / len(val),
            "val_focus_share": float(torch.cat(shares).median()),
            "val_top1": float(torch.cat(hits).float().mean())}


def train_temporal(cfg: TemporalTrainConfig, *, resume: bool = False, progress: bool = True,
                   max_steps: int | None = None) -> dict[str, Any]:
    """Train (or resume) the temporal network; returns the last checkpoint's metrics and path.

    Parameters
    ----------
    cfg : TemporalTrainConfig
    resume : continue from ``<out_dir>/last.safetensors`` and ``last.state.pt``.
    progress : progress bar.
    max_steps : stop after this many total steps in this call (tests, split runs).

    Raises
    ------
    FileNotFoundError
        ``resume`` without a previous run in ``out_dir``.
    FloatingPointError
        The loss became NaN or infinite (lower ``lr``).
    """
    from tqdm.auto import tqdm

    from .models.checkpoint import load_checkpoint

    torch.set_num_threads(cfg.threads)
    init_src = None
    if cfg.init_from is not None and not resume:  # checked before minutes of library building
        init_src = _check_init_from(cfg)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sampler = TemporalSampler(cfg, progress=progress)
    nodes = sampler.nodes
    torch.manual_seed(cfg.seed)
    spec = cfg.spec if cfg.inputs == "eloreta" else dataclasses.replace(
        cfg.spec, n_inputs=len(sampler.heads[0].ch_names))
    model = TemporalNet(spec)
    init_info: dict[str, str] = {}
    if init_src is not None:
        start = load_checkpoint(init_src, architecture="TemporalNet")
        if start.model.spec != spec:
            raise ValueError(f"temporal.init_from = {cfg.init_from!r} is a {start.model.spec}; "
                             f"this configuration builds a {spec}: match hidden, kernel, n_lstm, "
                             "sfreq and inputs (the number of inputs).")
        model = start.model.float()
        init_info = {"path": str(init_src), "sha256": start.sha256}
        logger.info("Starting from the weights of %s (SHA-256 %s)", init_src, start.sha256)

    step, elapsed, opt_state, gain = 0, 0.0, None, None
    if resume:
        last, state_file = out / "last.safetensors", out / "last.state.pt"
        if not last.exists() or not state_file.exists():
            raise FileNotFoundError(f"Cannot resume: {str(last)!r} and {str(state_file)!r} must "
                                    f"both exist (out_dir = {cfg.out_dir!r}); start without "
                                    "--resume.")
        ck = load_checkpoint(last, architecture="TemporalNet")
        model = ck.model
        init_info = dict(ck.header.get("init_from") or {})
        st = torch.load(state_file, map_location="cpu", weights_only=True)
        step, elapsed, opt_state, gain = (int(st["step"]), float(st["elapsed_s"]),
                                          st["optimizer"], float(st["gain"]))
        logger.info("Resuming from step %d (%.1f min trained)", step, elapsed / 60)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    bf16 = use_bf16(cfg, torch.device("cpu"))  # the temporal network trains on the CPU
    val = validation_batches(sampler, cfg)
    if gain is None:  # activity RMS per feature RMS: turns the output back into mV
        gain = float(np.median(np.concatenate([b.gain for b in val])))
    stop_at = cfg.max_steps if max_steps is None else min(cfg.max_steps, max_steps)
    bar = tqdm(total=cfg.max_steps, initial=step, desc="Temporal network", unit="step",
               disable=not progress)
    t_start = time.perf_counter() - elapsed
    last_ckpt = t_call = time.perf_counter()
    ema, metrics, t_data = None, {}, 0.0
    names, kinds = list(nodes.names), [str(k) for k in nodes.kinds]
    while step < stop_at:
        for g in opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(step, cfg)
        t0 = time.perf_counter()
        rng = np.random.default_rng(int(stable_hash("temporal-batch", cfg.seed, step,
                                                    length=15), 16))
        b = sampler.batch(cfg.batch_size, rng)
        t_data += time.perf_counter() - t0
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            y, _ = model(b.inputs)
        loss = _loss(y, b, cfg)
        v = optimizer_step(loss, model, opt, cfg.grad_clip, step + 1, "lower temporal.lr")
        step += 1
        ema = v if ema is None else 0.98 * ema + 0.02 * v
        elapsed = time.perf_counter() - t_start
        bar.update()
        bar.set_postfix(loss=f"{ema:.4f}")
        time_up = cfg.max_minutes is not None and elapsed >= cfg.max_minutes * 60
        if step % cfg.log_steps == 0:
            logger.info("step %d loss %.5f (ema %.5f) %.2f s/step", step, v, ema,
                        elapsed / max(step, 1))
        if (time.perf_counter() - last_ckpt >= cfg.checkpoint_minutes * 60 or step == stop_at
                or time_up):
            metrics = {"step": step, "train_loss_ema": ema, "elapsed_s": round(elapsed, 1),
                       "samples_seen": step * cfg.batch_size,
                       "windows_per_s": round(step * cfg.batch_size / max(elapsed, 1e-9), 2),
                       "data_share": round(t_data / max(time.perf_counter() - t_call, 1e-9),
                                           3),
                       "precision": "bf16" if bf16 else "fp32", "threads": cfg.threads,
                       "cpu": cpu_features().get("model"),
                       **validation_metrics(model, val, bf16, cfg)}
            _save(model, out, cfg, step, elapsed, opt, metrics, gain, names, kinds, init_info)
            with open(out / "metrics.jsonl", "a") as fid:
                fid.write(json.dumps(metrics) + "\n")
            logger.info("checkpoint step %d: val loss %.5f (all-zero %.5f)", step,
                        metrics["val_loss"], metrics["val_zero_loss"])
            last_ckpt = time.perf_counter()
            if time_up:
                break
    bar.close()
    return {"checkpoint": str(out / "last.safetensors"), **metrics}


def ship_temporal(src: str | os.PathLike, dst: str | os.PathLike | None = None, *,
                  metrics: dict[str, Any] | None = None) -> Path:
    """Write a training checkpoint as float16 weights (the shipped format, default
    :data:`SHIPPED_TEMPORAL`), keeping its header fields; ``metrics`` are merged in."""
    from .models.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(src, architecture="TemporalNet")
    dst = Path(dst) if dst is not None else SHIPPED_TEMPORAL
    keep = ("node_names", "node_kinds", "sfreq", "output_gain", "features", "atlas", "init_from")
    save_checkpoint(ck.model, dst, spacing_mm=7.0, training_config=ck.training_config,
                    metrics={**ck.metrics, **(metrics or {})}, dtype="float16",
                    extra={k: ck.header[k] for k in keep if k in ck.header})
    return dst
