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
from .models.checkpoint import SHIPPED_CHECKPOINT
from .simulate import ForwardBank, SimConfig, Simulator, sim_config_from_dict

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover
    pass

__all__ = ["SHIPPED_WEIGHTS", "TrainConfig", "TrainResult", "default_checkpoint_path",
           "load_train_config", "lr_factor", "masked_l1", "ship_checkpoint", "train"]

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
    grad_clip : gradient-norm clip (0 disables).
    checkpoint_minutes : write a checkpoint at least this often (wall clock).
    checkpoint_steps : and every this many steps (0 disables).
    log_steps : log a line every this many steps.
    val_samples : fixed validation samples (drawn once from the training distribution).
    out_dir : output folder.
    seed : seed of the initial weights and of the data stream.
    device : ``"auto"`` (CUDA if available), ``"cpu"`` or ``"cuda"``.
    threads : torch CPU threads (keep ≤ the cores you may use).
    amp : bfloat16 autocast on CUDA (ignored on CPU).
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
    grad_clip: float = 1.0
    checkpoint_minutes: float = 5.0
    checkpoint_steps: int = 0
    log_steps: int = 10
    val_samples: int = 32
    out_dir: str = "runs/piunet-w8"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    threads: int = 1
    amp: bool = True
    simulate: SimConfig = field(default_factory=SimConfig)

    def __post_init__(self) -> None:
        for name in ("width", "batch_size", "max_steps", "threads", "log_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} = {getattr(self, name)} must be at least 1.")
        if self.lr <= 0 or not 0 <= self.min_lr_ratio <= 1:
            raise ValueError(f"train.lr = {self.lr} must be > 0 and train.min_lr_ratio = "
                             f"{self.min_lr_ratio} in [0, 1].")

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
    for key in ("max_minutes",):
        if tr.get(key) == 0:
            tr[key] = None
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


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """The learning-rate multiplier (of ``cfg.lr``) at optimizer step ``step`` (0-based).

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


@torch.no_grad()
def _validate(model, val: list, flat_index: torch.Tensor, cfg: TrainConfig) -> dict[str, float]:
    if not val:
        return {}
    model.eval()
    loss = zero = 0.0
    for inputs, targets in val:
        pred = model(inputs)
        loss += float(masked_l1(pred, targets, flat_index, cfg.loss, cfg.loss_weight))
        zero += float(masked_l1(torch.zeros_like(targets), targets, flat_index, cfg.loss,
                                cfg.loss_weight))
    model.train()
    return {"val_loss": loss / len(val), "val_zero_loss": zero / len(val)}


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
    from .models.piunet import PIUNet

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
            logger.warning("Resuming %s with a configuration that differs from the saved one",
                           last)
        logger.info("Resuming from step %d (%.1f min trained)", step, elapsed / 60)
    model = model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if opt_state is not None:
        opt.load_state_dict(opt_state)
    net: torch.nn.Module = model
    if distributed:
        from torch.nn.parallel import DistributedDataParallel

        net = DistributedDataParallel(model, device_ids=[local_rank] if device.type == "cuda"
                                      else None)

    val = []
    g_val = torch.Generator().manual_seed(cfg.seed + 10_000_019)
    for start in range(0, cfg.val_samples, cfg.batch_size):
        b = sim.sample(min(cfg.batch_size, cfg.val_samples - start), g_val)
        val.append((b.inputs, b.targets))

    stop_at = cfg.max_steps if max_steps is None else min(cfg.max_steps, max_steps)
    use_amp = cfg.amp and device.type == "cuda"
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
        batch = sim.sample(cfg.batch_size, _step_generator(cfg.seed, rank, step))
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
            pred = net(batch.inputs)
        loss = masked_l1(pred, batch.targets, flat_index, cfg.loss, cfg.loss_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"Training loss became {value} at step {step}; lower train.lr.")
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
            rec = {"step": step, "loss": value, "loss_ema": ema,
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
                       **_validate(model, val, flat_index, cfg)}
            ckpt_path = _save(model, out, cfg, step, elapsed, opt, metrics, keep_copy=True)
            with open(out / "metrics.jsonl", "a") as fid:
                fid.write(json.dumps(metrics) + "\n")
            logger.info("checkpoint step %d: val loss %s (all-zero prediction %s)", step,
                        metrics.get("val_loss"), metrics.get("val_zero_loss"))
            last_ckpt = time.perf_counter()
    if bar is not None:
        bar.close()
    if distributed:
        torch.distributed.barrier()
        if owns_group:
            torch.distributed.destroy_process_group()
    return TrainResult(checkpoint=ckpt_path, step=step, elapsed_s=elapsed, history=history,
                       metrics=metrics)


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
