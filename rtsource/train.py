"""Training 3D-PIUNet on simulated data (``rtsource train CONFIG.toml``).

Each step draws a fresh batch from :class:`rtsource.simulate.Simulator` (a random montage
layout and conductor model per batch), runs the U-Net on the scaled eLORETA volume and
minimises the L1 distance to the scaled true volume, restricted to the voxels that hold a
source point (the reference's loss, without the 70 % of the volume outside the brain, where
the target is always zero). AdamW, linear warm-up then cosine decay.

Checkpoints (``<out_dir>/last.safetensors`` and ``step-NNNNNN.safetensors``) hold the weights,
the whole configuration and the current metrics (via :mod:`rtsource.models.checkpoint`);
``last.state.pt`` beside them holds the optimiser, the step and the elapsed time, so
``--resume`` continues from the saved step. Batches are drawn from a generator seeded by
(seed, rank, step), so a resumed run sees the same data it would have seen uninterrupted.

Several GPUs: ``torchrun --nproc_per_node=N -m rtsource.cli train CONFIG`` runs one process
per GPU with DistributedDataParallel (each rank draws its own batches; rank 0 writes
checkpoints). That path is guarded and was not run on this project's CPU-only machines.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from ._util import logger, stable_hash
from .config import from_dict, read_toml
from .models.checkpoint import SHIPPED_CHECKPOINT, init_from_path
from .simulate import ForwardBank, SimConfig, Simulator, sim_config_from_dict

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

__all__ = ["SHIPPED_WEIGHTS", "SlicedWasserstein", "TrainConfig", "TrainResult",
           "default_checkpoint_path", "load_train_config", "lr_factor", "magnitude_distribution",
           "masked_l1", "optimizer_step", "peak_deficit", "peak_kl", "plot_training_curve", "ship_checkpoint", "step_sim_config", "train", "training_loss",
           "use_bf16"]

SHIPPED_WEIGHTS = SHIPPED_CHECKPOINT.name
"""File name of the shipped network in ``rtsource/data/``."""


def default_checkpoint_path() -> Path:
    """Path of the shipped 3D-PIUNet weights (``rtsource/data/piunet-w8.safetensors``).

    Its SHA-256 is in ``<path>.sha256``; its training and evaluation are described in
    ``rtsource/data/MODEL_CARD.md``.
    """
    return SHIPPED_CHECKPOINT


@dataclass(frozen=True)
class TrainConfig:
    """Training settings (the ``[train]`` table; ``[simulate]`` is :class:`SimConfig`).

    Attributes
    ----------
    width : network width w (8, 16, 32).
    batch_size : samples per step (per process under DDP).
    lr : peak AdamW learning rate (the reference uses 1e-5 over ~94k steps; short CPU runs
        need a larger one).
    min_lr_ratio : final learning rate as a fraction of ``lr`` (cosine decay).
    weight_decay : AdamW weight decay.
    warmup_steps : linear warm-up length.
    max_steps : total optimisation steps (the cosine schedule spans them).
    max_minutes : stop after this much training time (summed over resumes); None = no limit.
    loss : ``"l1"`` (the reference: mean |ŷ − y| over brain voxels) or ``"weighted_l1"``
        (each voxel weighted by 1 + loss_weight·‖y_v‖, which makes an all-zero prediction
        costlier than under plain L1).
    loss_weight : β of ``weighted_l1``.
    distribution_loss : ``"none"`` or ``"sliced_wasserstein"``: adds ``distribution_weight``
        × the sliced 1-Wasserstein distance between the normalised magnitude maps of the
        prediction and of the truth, divided by that of a uniform map (a differentiable,
        dimensionless stand-in for NEMD; :class:`SlicedWasserstein`). It charges a peak by
        how far it is from the true one, which a voxel-wise L1 does not.
    distribution_weight : weight of the distribution term.
    distribution_projections : directions of the sliced distance (fixed for the run).
    peak_loss : ``"none"`` or ``"peak_kl"``: adds ``peak_weight`` × the Kullback–Leibler
        divergence between "peak heat maps" of the truth and of the prediction,
        softmax(``peak_sharpness``·‖y_v‖ / max‖y‖) and softmax(``peak_sharpness``·‖ŷ_v‖ / max‖ŷ‖)
        (:func:`peak_kl`): the truth's map holds its mass on the voxels within a few tenths
        of its maximum, so the term charges a prediction whose strongest voxels lie
        elsewhere, or stand out less, and ignores the rest of the map and its amplitude (a
        soft-target form of the softmax keypoint loss of Mask R-CNN, He et al. 2017).
        ``"peak_deficit"``: adds ``peak_weight`` × E_q̂[1 − ‖y_v‖/max‖y‖], how weak the truth
        is, on average, where the prediction's heat map lies (:func:`peak_deficit`): near 0
        when the prediction's strongest voxels are the truth's; linear in the heat map, so a
        hedged or blurred map costs the average of the committed maps it mixes and never
        beats the best of them (the forward KL rewards hedging).
    peak_weight : weight of the peak term.
    peak_sharpness : k of the peak heat maps (20: a voxel at 90 % of the maximum weighs
        e⁻² of the peak's).
    precision : ``"auto"`` (bfloat16 autocast on CUDA and on CPUs with AMX or AVX-512-BF16,
        float32 otherwise: without them bf16 is emulated and slower), ``"fp32"`` or ``"bf16"``.
    channels_last : channels-last (NDHWC) memory format on the CPU with bf16 (oneDNN's fast
        layout; FACTS.md: 6.8 vs 7.9 s per step at width 8).
    workers : processes that simulate batches ahead of the training step (0: simulate in
        the training loop; must be 0 on CUDA). Each uses one thread; the batches are the
        same either way (bit for bit at ``threads = 1``; with more training threads the
        in-loop matrix products may round differently in the last bits).
    init_from : start from the weights of this checkpoint (fine-tuning) instead of a random
        initialisation; ``"shipped"`` means :func:`default_checkpoint_path`. A checkpoint of
        a narrower width that divides ``width`` (8 for 16) is widened function-preservingly
        (:func:`rtsource.models.piunet.widen`, Net2WiderNet).
    curriculum_steps : over this many first steps, widen the data from easy to the full
        ranges: the most sources rises from ``n_sources_min`` to ``n_sources_max`` and the
        lowest SNR falls from 75 % of the way up the SNR range to ``snr_db_min`` (0: off).
    grad_clip : gradient-norm clip (0 disables).
    checkpoint_minutes : write a checkpoint at least this often (wall clock).
    checkpoint_steps : and every this many steps (0 disables).
    log_steps : log a line every this many steps.
    val_samples : fixed validation samples (drawn once from the training distribution).
    out_dir : output folder.
    seed : seed of the initial weights and of the data stream.
    device : ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    threads : torch CPU threads of the training step (keep threads + workers ≤ the cores
        you may use, or about it: a worker waits most of the time).
    simulate : the simulator settings.
    """

    width: int = 8
    batch_size: int = 8
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    weight_decay: float = 0.01
    warmup_steps: int = 50
    max_steps: int = 2000
    max_minutes: float | None = None
    loss: Literal["l1", "weighted_l1"] = "l1"
    loss_weight: float = 10.0
    distribution_loss: Literal["none", "sliced_wasserstein"] = "none"
    distribution_weight: float = 0.1
    distribution_projections: int = 64
    peak_loss: Literal["none", "peak_kl", "peak_deficit"] = "none"
    peak_weight: float = 0.1
    peak_sharpness: float = 20.0
    grad_clip: float = 1.0
    checkpoint_minutes: float = 5.0
    checkpoint_steps: int = 0
    log_steps: int = 10
    val_samples: int = 32
    out_dir: str = "runs/piunet-w8"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 1
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True
    workers: int = 0
    init_from: str | None = None
    curriculum_steps: int = 0
    simulate: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        for name in ("width", "batch_size", "max_steps", "threads", "log_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} = {getattr(self, name)} must be at least 1.")
        for name in ("workers", "curriculum_steps"):
            if getattr(self, name) < 0:
                raise ValueError(f"train.{name} = {getattr(self, name)} must be 0 or more "
                                 "(0 turns it off).")
        if self.distribution_weight < 0 or self.distribution_projections < 1:
            raise ValueError(f"train.distribution_weight = {self.distribution_weight} must be "
                             f"≥ 0 and train.distribution_projections = "
                             f"{self.distribution_projections} at least 1.")
        if not (self.peak_weight >= 0 and self.peak_sharpness > 0):
            raise ValueError(f"train.peak_weight = {self.peak_weight} must be ≥ 0 and "
                             f"train.peak_sharpness = {self.peak_sharpness} > 0 (20 is the "
                             "default).")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.lr = {self.lr} must be > 0 and train.min_lr_ratio = "
                             f"{self.min_lr_ratio} in [0, 1].")
        for name, valid in (("loss", ("l1", "weighted_l1")),
                            ("distribution_loss", ("none", "sliced_wasserstein")),
                            ("peak_loss", ("none", *PEAK_TERMS)),
                            ("precision", ("auto", "fp32", "bf16")),
                            ("device", ("auto", "cpu", "cuda"))):
            if getattr(self, name) not in valid:
                raise ValueError(f"train.{name} = {getattr(self, name)!r} is not valid; choose "
                                 f"one of {list(valid)}.")
        if self.init_from is not None:
            init_from_path("train.init_from", self.init_from, SHIPPED_CHECKPOINT)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable rendering (stored in every checkpoint)."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "simulate"}
        return {"train": d, "simulate": self.simulate.to_dict()}


def train_config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Build a :class:`TrainConfig` from ``{"train": {...}, "simulate": {...}}``."""
    unknown = set(data) - {"train", "simulate"}
    if unknown:
        raise ValueError(f"Unknown section(s) {sorted(unknown)} in the training config; "
                         "valid sections: [train], [simulate].")
    tr = dict(data.get("train", {}))
    if "simulate" in tr:
        raise ValueError("Put simulator settings in a [simulate] table, not under [train].")
    for key in ("max_minutes", "init_from"):
        if tr.get(key) in (0, ""):
            tr[key] = None
    if "amp" in tr:  # configurations written before ``precision`` existed
        if "precision" in tr:
            raise ValueError("The [train] table sets both amp (old) and precision; keep only "
                             "precision = 'auto', 'fp32' or 'bf16'.")
        tr["precision"] = "auto" if tr.pop("amp") else "fp32"
    cfg = from_dict(TrainConfig, tr, prefix="train.")
    sim = sim_config_from_dict(data.get("simulate", {}))
    return dataclasses.replace(cfg, simulate=sim)


def load_train_config(path: str | os.PathLike | None = None, **overrides: Any) -> TrainConfig:
    """Load a training TOML file (defaults if ``path`` is None); ``overrides`` replace
    ``[train]`` settings (None values are ignored)."""
    data = read_toml(path, "Training config")
    data.setdefault("train", {})
    data["train"] = {**data["train"], **{k: v for k, v in overrides.items() if v is not None}}
    return train_config_from_dict(data)


def masked_l1(pred: torch.Tensor, target: torch.Tensor, flat_index: torch.Tensor,
              kind: str = "l1", weight: float = 10.0) -> torch.Tensor:
    """L1 loss in the scaled domain, restricted to brain voxels.

    Parameters
    ----------
    pred, target : (B, 3, G, G, G) float tensors (scaled domain, dimensionless).
    flat_index : (n_sources,) int64 flat voxel index of the source points.
    kind : ``"l1"``: mean |pred − target| over brain voxels and channels;
        ``"weighted_l1"``: the same with voxel weights 1 + weight·‖target_v‖.
    weight : β of the weighted loss.

    Returns
    -------
    Scalar tensor.
    """
    b, c = pred.shape[:2]
    p = pred.reshape(b, c, -1).index_select(2, flat_index).float()
    t = target.reshape(b, c, -1).index_select(2, flat_index).float()
    err = (p - t).abs()
    if kind == "l1":
        return err.mean()
    if kind == "weighted_l1":
        w = 1.0 + weight * t.norm(dim=1, keepdim=True)
        return (w * err).sum() / (w.sum() * c)
    raise ValueError(f"loss = {kind!r} is not valid; choose 'l1' or 'weighted_l1'.")


class SlicedWasserstein:
    """Sliced 1-Wasserstein distance between maps on one fixed set of points, batched.

    For a direction θ the 1-D distance between two distributions a, b on the projected
    points t = pos·θ is Σ_i |F_a(t_i) − F_b(t_i)| (t_{i+1} − t_i) with F the cumulative sums
    in sorted order; the sliced distance is its mean over directions (Rabin et al. 2011,
    "Wasserstein barycenter and its application to texture mixing"; Bonneel et al. 2015).
    The support is the same for every map, so the sort is done once: a batch costs a gather
    and a cumulative sum. POT's ``ot.sliced_wasserstein_distance(..., p=1)`` with the same
    directions gives the same value (tested) but is about 80× slower here (it re-sorts both
    supports per map).

    Parameters
    ----------
    pos_mm : (n_points, 3) point positions in mm.
    n_projections : number of directions, drawn uniformly on the sphere from ``seed``.
    seed : seed of the directions.
    """

    def __init__(self, pos_mm: torch.Tensor, n_projections: int = 64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        proj = torch.randn(pos_mm.shape[1], n_projections, generator=g, dtype=torch.float64)
        self.projections = (proj / proj.norm(dim=0, keepdim=True)).to(torch.float32)
        t = pos_mm.detach().cpu().to(torch.float32) @ self.projections       # (n, K)
        self.order = t.argsort(dim=0).to(pos_mm.device)                    # (n, K)
        self.gap = t.gather(0, self.order.cpu()).diff(dim=0).to(pos_mm.device)  # (n-1, K)
        self.n_points = int(pos_mm.shape[0])

    def __call__(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Distance in mm between distributions ``a`` and ``b``, each (B, n_points) with
        rows summing to 1 (not checked); returns (B,)."""
        diff = (a - b)[:, self.order]                                      # (B, n, K)
        cdf = diff.cumsum(dim=1)[:, :-1]
        return (cdf.abs() * self.gap).sum(dim=1).mean(dim=1)


def magnitude_distribution(vol: torch.Tensor, flat_index: torch.Tensor,
                           eps: float = 1e-6) -> torch.Tensor:
    """Normalised magnitude map at the brain voxels.

    Parameters
    ----------
    vol : (B, 3, G, G, G) vector volume.
    flat_index : (n_points,) flat voxel index of the source points.
    eps : added to each magnitude (keeps the gradient finite at zero).

    Returns
    -------
    (B, n_points) float32, rows summing to 1.
    """
    mag = _brain_magnitudes(vol, flat_index, eps)
    return mag / mag.sum(dim=1, keepdim=True)


def _brain_magnitudes(vol: torch.Tensor, flat_index: torch.Tensor, eps: float) -> torch.Tensor:
    """(B, n_points) float32 ‖v‖ at the brain voxels of a (B, 3, G, G, G) volume (+ eps²
    under the root, which keeps the gradient finite at zero)."""
    b, c = vol.shape[:2]
    v = vol.reshape(b, c, -1).index_select(2, flat_index).float()
    return (v.square().sum(dim=1) + eps * eps).sqrt()


def _log_heat(mag: torch.Tensor, sharpness: float, eps: float) -> torch.Tensor:
    """log softmax(k·m_v / max_v m_v) of (B, n_points) magnitudes: the peak heat map."""
    return torch.log_softmax(mag * (sharpness / mag.amax(dim=1, keepdim=True).clamp_min(eps)),
                             dim=1)


def peak_kl(pred: torch.Tensor, target: torch.Tensor, flat_index: torch.Tensor,
            sharpness: float = 20.0, eps: float = 1e-6) -> torch.Tensor:
    """Kullback–Leibler divergence KL(q ‖ q̂) between the peak heat maps of the truth and
    of the prediction, per sample.

    q = softmax(k·‖y_v‖ / max_v‖y_v‖) and q̂ = softmax(k·‖ŷ_v‖ / max_v‖ŷ_v‖) over the brain
    voxels v, each map scaled by its own maximum: like NEMD, MLE and AUC the term ignores
    the map's overall amplitude (the L1 term sets it). q holds its mass on the voxels near
    the truth's maxima (for k = 20 a voxel at 90 % of the maximum weighs e⁻² of the peak's,
    one at 50 % e⁻¹⁰); the divergence is small only when the prediction's strongest voxels
    are the same ones, standing out as much. It is the softmax keypoint loss of Mask R-CNN
    (He et al. 2017, "Mask R-CNN", a cross-entropy over positions) with the truth's own heat
    map as a soft target instead of one position.

    Parameters
    ----------
    pred, target : (B, 3, G, G, G) vector volumes (scaled domain, dimensionless).
    flat_index : (n_points,) int64 flat voxel index of the source points.
    sharpness : k (> 0).
    eps : floor of the maxima and regulariser of the magnitudes.

    Returns
    -------
    (B,) float32 tensor, ≥ 0 (nats); 0 when the prediction equals the truth.
    """
    log_q = _log_heat(_brain_magnitudes(target, flat_index, eps), sharpness, eps)
    log_q_hat = _log_heat(_brain_magnitudes(pred, flat_index, eps), sharpness, eps)
    return (log_q.exp() * (log_q - log_q_hat)).sum(dim=1)


def peak_deficit(pred: torch.Tensor, target: torch.Tensor, flat_index: torch.Tensor,
                 sharpness: float = 20.0, eps: float = 1e-6) -> torch.Tensor:
    """How weak the truth is where the prediction peaks: E_q̂[1 − ‖y_v‖ / max‖y‖], per sample.

    q̂ = softmax(k·‖ŷ_v‖ / max_v‖ŷ_v‖) over the brain voxels is the prediction's peak heat
    map (as in :func:`peak_kl`; a soft arg-max, Chapelle & Wu 2010, "Gradient descent
    optimization of smoothed information retrieval metrics"). The term is near 0 when that
    heat lies on the truth's maxima (0 for a single-voxel peak; a smooth map's heat reaches
    the voxels around its peak) and near 1 when it lies where the truth is silent. Unlike
    the forward divergence of :func:`peak_kl` it does not reward hedging: it is linear in
    q̂, so a hedged map costs the average of the committed maps it mixes, and when the place
    is uncertain, committing to where the truth is expected strongest is never worse. Both
    maps' amplitudes are ignored.

    Parameters
    ----------
    pred, target : (B, 3, G, G, G) vector volumes (scaled domain, dimensionless).
    flat_index : (n_points,) int64 flat voxel index of the source points.
    sharpness : k (> 0).
    eps : floor of the maxima and regulariser of the magnitudes.

    Returns
    -------
    (B,) float32 tensor in [0, 1].
    """
    m = _brain_magnitudes(target, flat_index, eps)
    heat = _log_heat(_brain_magnitudes(pred, flat_index, eps), sharpness, eps).exp()
    return (heat * (1.0 - m / m.amax(dim=1, keepdim=True).clamp_min(eps))).sum(dim=1)


#: ``train.peak_loss`` name → the term
PEAK_TERMS = {"peak_kl": peak_kl, "peak_deficit": peak_deficit}


def training_loss(pred: torch.Tensor, target: torch.Tensor, flat_index: torch.Tensor,
                  cfg: TrainConfig, sliced: SlicedWasserstein | None = None
                  ) -> tuple[torch.Tensor, dict[str, float]]:
    """The loss :func:`train` minimises, and its parts.

    ``masked_l1(kind=cfg.loss)``, plus ``cfg.peak_weight`` × the mean :func:`peak_kl` or
    :func:`peak_deficit` (``cfg.peak_loss``), plus, with ``cfg.distribution_loss = "sliced_wasserstein"``,
    ``cfg.distribution_weight`` × SW(p̂, p) / SW(uniform, p), with p̂, p the normalised
    magnitude maps (:func:`magnitude_distribution`) and SW :class:`SlicedWasserstein`.

    Parameters
    ----------
    pred, target : (B, 3, G, G, G) scaled volumes.
    flat_index : (n_points,) int64 flat voxel index of the source points.
    cfg : TrainConfig.
    sliced : the distance (required with the distribution term).

    Returns
    -------
    (scalar tensor, {"l1": float, "peak_kl" or "peak_deficit": float, "sliced_nemd": float})
    (the parts in use)
    """
    base = masked_l1(pred, target, flat_index, cfg.loss, cfg.loss_weight)
    parts = {"l1": float(base.detach())}
    if cfg.peak_loss != "none":  # the name is checked by TrainConfig
        term = PEAK_TERMS[cfg.peak_loss](pred, target, flat_index, cfg.peak_sharpness).mean()
        parts[cfg.peak_loss] = float(term.detach())
        base = base + cfg.peak_weight * term
    if cfg.distribution_loss == "none":
        return base, parts
    if cfg.distribution_loss != "sliced_wasserstein":
        raise ValueError(f"train.distribution_loss = {cfg.distribution_loss!r} is not valid; "
                         "choose 'none' or 'sliced_wasserstein'.")
    if sliced is None:
        raise ValueError("training_loss needs a SlicedWasserstein for the distribution term.")
    p_hat = magnitude_distribution(pred, flat_index)
    p = magnitude_distribution(target, flat_index)
    with torch.no_grad():
        flat = torch.full_like(p, 1.0 / p.shape[1])
        ref = sliced(flat, p).clamp_min(1e-6)
    term = (sliced(p_hat, p) / ref).mean()
    parts["sliced_nemd"] = float(term.detach())
    return base + cfg.distribution_weight * term, parts


def step_sim_config(cfg: TrainConfig, step: int) -> SimConfig:
    """The simulator settings at ``step`` under the curriculum (``cfg.simulate`` after it)."""
    sc = cfg.simulate
    if cfg.curriculum_steps <= 0 or step >= cfg.curriculum_steps:
        return sc
    f = step / cfg.curriculum_steps
    n_max = sc.n_sources_min + round(f * (sc.n_sources_max - sc.n_sources_min))
    top = sc.snr_db_min + 0.75 * (sc.snr_db_max - sc.snr_db_min)
    snr_min = top + f * (sc.snr_db_min - top)
    return dataclasses.replace(sc, n_sources_max=max(sc.n_sources_min, n_max),
                               snr_db_min=snr_min)


class _Batches(torch.utils.data.IterableDataset):
    """Training batches for steps start, start + 1, ... (worker k of W draws every W-th);
    each depends only on (seed, rank, step), so workers change nothing but the speed."""

    def __init__(self, sim: Simulator, cfg: TrainConfig, rank: int, start: int, stop: int):
        super().__init__()
        self.sim, self.cfg, self.rank, self.start, self.stop = sim, cfg, rank, start, stop

    def __iter__(self):
        info = torch.utils.data.get_worker_info()
        k, w = (0, 1) if info is None else (info.id, info.num_workers)
        for step in range(self.start + k, self.stop, w):
            b = self.sim.sample(self.cfg.batch_size, _step_generator(self.cfg.seed, self.rank, step),
                                cfg=step_sim_config(self.cfg, step))
            yield step, b.inputs, b.targets


def optimizer_step(loss: torch.Tensor, model: torch.nn.Module, opt: torch.optim.Optimizer,
                   grad_clip: float, step: int, fix: str) -> float:
    """One optimizer step on ``loss`` (gradients cleared, back-propagated, clipped to norm
    ``grad_clip`` when it is > 0, applied); returns the loss as a float.

    Raises
    ------
    FloatingPointError
        When the loss or the gradient norm is not finite; the message names step ``step``
        (the step this one makes, 1-based) and ``fix`` (the setting to change, e.g. ``"lower
        train.lr"``). Raised after back-propagation and before the step is applied: the
        weights and the optimizer's moments are left as they were. Under DDP the gradients
        are averaged over the ranks in back-propagation, so every rank sees the same
        non-finite norm and raises at the same step (none is left waiting for the others).
    """
    opt.zero_grad(set_to_none=True)
    loss.backward()
    norm = float(torch.nn.utils.clip_grad_norm_(
        model.parameters(), grad_clip if grad_clip > 0 else float("inf")))
    value = float(loss.detach())
    if not math.isfinite(value):
        raise FloatingPointError(f"The loss became {value} at step {step}; {fix}.")
    if not math.isfinite(norm):
        raise FloatingPointError(f"The gradient norm became {norm} at step {step} (loss "
                                 f"{value:.4g}); {fix}.")
    opt.step()
    return value


def lr_factor(step: int, cfg: Any) -> float:
    """The learning-rate multiplier (of ``cfg.lr``) at optimizer step ``step`` (0-based);
    ``cfg`` is any config with ``warmup_steps``, ``max_steps`` and ``min_lr_ratio``
    (:class:`TrainConfig`, the temporal network's config).

    Linear warm-up from ``1 / warmup_steps`` to 1 over the first ``cfg.warmup_steps``
    steps, then cosine decay from 1 to ``cfg.min_lr_ratio`` at ``cfg.max_steps`` (held
    there after).
    """
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    span = max(1, cfg.max_steps - cfg.warmup_steps)
    t = min(1.0, (step - cfg.warmup_steps) / span)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * t))


def _step_generator(seed: int, rank: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(stable_hash("batch", seed, rank, step, length=15), 16))


@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    checkpoint : Path of ``last.safetensors``.
    step : steps completed in total (including resumed ones).
    elapsed_s : training time in seconds, summed over resumes.
    history : list of dicts, one per logged step (step, loss, lr, ...).
    metrics : the metrics stored with the last checkpoint.
    """

    checkpoint: Path
    step: int
    elapsed_s: float
    history: list[dict[str, float]]
    metrics: dict[str, Any]


def _dist_info() -> tuple[int, int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    return world, rank, local


def _device(cfg: TrainConfig, local_rank: int) -> torch.device:
    if cfg.device == "cpu":
        return torch.device("cpu")
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("train.device = 'cuda' but torch sees no CUDA GPU; use 'auto' or 'cpu'.")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def _save(model, out: Path, cfg: TrainConfig, step: int, elapsed: float, opt, metrics,
          keep_copy: bool) -> Path:
    from .models.checkpoint import save_checkpoint

    training = cfg.to_dict()
    last = out / "last.safetensors"
    save_checkpoint(model, last, spacing_mm=7.0, training_config=training, metrics=metrics)
    state = {"step": step, "elapsed_s": elapsed, "optimizer": opt.state_dict(),
             "config": json.dumps(training, sort_keys=True)}
    tmp = out / "last.state.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, out / "last.state.pt")
    if keep_copy:
        snap = out / f"step-{step:06d}.safetensors"
        save_checkpoint(model, snap, spacing_mm=7.0, training_config=training, metrics=metrics)
    return last


def use_bf16(cfg: Any, device: torch.device) -> bool:
    """Whether training runs under bfloat16 autocast (``cfg.precision``: ``"auto"``, ``"fp32"``
    or ``"bf16"``; ``"auto"``: on CUDA and on CPUs with AMX or AVX-512-BF16). ``cfg`` is a
    :class:`TrainConfig` or the temporal network's config."""
    from ._util import cpu_features

    if cfg.precision != "auto":
        return cfg.precision == "bf16"
    return device.type == "cuda" or bool(cpu_features()["bf16_native"])


def _check_init_from(cfg: TrainConfig) -> Path:
    """The checkpoint ``cfg.init_from`` names, checked from its header alone: a PIUNet of
    ``cfg.width``, or of a width that divides it (widened at the start, :func:`widen`).

    Raises
    ------
    FileNotFoundError
        No such file (the message names the setting).
    ValueError
        Another network, or a width that is neither ``cfg.width`` nor a divisor of it.
    """
    from .models.checkpoint import init_from_header

    src, h = init_from_header("train.init_from", str(cfg.init_from), SHIPPED_CHECKPOINT,
                              "PIUNet", "a 3D-PIUNet", "weights/piunet-w8-stage2.safetensors")
    width = int(h.get("width") or 0)
    if width < 1 or width > cfg.width or cfg.width % width:
        raise ValueError(
            f"train.init_from = {cfg.init_from!r} holds a width-{width} network, and "
            f"train.width = {cfg.width} is neither that width nor a multiple of it to "
            f"widen it to; set train.width = {width} (or {2 * width}), or start "
            "from another checkpoint.")
    return src


def _validation_set(sim: Simulator, cfg: TrainConfig) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A run's fixed validation samples: ``cfg.val_samples`` drawn once from the training
    distribution (seed ``cfg.seed`` + 10,000,019), as (inputs, targets) batches of at most
    ``cfg.batch_size``."""
    val = []
    gen = torch.Generator().manual_seed(cfg.seed + 10_000_019)
    for start in range(0, cfg.val_samples, cfg.batch_size):
        b = sim.sample(min(cfg.batch_size, cfg.val_samples - start), gen)
        val.append((b.inputs, b.targets))
    return val


@torch.no_grad()
def _validate(model, val: list, flat_index: torch.Tensor, cfg: TrainConfig,
              sliced: SlicedWasserstein | None, bf16: bool, memory_format) -> dict[str, float]:
    if not val:
        return {}
    model.eval()
    sums: dict[str, float] = {}
    for inputs, targets in val:
        with torch.autocast(inputs.device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = model(inputs.contiguous(memory_format=memory_format))
        loss, parts = training_loss(pred.float(), targets, flat_index, cfg, sliced)
        zero, _ = training_loss(torch.zeros_like(targets), targets, flat_index, cfg, sliced)
        for key, value in {"val_loss": float(loss), "val_zero_loss": float(zero),
                           **{f"val_{k}": v for k, v in parts.items()}}.items():
            sums[key] = sums.get(key, 0.0) + value
    model.train()
    return {k: v / len(val) for k, v in sums.items()}


def train(cfg: TrainConfig, *, resume: bool = False, progress: bool = True,
          max_steps: int | None = None) -> TrainResult:
    """Train (or resume training) a 3D-PIUNet.

    Parameters
    ----------
    cfg : TrainConfig
    resume : continue from ``<out_dir>/last.safetensors`` + ``last.state.pt`` (the model
        architecture must match; the schedule continues at the saved step).
    progress : tqdm progress bar (rank 0 only).
    max_steps : stop after this many total steps in this call (overrides nothing in the
        schedule; for tests and for splitting a run).

    Returns
    -------
    TrainResult
    """
    from .models.checkpoint import load_checkpoint
    from .models.piunet import PIUNet, widen

    if cfg.init_from is not None and not resume:
        src = _check_init_from(cfg)  # before the bank (minutes) is built
    world, rank, local_rank = _dist_info()
    distributed = world > 1
    owns_group = False
    device = _device(cfg, local_rank)
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads)
    if distributed:
        import torch.distributed as dist

        owns_group = not dist.is_initialized()
        if owns_group:
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
        if device.type == "cuda":
            torch.cuda.set_device(device)
    out = Path(cfg.out_dir)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)

    # the bank: rank 0 builds missing cache entries first, the others then read them
    if distributed and rank != 0:
        torch.distributed.barrier()
    bank = ForwardBank(cfg.simulate, device=device, progress=progress and rank == 0)
    if distributed and rank == 0:
        torch.distributed.barrier()
    sim = Simulator(bank)
    flat_index = sim.mapper.flat_index

    torch.manual_seed(cfg.seed)
    model = PIUNet(cfg.width)
    narrow = None
    if cfg.init_from is not None and not resume:
        model = load_checkpoint(src).model.float()
        if model.width != cfg.width:
            narrow = model
            model = widen(narrow, cfg.width, seed=cfg.seed)  # refuses a non-multiple width
            logger.info("Starting from the weights of %s, widened from width %d to %d "
                        "(Net2WiderNet)", src, narrow.width, cfg.width)
        else:
            logger.info("Starting from the weights of %s", src)
    opt_state = None
    step = 0
    elapsed = 0.0
    if resume:
        last = out / "last.safetensors"
        state_file = out / "last.state.pt"
        if not last.exists() or not state_file.exists():
            raise FileNotFoundError(
                f"Cannot resume: {str(last)!r} and {str(state_file)!r} must both exist "
                f"(out_dir = {cfg.out_dir!r}); start without --resume.")
        ck = load_checkpoint(last, expected_width=cfg.width)
        model = ck.model
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        step, elapsed, opt_state = int(state["step"]), float(state["elapsed_s"]), state["optimizer"]
        if state.get("config") != json.dumps(cfg.to_dict(), sort_keys=True):
            saved = json.loads(state.get("config") or "{}")
            now = json.loads(json.dumps(cfg.to_dict()))
            changed = [f"{sec}.{k}: {saved.get(sec, {}).get(k)!r} -> {v!r}"
                       for sec in now for k, v in now[sec].items()
                       if saved.get(sec, {}).get(k) != v]
            logger.warning("Resuming %s with settings that differ from the saved run's: %s",
                           last, "; ".join(changed) or "(layout of the saved configuration)")
        logger.info("Resuming from step %d (%.1f min trained)", step, elapsed / 60)
    if device.type == "cuda" and cfg.workers:
        raise ValueError(f"train.workers = {cfg.workers}: simulation workers run on the CPU, "
                         "but on CUDA the simulator's data live on the GPU (a forked worker "
                         "cannot use it); set train.workers = 0 there (the GPU simulates "
                         "fast enough).")
    bf16 = use_bf16(cfg, device)
    memory_format = (torch.channels_last_3d if bf16 and cfg.channels_last and device.type == "cpu"
                     else torch.contiguous_format)
    model = model.to(device, memory_format=memory_format).train()
    sliced = (SlicedWasserstein(bank.src_pos_mm, cfg.distribution_projections, cfg.seed)
              if cfg.distribution_loss != "none" else None)
    if rank == 0:
        logger.info("Training on %s, %s%s, %d thread(s), %d simulation worker(s)", device,
                    "bf16 autocast" if bf16 else "float32",
                    ", channels-last" if memory_format is torch.channels_last_3d else "",
                    torch.get_num_threads() if device.type == "cpu" else 0, cfg.workers)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    net: torch.nn.Module = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda"
                                      else None)

    val = _validation_set(sim, cfg)

    if narrow is not None and rank == 0 and val:  # how close the widened start is to the narrow net
        narrow = narrow.to(device, memory_format=memory_format)
        logger.info("Validation loss at the start: widened %.5f, the width-%d network %.5f",
                    _validate(model, val, flat_index, cfg, sliced, bf16, memory_format)["val_loss"],
                    narrow.width,
                    _validate(narrow, val, flat_index, cfg, sliced, bf16, memory_format)["val_loss"])
    del narrow
    stop_at = cfg.max_steps if max_steps is None else min(cfg.max_steps, max_steps)
    batches = torch.utils.data.DataLoader(
        _Batches(sim, cfg, rank, step, stop_at), batch_size=None, num_workers=cfg.workers,
        prefetch_factor=2 if cfg.workers else None, persistent_workers=False)
    stream = iter(batches)
    bar = None
    if progress and rank == 0:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.max_steps, initial=step, desc=f"PIUNet w{cfg.width}", unit="step")
    history: list[dict[str, float]] = []
    ema = None
    t_start = time.perf_counter() - elapsed
    last_ckpt = time.perf_counter()
    metrics: dict[str, Any] = {}
    ckpt_path = out / "last.safetensors"
    time_up = False
    while step < stop_at and not time_up:
        for group in opt.param_groups:
            group["lr"] = cfg.lr * lr_factor(step, cfg)
        drawn, inputs, targets = next(stream)
        if drawn != step:  # pragma: no cover - the loader keeps order
            raise RuntimeError(f"Batch of step {drawn} arrived at step {step}.")
        inputs = inputs.to(device).contiguous(memory_format=memory_format)
        targets = targets.to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
            pred = net(inputs)
        loss, parts = training_loss(pred.float(), targets, flat_index, cfg, sliced)
        value = optimizer_step(loss, model, opt, cfg.grad_clip, step + 1, "lower train.lr")
        step += 1
        ema = value if ema is None else 0.98 * ema + 0.02 * value
        elapsed = time.perf_counter() - t_start
        if cfg.max_minutes is not None and elapsed >= cfg.max_minutes * 60:
            time_up = True
        if distributed:  # every rank must stop at the same step
            flag = torch.tensor([float(time_up)], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            time_up = bool(flag.item())
        if bar is not None:
            bar.update()
            bar.set_postfix(loss=f"{ema:.4f}", lr=f"{opt.param_groups[0]['lr']:.1e}")
        if step % cfg.log_steps == 0 or step == stop_at:
            rec = {"step": step, "loss": value, "loss_ema": ema, **parts,
                   "lr": opt.param_groups[0]["lr"], "elapsed_s": elapsed}
            history.append(rec)
            if rank == 0:
                logger.info("step %d loss %.5f (ema %.5f) lr %.2e %.2f s/step", step, value,
                            ema, rec["lr"], elapsed / max(step, 1))
        due = (time.perf_counter() - last_ckpt >= cfg.checkpoint_minutes * 60
               or (cfg.checkpoint_steps and step % cfg.checkpoint_steps == 0)
               or step == stop_at or time_up)
        if due and rank == 0:
            metrics = {"step": step, "train_loss_ema": ema, "elapsed_s": round(elapsed, 1),
                       "samples_seen": step * cfg.batch_size * world, "device": str(device),
                       "world_size": world, "bank": bank.hash,
                       "precision": "bf16" if bf16 else "fp32",
                       **_validate(model, val, flat_index, cfg, sliced, bf16, memory_format)}
            ckpt_path = _save(model, out, cfg, step, elapsed, opt, metrics, keep_copy=True)
            with open(out / "metrics.jsonl", "a") as fid:
                fid.write(json.dumps(metrics) + "\n")
            logger.info("checkpoint step %d: val loss %s (all-zero prediction %s)", step,
                        metrics.get("val_loss"), metrics.get("val_zero_loss"))
            last_ckpt = time.perf_counter()
    if bar is not None:
        bar.close()
    del stream, batches  # stops the simulation workers
    if distributed:
        torch.distributed.barrier()
        if owns_group:
            torch.distributed.destroy_process_group()
    return TrainResult(checkpoint=ckpt_path, step=step, elapsed_s=elapsed, history=history,
                       metrics=metrics)


def plot_training_curve(metrics_jsonl: str | os.PathLike, path: str | os.PathLike, *,
                        step_label: str = "step", loss_label: str = "loss") -> Path:
    """Draw the training and validation loss (and the all-zero prediction's loss) against
    steps from a run's ``metrics.jsonl`` (3D-PIUNet's or the temporal network's); returns
    the image path.

    Parameters
    ----------
    metrics_jsonl : a run's ``metrics.jsonl`` (one record per checkpoint with ``step``,
        ``train_loss_ema``, ``val_loss``, ``val_zero_loss`` and ``elapsed_s``).
    path : output image (PNG).
    step_label, loss_label : axis labels (e.g. "step (8 samples)", "masked L1").

    Raises
    ------
    ValueError : the file holds no record yet.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    recs = [json.loads(line) for line in Path(metrics_jsonl).read_text().splitlines() if line]
    recs = [r for r in recs if "val_loss" in r]
    if not recs:
        raise ValueError(f"{str(metrics_jsonl)!r} holds no checkpoint record with a validation "
                         "loss yet (train.val_samples = 0 records none).")
    steps = [r["step"] for r in recs]
    fig, ax = plt.subplots(figsize=(6, 3.4))
    ax.plot(steps, [r["train_loss_ema"] for r in recs], "o-", label="training (EMA)")
    ax.plot(steps, [r["val_loss"] for r in recs], "s-", label="validation")
    ax.plot(steps, [r["val_zero_loss"] for r in recs], "--", color="grey",
            label="all-zero prediction")
    ax.set_xlabel(step_label)
    ax.set_ylabel(loss_label)
    top = ax.secondary_xaxis("top", functions=(
        lambda s: np.interp(s, steps, [r["elapsed_s"] / 60 for r in recs]),
        lambda m: np.interp(m, [r["elapsed_s"] / 60 for r in recs], steps)))
    top.set_xlabel("training time (min)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def ship_checkpoint(src: str | os.PathLike, dst: str | os.PathLike | None = None, *,
                    metrics: dict[str, Any] | None = None) -> Path:
    """Write a training checkpoint as compact float16 weights (the shipped format).

    Parameters
    ----------
    src : a checkpoint written by :func:`train`.
    dst : output file (default: :func:`default_checkpoint_path`).
    metrics : replaces the stored metrics (e.g. with evaluation results); default keeps them.
    """
    from .models.checkpoint import load_checkpoint, save_checkpoint

    ck = load_checkpoint(src)
    dst = Path(dst) if dst is not None else default_checkpoint_path()
    merged = dict(ck.metrics)
    if metrics:
        merged.update(metrics)
    save_checkpoint(ck.model, dst, spacing_mm=float(ck.header.get("spacing_mm", 7.0)),
                    training_config=ck.training_config, metrics=merged, dtype="float16")
    return dst
