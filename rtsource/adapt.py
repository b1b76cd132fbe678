"""Adapting the temporal network to a user's unlabelled real EEG (``rtsource adapt``).

The temporal network (:mod:`rtsource.models.temporal`) is trained on neural-mass simulations
only. Real EEG differs from them (noise, artefacts, the person's background rhythms, the
electrode layout), and the network has never seen it. Yu et al. (2024, Cogn Neurodyn,
"deep source transfer learning") narrow that gap by transfer learning on the user's real
EEG; DeepSIF (Sun et al. 2022, PNAS 119:e2201128119) already composes its training data with
real resting EEG as the noise. :func:`adapt` does both, in minutes on a CPU, without labels:

1. **Windows.** The recording's EEG channels (with their electrode positions) go through
   the stages ``rtsource run --method temporal`` uses: the head model for its montage, the
   channel mapping, the temporal stage's causal conditioning (0.5 Hz high-pass, anti-alias
   low-pass) and decimation to the network's rate (250 Hz for the shipped network). The
   recording is split at MNE's ``BAD``/``EDGE`` annotations (e.g. the boundaries of
   concatenated files); each good stretch is conditioned from a fresh filter state. The last
   ``holdout`` share of the usable time (25 % by default) is **held out**: it is never used
   in fine-tuning (neither as a training window nor as noise), only for the report. From the
   rest, training windows of ``window_s`` seconds are cut at random offsets.
2. **Fine-tuning** on batches of simulated and real windows, with three terms:

   a. *simulated windows with the user's EEG as background* (supervised): a regime's
      waveform (spontaneous, evoked, interictal, ictal) at a random focus with a spatial
      spread, as in :class:`rtsource.train_temporal.TemporalSampler`, projected by the node
      lead fields of the recording's head model; the user's real training EEG is either the
      sensor noise on top of the simulated spontaneous background (at ``sensor_snr_db``) or
      replaces that background altogether (probability ``real_background_prob``, at the
      simulated background's sensor power ± 3 dB). Inputs and targets are scaled as in
      training (the causal :class:`~rtsource.models.temporal.FeatureScaler`); loss: the
      source network's squared error (the true nodes weighted ``1 + truth_weight`` as its
      training config says; a focus term of its training, ``focus_weight`` × the share or
      distribution term of stages 4–6, is left out: adaptation is scored and checked on the
      squared error and the region metrics);
   b. *the real training windows* (unsupervised; crops of 0.5–1 s at random offsets, half of
      them random mixtures of two crops, so that a short recording gives more than a few
      distinct windows) with a **forward-consistency** term: the
      node lead field ``L`` (EEG volts per mV of node activity, average reference, thalamic
      nuclei along their strongest direction) applied to the network's estimate ``ŷ`` should
      explain the EEG ``x``. Since the output's unit is arbitrary, the residual is taken after
      the least-squares scalar ``α`` per window: ``r = ‖x − α L ŷ‖² / ‖x‖²`` (``r = 1 −
      cos²(x, L ŷ)``; 0: fully explained, 1: nothing explained);
   c. an L2-SP penalty (Li et al. 2018, ICML, "Explicit inductive bias for transfer learning
      with convolutional networks") ``Σ (θ − θ₀)²`` that keeps the weights near the source
      network's, so that what it learnt on simulations is not forgotten.

   Loss ``= sim_weight · (a) + forward_weight · (b) + anchor_weight · (c)``, AdamW with a
   short warm-up and a cosine decay, bf16 autocast where the CPU has AVX-512-BF16 or AMX.
3. **Report, before and after** (fp32): the forward residual ``r`` on the held-out real
   windows (and on the training windows); the accuracy on a fixed simulated set composed on
   the evaluation head model (three-shell sphere 0.332/0.0113/0.332 S/m, GSN-HydroCel-129,
   libraries of seed 2024: none of them seen in training or adaptation) — the training loss,
   the MSE and DeepSIF's region metrics (:func:`rtsource.evaluate.dynamic.region_metrics`:
   precision, recall, localisation error, |r|) — and the same on the recording's head model
   with the held-out real EEG as the sensor noise. The project's target: a lower held-out
   forward residual with the simulated accuracy (the training loss, and the mean of
   precision, recall and |r|) no more than ``tolerance`` (5 %) worse;
   :attr:`AdaptResult.checks` says whether it held.

The adapted network is written as a checkpoint (float32 safetensors with a ``.sha256``
sidecar) whose header keeps the source network's fields and adds an ``adaptation`` record:
the source checkpoint and its SHA-256, the recording's file name and a SHA-256 of its EEG
data, the channels used, windows used and held out, steps, minutes, loss weights and the
before/after figures. ``rtsource run``/``localize --method temporal`` load it with
``refine.checkpoint = PATH``.

Limits: the forward term measures how well the estimate explains the EEG, not whether it is
right (a smeared estimate explains EEG well); the simulated sets and the L2-SP term are what
keep it honest. A few seconds of EEG adapt the network to the recording's noise and layout,
not to a person's brain.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as _dt
import hashlib
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
from .config import Config, HeadModelConfig, InverseConfig, check_value, from_dict, load_config
from .evaluate.dynamic import region_metrics
from .models.checkpoint import load_checkpoint, read_header, save_checkpoint
from .models.temporal import TemporalNet, node_feature_kernel
from .simulate import load_entry
from .simulate.dynamics import (
    DynamicComposer,
    LibraryConfig,
    RegionProjector,
    brain_nodes,
    build_library,
)
from .train import optimizer_step
from .train_temporal import (
    SHIPPED_TEMPORAL,
    RegionActivity,
    TemporalTrainConfig,
    scale_window,
    weighted_mse,
)

__all__ = ["EVAL_HEADMODEL", "AdaptConfig", "AdaptResult", "adapt", "forward_residual",
           "minnorm_residual", "report_table"]

#: The held-out head model of the simulated check (the dynamic evaluation's).
EVAL_HEADMODEL = HeadModelConfig(montage="GSN-HydroCel-129", conductor="sphere",
                                 conductivity=(0.332, 0.0113, 0.332))

REFERENCES = ("Yu, Hu, Zhao, Liu 2024, Cogn Neurodyn (deep source transfer learning); "
              "Sun et al. 2022, PNAS 119:e2201128119 (DeepSIF); "
              "Li, Grandvalet, Davoine 2018, ICML (L2-SP)")


@dataclass(frozen=True)
class AdaptConfig:
    """Settings of :func:`adapt`.

    Data: ``window_s`` (window length, s), ``holdout`` (share of the usable time, taken from
    the end, kept out of fine-tuning for the report; 0 < holdout < 1).
    Fine-tuning: ``steps`` (optimiser steps), ``minutes`` (wall-time cap; None: none),
    ``lr`` (AdamW peak learning rate), ``warmup_steps``, ``batch_sim`` simulated and
    ``batch_real`` real windows per step, loss weights ``sim_weight`` (supervised MSE on
    simulated windows), ``forward_weight`` (forward residual of real windows),
    ``anchor_weight`` (L2-SP: squared distance of the weights to the source network's),
    ``grad_clip``, ``precision`` (``auto``: bf16 where the CPU has AVX-512-BF16 or AMX),
    ``threads`` (torch threads; None leaves torch's setting), ``seed``.
    Simulated windows: ``sensor_snr_db`` (range; real EEG as sensor noise),
    ``real_background_prob`` (probability that real EEG replaces the simulated background).
    Real windows: crops of a length drawn from ``real_crop_s`` (seconds, at most
    ``window_s``) at random offsets, with probability ``real_mix_prob`` a random mixture of
    two crops (more distinct windows from a short recording).
    Report: ``eval_windows`` simulated windows per regime, at ``eval_snr_db`` (cycled), on
    ``eval_headmodel`` with libraries of seed ``eval_seed`` (``eval_library_runs`` runs of
    ``eval_library_s`` s), each window after ``eval_lead_s`` of unscored lead-in (the
    network has the stream's past when it runs live); ``eval_recording``: also on the
    recording's head model with the held-out EEG as noise; ``tolerance``: largest relative loss of simulated accuracy that
    still meets the target.
    """

    window_s: float = 1.0
    holdout: float = 0.25
    steps: int = 300
    minutes: float | None = 10.0
    lr: float = 1e-4
    warmup_steps: int = 10
    batch_sim: int = 8
    batch_real: int = 4
    sim_weight: float = 1.0
    forward_weight: float = 2.0
    anchor_weight: float = 0.5
    grad_clip: float = 1.0
    sensor_snr_db: tuple[float, float] = (0.0, 15.0)
    real_background_prob: float = 0.5
    real_crop_s: tuple[float, float] = (0.5, 1.0)
    real_mix_prob: float = 0.5
    eval_windows: int = 24
    eval_snr_db: tuple[float, ...] = (5.0, 10.0, 20.0)
    eval_headmodel: HeadModelConfig = EVAL_HEADMODEL
    eval_lead_s: float = 0.5
    eval_seed: int = 2024
    eval_library_runs: int = 6
    eval_library_s: float = 20.0
    eval_recording: bool = True
    tolerance: float = 0.05
    precision: str = "auto"
    threads: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        check_value(self.precision, ("auto", "fp32", "bf16"), "adapt.precision")
        if not 0.0 < self.holdout < 1.0:
            raise ValueError(f"holdout = {self.holdout!r} must be a share between 0 and 1 "
                             "(e.g. 0.25: the last quarter of the recording is held out).")
        if not self.window_s > 0:
            raise ValueError(f"window_s = {self.window_s!r} must be a positive number of "
                             "seconds.")
        for name in ("steps", "batch_sim", "batch_real", "eval_windows", "eval_library_runs"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < (0 if name in (
                    "steps", "batch_sim") else 1):
                raise ValueError(f"{name} = {v!r} must be a whole number >= "
                                 f"{0 if name in ('steps', 'batch_sim') else 1}.")
        if not self.eval_lead_s >= 0:
            raise ValueError(f"eval_lead_s = {self.eval_lead_s!r} must be >= 0 seconds.")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError(f"minutes = {self.minutes!r} must be positive (or None: no cap).")
        for name in ("lr", "sim_weight", "forward_weight", "anchor_weight", "tolerance",
                     "real_background_prob"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} = {getattr(self, name)!r} must be >= 0.")
        lo, hi = self.real_crop_s
        if not 0 < lo <= hi:
            raise ValueError(f"real_crop_s = {self.real_crop_s!r} must be (shortest, longest) "
                             "crop in seconds, 0 < shortest <= longest.")
        if not 0.0 <= self.real_mix_prob <= 1.0 or not 0.0 <= self.real_background_prob <= 1.0:
            raise ValueError("real_mix_prob and real_background_prob are probabilities: give "
                             "values between 0 and 1.")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads = {self.threads!r} must be >= 1 (or None).")

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


@dataclass
class AdaptResult:
    """What :func:`adapt` returns.

    path : the adapted checkpoint; sha256 : its SHA-256 (also in ``<path>.sha256``).
    before, after : the report's figures for the source and the adapted network
        (``forward_residual_holdout``, ``forward_residual_train``, ``sim`` and
        ``sim_recording``: dicts of mse, precision, recall, le_mm, corr, score).
    checks : the target's parts (``residual_lower``, ``sim_loss_within``,
        ``sim_score_within``, ``met``).
    provenance : the ``adaptation`` record written into the checkpoint header.
    """

    path: Path
    sha256: str
    before: dict[str, Any]
    after: dict[str, Any]
    checks: dict[str, bool]
    provenance: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """The before/after figures as a Markdown table."""
        return report_table(self.before, self.after, self.provenance.get("tolerance", 0.05))


# ---------------------------------------------------------------------------------------
# the recording


@dataclass
class _Recording:
    name: str
    path: str | None
    data: np.ndarray  # (n_channels, n_times) volts
    ch_names: list[str]
    sfreq: float
    montage: Any
    spans: list[tuple[int, int]]
    data_sha256: str
    excluded: list[str]
    units: str


def _read_recording(recording: Any, montage: Any, exclude: Any, units: str) -> _Recording:
    import mne

    from .online.inputs import data_units

    path = None
    if isinstance(recording, str | os.PathLike):
        path = Path(recording).expanduser()
        if not path.exists():
            raise FileNotFoundError(f"Recording {str(path)!r} does not exist.")
        try:
            raw = mne.io.read_raw(path, preload=True, verbose="error")
        except Exception as err:  # MNE raises several types for unreadable files
            raise ValueError(f"Could not read {str(path)!r} as a continuous recording: {err}. "
                             "Give a file mne.io.read_raw reads (FIF, EDF/BDF, BrainVision, "
                             "EEGLAB, ...).") from err
    elif isinstance(recording, mne.io.BaseRaw):
        raw = recording.copy().load_data(verbose="error")
        if raw.filenames and raw.filenames[0]:
            path = Path(raw.filenames[0])
    else:
        raise TypeError(f"recording must be a file name or an mne.io.Raw (a continuous "
                        f"recording); got {type(recording).__name__}. Epochs and evoked "
                        "responses are too short to adapt on.")
    name = path.name if path is not None else "recording"
    picks = mne.pick_types(raw.info, eeg=True, exclude=[])
    if len(picks) == 0:
        raise ValueError(f"{name} has no EEG channels (types: "
                         f"{sorted(set(raw.get_channel_types()))}); set their type with "
                         "raw.set_channel_types.")
    raw.pick(picks)
    excluded = list(raw.info["bads"]) if exclude == "bads" else list(exclude or ())
    unknown = [c for c in excluded if c not in raw.ch_names]
    if unknown and exclude != "bads":
        raise ValueError(f"Channels to leave out {unknown} are not EEG channels of {name} "
                         f"(channels: {', '.join(raw.ch_names[:10])}...).")
    if montage is None:
        dig = raw.get_montage()
        pos = dig.get_positions()["ch_pos"] if dig is not None else {}
        have = {k for k, v in pos.items() if np.all(np.isfinite(v)) and np.any(v != 0)}
        if not have:
            raise ValueError(
                f"{name} has no EEG channel positions; the head model needs them. Pass "
                "montage=... (rtsource adapt: --montage), e.g. 'colin27_1005' (MNE's 10-05 "
                "template) for standard labels or the electrode file of the recording.")
        missing = [c for c in raw.ch_names if c not in have and c not in excluded]
        if missing:
            raise ValueError(
                f"EEG channels {missing} of {name} have no electrode position. Leave them out "
                f"(exclude=[...], rtsource adapt: --bads {','.join(missing)}) or give them "
                "their type (raw.set_channel_types, e.g. 'misc' for EOG).")
        excluded = list(dict.fromkeys([*excluded, *[c for c in raw.ch_names if c not in have]]))
    excluded = [c for c in excluded if c in raw.ch_names]
    if excluded:
        raw.drop_channels(excluded)
    if montage is None:
        montage = raw.get_montage()
    data = raw.get_data()
    if not np.all(np.isfinite(data)):
        bad = [raw.ch_names[i] for i in np.flatnonzero(~np.isfinite(data).all(1))]
        raise ValueError(f"{name}: channels {bad[:8]} contain NaN or Inf; interpolate them or "
                         "leave them out (--bads).")
    factor, units_text = data_units("V" if units == "auto" else units, data, "units")
    data = data * factor
    h = hashlib.sha256()
    h.update(json.dumps([raw.ch_names, float(raw.info["sfreq"])]).encode())
    h.update(np.ascontiguousarray(data, "<f8").tobytes())
    return _Recording(name=name, path=str(path) if path is not None else None, data=data,
                      ch_names=list(raw.ch_names), sfreq=float(raw.info["sfreq"]),
                      montage=montage, spans=_good_spans(raw), data_sha256=h.hexdigest(),
                      excluded=excluded, units=units_text)


def _good_spans(raw: Any) -> list[tuple[int, int]]:
    """Contiguous stretches (start, stop) in samples between ``BAD``/``EDGE`` annotations
    (a zero-duration one splits, a longer one is cut out)."""
    n = int(raw.n_times)
    cuts, drops = {0, n}, []
    ann = raw.annotations
    for onset, dur, desc in zip(ann.onset, ann.duration, ann.description, strict=True):
        if not str(desc).lower().startswith(("bad", "edge")):
            continue
        # a Raw's annotations count from its recording's sample 0 (MNE syncs them to the
        # measurement date, or to the first sample without one): shift by first_time
        a = int(round((onset - raw.first_time) * raw.info["sfreq"]))
        b = int(round((onset + dur - raw.first_time) * raw.info["sfreq"]))
        a, b = min(max(a, 0), n), min(max(b, 0), n)
        cuts.update((a, b))
        if b > a:
            drops.append((a, b))
    edges = sorted(cuts)
    spans = []
    for a, b in zip(edges[:-1], edges[1:], strict=True):
        if b > a and not any(a >= da and b <= db for da, db in drops):
            spans.append((a, b))
    return spans


def _plan(lengths: list[int], n_t: int, cfg: AdaptConfig, name: str, sfreq: float) -> int:
    """The sample (of the decimated stretches laid end to end) where the held-out share
    starts; ValueError when the training or the held-out part holds no window."""
    cut = round(sum(lengths) * (1 - cfg.holdout))
    parts = [np.empty(n, np.int8) for n in lengths]
    train, held = _split(parts, cut)
    n_train, n_held = len(_tiles(train, n_t)), len(_tiles(held, n_t))
    if n_train == 0 or n_held == 0:
        need = cfg.window_s / min(cfg.holdout, 1 - cfg.holdout)
        raise ValueError(
            f"{name} is too short to adapt on: {sum(lengths) / sfreq:.2f} s of usable EEG in "
            f"{len(lengths)} stretch(es) between bad/edge annotations give {n_train} training "
            f"and {n_held} held-out window(s) of {cfg.window_s:g} s (the last "
            f"{cfg.holdout:.0%} is held out). Adaptation needs at least one of each: give a "
            f"recording with at least about {need:.0f} s of clean EEG (a few minutes is "
            "better), or shorten the window (window_s, --window).")
    return cut


def _split(parts: list[np.ndarray], cut: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Stretches laid end to end, cut at sample ``cut``: (before, from it on)."""
    train, held, seen = [], [], 0
    for p in parts:
        k = min(max(cut - seen, 0), len(p))
        if k > 0:
            train.append(p[:k])
        if k < len(p):
            held.append(p[k:])
        seen += len(p)
    return train, held


def _tiles(parts: list[np.ndarray], n: int) -> list[np.ndarray]:
    """Non-overlapping windows of ``n`` samples from the start of each stretch."""
    return [p[i:i + n] for p in parts for i in range(0, len(p) - n + 1, n)]


# ---------------------------------------------------------------------------------------
# the forward-consistency term


def forward_residual(est: torch.Tensor, eeg: torch.Tensor, leadfield: torch.Tensor
                     ) -> torch.Tensor:
    """Relative residual of EEG explained by node activity, after the best scalar.

    Parameters
    ----------
    est : tensor, shape (batch, n_times, n_nodes)
        Node activity in any unit (the network's output).
    eeg : tensor, shape (batch, n_times, n_channels)
        EEG (any unit), average reference.
    leadfield : tensor, shape (n_channels, n_nodes)
        Node lead field (average reference).

    Returns
    -------
    tensor, shape (batch,)
        ``‖x − α L ŷ‖² / ‖x‖²`` per window with ``α = ⟨x, L ŷ⟩ / ‖L ŷ‖²`` (least squares):
        0 when the estimate explains the window, 1 when it explains none of it.
    """
    p = est @ leadfield.T
    num = (eeg * p).sum((1, 2))
    pp = (p * p).sum((1, 2)).clamp_min(1e-30)
    xx = (eeg * eeg).sum((1, 2)).clamp_min(1e-30)
    return 1.0 - num * num / (pp * xx)


# ---------------------------------------------------------------------------------------
# simulated windows


def _train_settings(header: dict[str, Any]) -> TemporalTrainConfig:
    """The source network's training settings that composition needs (defaults where the
    header lacks them)."""
    tc = dict(header.get("training_config") or {})
    # a header without truth_weight comes from a network trained with a plain MSE
    base = dataclasses.replace(TemporalTrainConfig(), truth_weight=0.0)
    keep = {}
    for f in ("sfreq", "regimes", "regime_weights", "library_runs", "library_s",
              "library_seed", "relocate_prob", "thalamic_prob", "two_source_prob", "spread_mm",
              "source_snr_db", "snr_at", "truth_weight"):
        if f in tc:
            v = tc[f]
            keep[f] = tuple(v) if isinstance(v, list) else v
    try:
        return dataclasses.replace(base, **keep)
    except (TypeError, ValueError) as err:
        raise ValueError(f"The checkpoint's training_config is not usable: {err}") from err


class _Composer:
    """Simulated windows on one head model with real EEG as noise or background."""

    def __init__(self, tcfg: TemporalTrainConfig, projector: RegionProjector,
                 features: np.ndarray, noise: list[np.ndarray], n_times: int,
                 cfg: AdaptConfig, progress: bool) -> None:
        self.tcfg, self.proj, self.cfg = tcfg, projector, cfg
        self.nodes = projector.nodes
        self.F = features  # (n_channels, 3 n_nodes)
        self.noise = [x for x in noise if len(x) >= n_times]  # (n, n_channels) each
        self.n_times = n_times
        # the training's composition of the brain model's activity (the same draws)
        self.activity = RegionActivity(tcfg, self.nodes, n_times, progress=progress)
        self.thalamic = self.activity.thalamic

    def _real(self, rng: np.random.Generator) -> np.ndarray:
        x = self.noise[int(rng.integers(len(self.noise)))]
        o = int(rng.integers(len(x) - self.n_times + 1))
        seg = x[o:o + self.n_times].T.astype(np.float64)  # (n_channels, n_times)
        return seg - seg.mean(0, keepdims=True)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scaled features (T, 3 n), scaled target (T, n), truth (n,))."""
        t = self.tcfg
        target, back, truth = self.activity.draw(rng)
        u = rng.standard_normal((len(self.thalamic), 3))
        u /= np.linalg.norm(u, axis=1, keepdims=True)
        L = self.proj.leadfield(u)
        target = self.activity.at_scalp(target, back, L, rng)
        activity = target + back
        real = self._real(rng)
        real /= max(float(real.std()), 1e-30)
        if rng.random() < self.cfg.real_background_prob:
            # the user's EEG stands in for the simulated background, at its sensor power
            sig, bgp = L @ target, L @ back
            sig -= sig.mean(0, keepdims=True)
            bgp -= bgp.mean(0, keepdims=True)
            eeg = sig + real * bgp.std() * 10 ** (float(rng.uniform(-3.0, 3.0)) / 20)
        else:
            clean = L @ activity
            clean -= clean.mean(0, keepdims=True)
            snr = float(rng.uniform(*self.cfg.sensor_snr_db))
            eeg = clean + real * clean.std() / np.sqrt(10 ** (snr / 10))
        f = (self.F.T @ eeg).T  # (T, 3 n)
        x, y = scale_window(f, target.T, float(np.sqrt(np.mean(activity ** 2))), t.sfreq)
        return x, y, truth

    def batch(self, n: int, rng: np.random.Generator
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(inputs (n, T, 3 n_nodes), targets (n, T, n_nodes), truth (n, n_nodes) bool)."""
        X, Y, tr = [], [], []
        for _ in range(n):
            f, y, truth = self.sample(rng)
            X.append(f)
            Y.append(y)
            tr.append(truth)
        return (torch.from_numpy(np.stack(X).astype(np.float32).reshape(n, self.n_times, -1)),
                torch.from_numpy(np.stack(Y).astype(np.float32).reshape(n, self.n_times, -1)),
                torch.from_numpy(np.stack(tr).reshape(n, -1)))


@dataclass
class _SimSet:
    """A fixed simulated set: scaled inputs and targets, truth, for the report."""

    name: str
    inputs: torch.Tensor  # (N, T, 3 n)
    targets: torch.Tensor  # (N, T, n)
    truth: np.ndarray  # (N, n)
    regimes: list[str]
    lead: int = 0  # samples of lead-in before the scored part
    sfreq: float = 250.0


def _sim_set(name: str, projector: RegionProjector, features: np.ndarray, n_times: int,
             cfg: AdaptConfig, sfreq: float, noise: list[np.ndarray] | None,
             progress: bool) -> _SimSet:
    """``eval_windows`` windows per regime composed with :class:`DynamicComposer` on the
    given head model (white noise, or the given real EEG as noise) at ``eval_snr_db``, each
    after ``eval_lead_s`` of lead-in that the network runs over but that is not scored (as
    :func:`rtsource.evaluate.dynamic.evaluate_dynamic` does; shortened to the longest real
    noise stretch when that is shorter)."""
    lead = round(cfg.eval_lead_s * sfreq)
    if noise:
        lead = max(0, min(lead, max(len(x) for x in noise) - n_times))
        noise = [x for x in noise if len(x) >= n_times + lead]
    total = n_times + lead
    lib_cfg = {"n_runs": cfg.eval_library_runs, "duration_s": cfg.eval_library_s,
               "sfreq": sfreq, "seed": cfg.eval_seed}
    bg = build_library(LibraryConfig(regime="spontaneous", **lib_cfg), progress=progress)
    X, Y, truth, regimes = [], [], [], []
    for regime in ("spontaneous", "evoked", "interictal", "ictal"):
        lib = bg if regime == "spontaneous" else build_library(
            LibraryConfig(regime=regime, **lib_cfg), progress=progress)
        comp = DynamicComposer(lib, bg, projector, window_s=total / sfreq, noise="white",
                               event_frac=(lead + 0.4 * n_times) / total)
        rng = np.random.default_rng(int(stable_hash("adapt-eval", name, cfg.eval_seed, regime,
                                                    length=12), 16))
        for i in range(cfg.eval_windows):
            snr = float(cfg.eval_snr_db[i % len(cfg.eval_snr_db)])
            s = comp.sample(rng, 300.0 if noise else snr)
            eeg = s.eeg
            if noise:  # real EEG instead of white noise, at the same SNR
                clean = eeg - eeg.mean(0, keepdims=True)
                x = noise[int(rng.integers(len(noise)))]
                o = int(rng.integers(len(x) - total + 1))
                seg = x[o:o + total].T.astype(np.float64)
                seg -= seg.mean(0, keepdims=True)
                eeg = clean + seg * clean.std() / max(float(seg.std()), 1e-30) / np.sqrt(
                    10 ** (snr / 10))
            x, y = scale_window((features.T @ eeg).T, s.target.T,
                          float(np.sqrt(np.mean(s.activity ** 2))), sfreq)
            X.append(x)
            Y.append(y)
            truth.append(s.truth)
            regimes.append(regime)
    return _SimSet(name, torch.from_numpy(np.stack(X).astype(np.float32)),
                   torch.from_numpy(np.stack(Y).astype(np.float32)), np.stack(truth), regimes,
                   lead, sfreq)


# ---------------------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def _run(model: TemporalNet, x: torch.Tensor, batch: int = 16) -> torch.Tensor:
    model.eval()
    out = [model(x[i:i + batch])[0].float() for i in range(0, len(x), batch)]
    return torch.cat(out)


def _sim_metrics(model: TemporalNet, s: _SimSet, truth_weight: float) -> dict[str, float]:
    nodes = brain_nodes()
    y = _run(model, s.inputs)[:, s.lead:]
    t = s.targets[:, s.lead:]
    mse = float(torch.mean((y - t) ** 2))
    loss = float(weighted_mse(y, t, torch.from_numpy(s.truth), truth_weight))
    rows: dict[str, list[float]] = {k: [] for k in ("precision", "recall", "le_mm", "corr")}
    per: dict[str, dict[str, list[float]]] = {}
    for i in range(len(y)):
        res = region_metrics(y[i].numpy().T.astype(np.float64), t[i].numpy().T,
                             s.truth[i], nodes.kinds, nodes.centroids_mni)
        for cls, vals in res.items():
            for k in rows:
                if math.isfinite(vals[k]):
                    rows[k].append(vals[k])
                    per.setdefault(cls, {}).setdefault(k, []).append(vals[k])
    out = {"loss": loss, "mse": mse, "n_windows": len(y), "lead_in_s": s.lead / s.sfreq}
    for k, v in rows.items():
        out[k] = float(np.mean(v)) if v else math.nan
    out["score"] = float(np.nanmean([out["precision"], out["recall"], out["corr"]]))
    for cls, d in per.items():
        for k, v in d.items():
            out[f"{cls}_{k}"] = float(np.mean(v))
    return out


def minnorm_residual(eeg: torch.Tensor, leadfield: torch.Tensor, lambda2: float = 1.0 / 9.0
                     ) -> torch.Tensor:
    """:func:`forward_residual` of the regularised minimum-norm node estimate
    ``ŷ = Lᵀ (L Lᵀ + λ² tr(L Lᵀ)/n_channels · I)⁻¹ x``: what a dense linear estimate of the
    node activity explains (a reference for the network's figures).

    Parameters
    ----------
    eeg : tensor, shape (batch, n_times, n_channels), average reference.
    leadfield : tensor, shape (n_channels, n_nodes), average reference.
    lambda2 : regularisation (λ², relative to the mean eigenvalue of L Lᵀ).

    Returns
    -------
    tensor, shape (batch,)
    """
    L = leadfield.double()
    G = L @ L.T
    G = G + lambda2 * torch.trace(G) / len(G) * torch.eye(len(G), dtype=G.dtype)
    est = eeg.double() @ torch.linalg.solve(G, L)  # (B, T, n): (Lᵀ G⁻¹ x)ᵀ
    return forward_residual(est, eeg.double(), L).float()


def _evaluate(model: TemporalNet, held: tuple[torch.Tensor, torch.Tensor],
              train: tuple[torch.Tensor, torch.Tensor], L: torch.Tensor,
              sims: list[_SimSet], truth_weight: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, (x, e) in (("forward_residual_holdout", held), ("forward_residual_train", train)):
        r = forward_residual(_run(model, x), e, L)
        out[key] = float(r.mean())
        out[key + "_windows"] = [round(float(v), 5) for v in r]
    for s in sims:
        out[s.name] = _sim_metrics(model, s, truth_weight)
    return out


def report_table(before: dict[str, Any], after: dict[str, Any], tolerance: float = 0.05
                 ) -> str:
    """Markdown table of the before/after figures (lower is better for residuals, MSE and
    LE; higher for precision, recall, |r| and their mean, ``score``)."""
    rows = [("forward residual, held-out real windows", "forward_residual_holdout", None),
            ("forward residual, training windows", "forward_residual_train", None)]
    if "forward_residual_holdout_minnorm" in before:
        rows.append(("(reference) forward residual, held-out, minimum-norm node estimate",
                     "forward_residual_holdout_minnorm", None))
    labels = {"loss": "training loss (weighted MSE)", "mse": "MSE", "precision": "precision",
              "recall": "recall",
              "le_mm": "LE (mm)", "corr": "\\|r\\|", "score": "mean of precision, recall, \\|r\\|"}
    for sim, title in (("sim", "simulated, evaluation head model"),
                       ("sim_recording", "simulated, recording's head model + held-out EEG")):
        if sim in before:
            rows += [(f"{title}: {labels[k]}", sim, k) for k in labels]
    lines = ["| figure | before | after | change |", "|---|---|---|---|"]
    for label, key, sub in rows:
        b = before[key] if sub is None else before[key][sub]
        a = after[key] if sub is None else after[key][sub]
        rel = (a - b) / abs(b) if b and math.isfinite(b) and math.isfinite(a) else math.nan
        fmt = "{:.1f}" if sub == "le_mm" else "{:.4f}"
        lines.append(f"| {label} | {fmt.format(b)} | {fmt.format(a)} | {rel:+.1%} |")
    return "\n".join(lines) + "\n"


def _checks(before: dict[str, Any], after: dict[str, Any], tol: float) -> dict[str, bool]:
    c = {"residual_lower": after["forward_residual_holdout"] < before["forward_residual_holdout"],
         "sim_loss_within": after["sim"]["loss"] <= before["sim"]["loss"] * (1 + tol),
         "sim_score_within": after["sim"]["score"] >= before["sim"]["score"] * (1 - tol)}
    c["met"] = all(c.values())
    return c


# ---------------------------------------------------------------------------------------
# the whole


def _config(config: Config | str | os.PathLike | dict | None, checkpoint: Path) -> Config:
    if isinstance(config, dict):
        cfg = from_dict(Config, config)
    else:
        cfg = config if isinstance(config, Config) else load_config(config)
    cfg = cfg.with_method("temporal")
    return dataclasses.replace(
        cfg, refine=dataclasses.replace(cfg.refine, checkpoint=str(checkpoint)),
        regions=dataclasses.replace(cfg.regions, atlas="bn246"))


def _source_checkpoint(checkpoint: str | os.PathLike) -> Path:
    path = SHIPPED_TEMPORAL if str(checkpoint) == "default" else Path(checkpoint).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"Temporal network {str(path)!r} does not exist"
            + (" (the package was installed without its weights)." if str(checkpoint) ==
               "default" else "; give a file written by 'rtsource train "
               "configs/train-temporal.toml' or 'rtsource adapt', or 'default'."))
    header = read_header(path)
    arch = header.get("architecture")
    if arch == "TemporalNet" and str(header.get("features", "")).startswith("sensors"):
        raise ValueError(
            f"Checkpoint {str(path)!r} is a temporal network on sensor inputs "
            f"({header['features']}), a comparison model that --method temporal cannot run; "
            "give one trained on eLORETA node vectors ('default').")
    if arch != "TemporalNet":
        raise ValueError(
            f"Checkpoint {str(path)!r} holds a {arch} network; rtsource adapt adapts the "
            "temporal network (architecture TemporalNet: 'default', or a file written by "
            "'rtsource train configs/train-temporal.toml' or 'rtsource adapt').")
    return path


def _real_batch(parts: list[np.ndarray], n_t: int, cfg: AdaptConfig, sfreq: float,
                rng: np.random.Generator) -> list[np.ndarray]:
    """``batch_real`` crops of the training stretches, all of one length drawn from
    ``real_crop_s`` (at most ``n_t``), at random offsets; with probability ``real_mix_prob``
    a crop is a random mixture of two (EEG adds linearly: a mixture is EEG the lead field
    can explain as well), so that a few seconds give more than a few distinct windows."""
    lo, hi = (round(v * sfreq) for v in cfg.real_crop_s)
    n = min(n_t, int(rng.integers(max(lo, 8), max(hi, lo, 8) + 1)))

    def crop() -> np.ndarray:
        p = parts[int(rng.integers(len(parts)))]
        o = int(rng.integers(len(p) - n + 1))
        w = p[o:o + n].astype(np.float64)
        return w / max(float(np.sqrt(np.mean(w ** 2))), 1e-30)

    out = []
    for _ in range(cfg.batch_real):
        w = crop()
        if rng.random() < cfg.real_mix_prob:
            a = float(rng.uniform(0.2, 0.8))
            w = np.sqrt(a) * w + np.sqrt(1 - a) * crop()
        out.append(w.astype(np.float32))
    return out


def _lr(step: int, cfg: AdaptConfig, total: int) -> float:
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    t = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))


def adapt(recording: str | os.PathLike | Any, checkpoint: str | os.PathLike = "default",
          out: str | os.PathLike | None = None, *, cfg: AdaptConfig | None = None,
          config: Config | str | os.PathLike | dict | None = None, montage: Any = None,
          exclude: Any = "bads", units: str = "auto", filters: bool = False,
          progress: bool = True, **overrides: Any) -> AdaptResult:
    """Fine-tune the temporal network on a user's unlabelled recording (module docstring).

    Parameters
    ----------
    recording : path or mne.io.Raw
        A continuous EEG recording (anything ``mne.io.read_raw`` reads) with electrode
        positions (or pass ``montage``); its EEG channels are used, in volts. ``BAD``/``EDGE``
        annotations split it (bad stretches are left out).
    checkpoint : ``"default"`` (the shipped temporal network) or a path to a TemporalNet
        checkpoint (with its ``.sha256``).
    out : the adapted checkpoint's path (default ``<recording stem>-adapted.safetensors`` in
        the working directory); ``<out>.sha256`` is written beside it.
    cfg : AdaptConfig (defaults: a few minutes on two cores); ``overrides`` replace its
        fields (``steps=..., minutes=..., holdout=...``).
    config : the run configuration (Config, TOML path or dict of sections) whose head model
        and inverse ``rtsource run`` will use; the method is set to ``temporal``.
    montage : electrode positions when the recording has none (a standard name, a file, a
        DigMontage or (labels, positions in metres)).
    exclude : ``"bads"`` (the recording's bad channels), or labels to leave out.
    units : ``"auto"`` (MNE stores volts) or the data's unit (``"V"``, ``"mV"``, ``"uV"``).
    filters : apply the config's ``[stream]`` band-pass and notch before the temporal
        stage's conditioning, as ``rtsource run`` does live (default False, as
        :func:`rtsource.localize`).
    progress : progress bars.

    Returns
    -------
    AdaptResult
        The checkpoint's path and hash, the before/after figures, the target's checks and
        the provenance written into the header.

    Raises
    ------
    FileNotFoundError
        No such recording or checkpoint.
    TypeError
        ``recording`` is neither a path nor a Raw.
    ValueError
        A checkpoint of another network, no EEG channels or no electrode positions, NaN/Inf
        samples, units the values contradict, a rate the network's cannot be reached from,
        a recording too short for a training and a held-out window, or invalid settings
        (each message names the value and what would be valid).
    """
    from tqdm.auto import tqdm

    from .online.processing import SourceProcessor
    from .online.temporal import temporal_decimation

    cfg = dataclasses.replace(cfg or AdaptConfig(), **overrides)
    t_all = time.perf_counter()
    src_path = _source_checkpoint(checkpoint)
    rec = _read_recording(recording, montage, exclude, units)
    model_sfreq = float(read_header(src_path).get("sfreq", 250.0))
    dec = temporal_decimation(rec.sfreq, model_sfreq)
    n_t = round(cfg.window_s * model_sfreq)
    cut = _plan([len(range(dec - 1, b - a, dec)) for a, b in rec.spans], n_t, cfg, rec.name,
                model_sfreq)
    run_cfg = _config(config, src_path)
    if not filters:
        run_cfg = dataclasses.replace(run_cfg, stream=dataclasses.replace(
            run_cfg.stream, highpass_hz=None, lowpass_hz=None, notch_hz=None))
    if cfg.threads is not None:
        torch.set_num_threads(cfg.threads)
    proc = SourceProcessor(run_cfg, rec.ch_names, rec.sfreq, montage=rec.montage,
                           progress=progress)
    stage = proc.temporal
    assert stage is not None
    nodes = brain_nodes()
    if list(stage.node_names) != list(nodes.names):
        raise ValueError(f"Checkpoint {src_path.name} estimates other nodes than the brain "
                         "model's (BN246 cortical regions and thalamic nuclei); it cannot be "
                         "adapted with this version of rtsource.")
    # the source network in float32, loaded afresh (the stage may hold it in bf16 for speed)
    src_ck = load_checkpoint(src_path, architecture="TemporalNet")
    if src_ck.sha256 != stage.checkpoint.sha256:
        raise RuntimeError(f"{src_path} changed while it was being read; run again.")
    src_header = src_ck.header
    tcfg = _train_settings(src_header)
    if stage.decimate != dec:  # the stage decides; the plan above must agree with it
        raise RuntimeError(f"Decimation mismatch: stage {stage.decimate}, plan {dec}.")
    channels = list(proc.headmodel.ch_names)

    # 1. conditioned, decimated stretches (n, n_channels) volts; split train / held out
    parts = []
    for a, b in rec.spans:
        proc.reset()
        x = proc.mapper(np.ascontiguousarray(rec.data[:, a:b].T, np.float32))
        x = stage.condition(proc.filter(x))
        parts.append(np.asarray(x[dec - 1::dec], np.float32))
    train_parts, held_parts = _split(parts, cut)
    held = _tiles(held_parts, n_t)
    train_fixed = _tiles(train_parts, n_t)
    train_parts = [p for p in train_parts if len(p) >= n_t]
    total = sum(len(p) for p in parts)

    def _real(wins: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        e = np.stack(wins).astype(np.float64)  # (N, T, C)
        e -= e.mean(2, keepdims=True)
        f = np.stack([scale_window(w @ stage.features.astype(np.float64), None, 1.0,
                             model_sfreq)[0] for w in e])  # (N, T, 3 n), as a stream scales
        e /= np.sqrt(np.mean(e ** 2, axis=(1, 2), keepdims=True))
        return torch.from_numpy(f.astype(np.float32)), torch.from_numpy(e.astype(np.float32))

    projector = RegionProjector(proc.headmodel, nodes)
    L0 = projector.leadfield(None)
    L0 = L0 - L0.mean(0, keepdims=True)
    L = torch.from_numpy((L0 / np.sqrt(np.mean(L0 ** 2))).astype(np.float32))
    held_t, train_t = _real(held), _real(train_fixed)

    # 2. simulated sets for the report, the composer for fine-tuning
    inv = InverseConfig(method="eloreta", lambda2=run_cfg.inverse.lambda2)
    entry, hm_eval = load_entry(cfg.eval_headmodel, None, inv, progress=progress)
    proj_eval = RegionProjector(hm_eval, nodes)
    F_eval = node_feature_kernel(entry.kernel.numpy(), proj_eval.weights).T  # (C, 3 n)
    sims = [_sim_set("sim", proj_eval, F_eval, n_t, cfg, model_sfreq, None, progress)]
    if cfg.eval_recording:
        sims.append(_sim_set("sim_recording", projector, stage.features.astype(np.float64),
                             n_t, cfg, model_sfreq, [p for p in held_parts if len(p) >= n_t],
                             progress))
    composer = _Composer(tcfg, projector, stage.features.astype(np.float64), train_parts, n_t,
                         cfg, progress)
    src_model = src_ck.model.float().eval()
    before = _evaluate(src_model, held_t, train_t, L, sims, tcfg.truth_weight)
    ref = float(minnorm_residual(held_t[1], L, run_cfg.inverse.lambda2).mean())
    before["forward_residual_holdout_minnorm"] = ref

    # 3. fine-tuning
    model = copy.deepcopy(src_model)
    anchor = [p.detach().clone() for p in model.parameters()]
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    bf16 = cfg.precision == "bf16" or (cfg.precision == "auto"
                                       and bool(cpu_features()["bf16_native"]))
    bar = tqdm(total=cfg.steps, desc="Adapting", unit="step", disable=not progress)
    t0 = time.perf_counter()
    step, ema = 0, None
    losses: dict[str, float] = {}
    while step < cfg.steps:
        if cfg.minutes is not None and time.perf_counter() - t0 >= cfg.minutes * 60:
            logger.info("Adaptation stopped by the time cap after %d steps", step)
            break
        model.train()
        for g in opt.param_groups:
            g["lr"] = _lr(step, cfg, cfg.steps)
        rng = np.random.default_rng(int(stable_hash("adapt-batch", cfg.seed, step,
                                                    length=15), 16))
        xs, ys, ts = composer.batch(cfg.batch_sim, rng)
        xr, er = _real(_real_batch(train_parts, n_t, cfg, model_sfreq, rng))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            if xr.shape[1] == n_t:  # one call for both
                y, _ = model(torch.cat([xs, xr]))
                ys_hat, yr_hat = y[:len(xs)].float(), y[len(xs):].float()
            else:
                ys_hat = model(xs)[0].float() if len(xs) else xs.new_zeros((0,) + ys.shape[1:])
                yr_hat = model(xr)[0].float()
        l_sim = (weighted_mse(ys_hat, ys, ts, tcfg.truth_weight) if len(xs)
                 else yr_hat.new_zeros(()))
        l_fwd = forward_residual(yr_hat, er, L).mean()
        l_anc = sum(((p - q) ** 2).sum() for p, q in zip(model.parameters(), anchor,
                                                          strict=True))
        loss = cfg.sim_weight * l_sim + cfg.forward_weight * l_fwd + cfg.anchor_weight * l_anc
        v = optimizer_step(loss, model, opt, cfg.grad_clip, step + 1, "lower the learning rate (--lr)")
        step += 1
        losses = {"sim": float(l_sim.detach()), "forward": float(l_fwd.detach()),
                  "anchor": float(l_anc.detach())}
        ema = v if ema is None else 0.9 * ema + 0.1 * v
        bar.update()
        bar.set_postfix(sim=f"{losses['sim']:.3f}", fwd=f"{losses['forward']:.3f}",
                        anchor=f"{losses['anchor']:.2e}")
    bar.close()
    minutes = (time.perf_counter() - t0) / 60
    model.eval()
    after = _evaluate(model, held_t, train_t, L, sims, tcfg.truth_weight)
    after["forward_residual_holdout_minnorm"] = ref
    checks = _checks(before, after, cfg.tolerance)

    # 4. the checkpoint
    out_path = Path(out) if out is not None else Path.cwd() / (
        f"{Path(rec.name).stem if rec.path else 'recording'}-adapted.safetensors")
    if out_path.resolve() == src_path.resolve():
        raise ValueError(f"out = {str(out_path)!r} is the source checkpoint; choose another "
                         "file.")
    hm_desc = proc.headmodel.description
    prov = {
        "method": "fine-tuning on simulated windows with the recording's EEG as background "
                  "(supervised MSE) + forward consistency on real windows + L2-SP "
                  "(rtsource.adapt)",
        "references": REFERENCES,
        "source_checkpoint": src_path.name, "source_sha256": src_ck.sha256,
        "recording": rec.name, "recording_data_sha256": rec.data_sha256,
        "recording_data_hash_of": "sha256 of json([channels, sfreq]) + EEG volts float64 LE",
        "recording_sfreq_hz": rec.sfreq, "recording_units": rec.units,
        "channels": channels, "n_channels": len(channels),
        "excluded_channels": rec.excluded,
        "usable_s": round(total / model_sfreq, 3), "stretches": len(parts),
        "n_windows_train": len(train_fixed), "n_windows_holdout": len(held),
        "train_s": round(sum(len(p) for p in train_parts) / model_sfreq, 3),
        "holdout_s": round(sum(len(p) for p in held_parts) / model_sfreq, 3),
        "holdout": cfg.holdout, "window_s": cfg.window_s,
        "steps": step, "steps_planned": cfg.steps, "minutes": round(minutes, 3),
        "loss_weights": {"sim": cfg.sim_weight, "forward": cfg.forward_weight,
                         "anchor": cfg.anchor_weight},
        "last_losses": losses, "precision": "bf16" if bf16 else "fp32",
        "threads": torch.get_num_threads(), "cpu": cpu_features().get("model"),
        "headmodel": f"{hm_desc.get('conductor')} {hm_desc.get('conductivity_S_per_m')} S/m",
        "headmodel_hash": proc.headmodel.hash, "inverse_hash": proc.inverse.hash,
        "filters_applied": bool(filters), "decimate": dec,
        "eval_headmodel": dataclasses.asdict(cfg.eval_headmodel),
        "config": cfg.to_dict(), "before": before, "after": after, "checks": checks,
        "tolerance": cfg.tolerance,
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    keep = ("node_names", "node_kinds", "sfreq", "output_gain", "features", "atlas")
    extra = {k: src_header[k] for k in keep if k in src_header}
    extra["adaptation"] = prov
    digest = save_checkpoint(
        model, out_path, spacing_mm=float(src_header.get("spacing_mm", 7.0)),
        training_config=dict(src_header.get("training_config") or {}),
        metrics={**dict(src_header.get("metrics") or {}),
                 "adapted_forward_residual_holdout": after["forward_residual_holdout"],
                 "adapted_sim_score": after["sim"]["score"]},
        extra=extra)
    logger.info("Adapted %s on %s in %.1f min (%d steps): held-out residual %.4f -> %.4f; "
                "wrote %s", src_path.name, rec.name, minutes, step,
                before["forward_residual_holdout"], after["forward_residual_holdout"], out_path)
    prov["total_minutes"] = round((time.perf_counter() - t_all) / 60, 3)
    return AdaptResult(path=out_path, sha256=digest, before=before, after=after, checks=checks,
                       provenance=prov)
