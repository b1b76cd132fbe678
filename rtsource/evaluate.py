"""Metrics and the evaluation sweep (``rtsource evaluate``).

Metrics (per sample; ``x`` the true and ``x̂`` the estimated source vectors, shape
(n_sources, 3), on the source grid; positions in millimetres):

- **NEMD**: exact earth mover's distance between the normalised magnitude maps
  p = ‖x_i‖ / Σ‖x‖ and p̂, with Euclidean ground cost (mm), divided by the EMD between a
  uniform map and p. 0 is perfect; 1 is no better than a flat map. Solved exactly by network
  simplex (POT's ``ot.emd2``) on the support of the difference p̂ − p: for a metric ground
  cost, shared mass moves for free, so EMD(p̂, p) = EMD((p̂ − p)⁺, (p̂ − p)⁻), a smaller
  problem with the same optimum.
- **NMSE**: mean((x − αx̂)²) / mean(x²) with α the least-squares scale, because dSPM and
  sLORETA are not in current units (0 is perfect, 1 is no better than zero).
- **1 − weighted cosine**: 1 − Σ w_i cos∠(x̂_i, x_i) with w_i = ‖x_i‖ / Σ‖x‖ (orientation
  error; 0 perfect, 2 opposite).
- **MLE** (mm): mean localisation error between local maxima. Local maxima of ‖x‖ and ‖x̂‖
  over the 26-neighbourhood of the grid lattice that reach ``rel_threshold`` of the map's
  maximum; the K strongest estimated maxima (K = number of true maxima) are paired with the
  true ones by a minimum-distance assignment; a true maximum left without a partner counts
  its distance to the nearest estimated maximum.
- **AUC**: sources with ‖x_i‖ ≥ ``active_threshold``·max are active; the others inactive,
  split into *close* (within ``close_mm`` of an active source) and *far*. The AUC of ‖x̂‖
  for active vs close and active vs far (Mann–Whitney), averaged.

Evaluation draws test sets on a head model and a montage the network never saw (by default
a three-shell sphere with the reference's test conductivities and GSN-HydroCel-129); the
inverse kernels (and the eLORETA the network refines) come from the same evaluation head
model unless ``inverse_from = "template"``, which uses the template BEM instead, so that the
data and the inverse also disagree on the conductor (the realistic case).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

from ._util import logger, optional_import, stable_hash
from .config import HeadModelConfig, InverseConfig

__all__ = [
    "BASELINES", "METRICS", "Condition", "EvalConfig", "EvalResult", "InverseCrimeWarning",
    "auc_close_far", "check_inverse_crime", "default_conditions", "emd", "evaluate",
    "grid_neighbours", "local_maxima", "localisation_error", "markdown_table", "nemd", "nmse",
    "sample_metrics", "weighted_cosine_error", "write_report",
]

BASELINES = ("eloreta", "sloreta", "dspm", "mne")
METRICS = ("nemd", "mle_mm", "auc", "nmse", "wcos_err")
METRIC_LABELS = {"nemd": "NEMD", "mle_mm": "MLE (mm)", "auc": "AUC", "nmse": "NMSE",
                 "wcos_err": "1 − wcos"}
LOWER_IS_BETTER = {"nemd": True, "mle_mm": True, "auc": False, "nmse": True, "wcos_err": True}


class InverseCrimeWarning(UserWarning):
    """The evaluation head model is one the network was trained on."""


# --------------------------------------------------------------------------- metrics
def _mag(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    return np.linalg.norm(x, axis=-1) if x.ndim == 2 else np.abs(x)


def _ot():
    return optional_import("ot", "train", "The exact earth mover's distance (NEMD)")


def emd(p: np.ndarray, q: np.ndarray, pos_mm: np.ndarray) -> float:
    """Exact earth mover's distance between two distributions on the same points.

    Parameters
    ----------
    p, q : (n,) non-negative masses (normalised to sum 1 here).
    pos_mm : (n, 3) positions in millimetres (Euclidean ground cost).

    Returns
    -------
    float, EMD in millimetres.
    """
    p = np.asarray(p, float)
    q = np.asarray(q, float)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("emd: both maps need positive total mass.")
    d = p / p.sum() - q / q.sum()
    tol = 1e-12
    pos_i = np.flatnonzero(d > tol)
    neg_i = np.flatnonzero(d < -tol)
    if pos_i.size == 0 or neg_i.size == 0:
        return 0.0
    a = d[pos_i]
    b = -d[neg_i]
    moved = 0.5 * (a.sum() + b.sum())
    M = cdist(pos_mm[pos_i], pos_mm[neg_i])
    ot = _ot()
    value = ot.emd2(a / a.sum(), b / b.sum(), M, numItermax=50_000_000)
    return float(value) * moved


def nemd(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
         emd_uniform: float | None = None) -> float:
    """EMD(p̂, p) / EMD(uniform, p) for magnitude maps (see module docstring).

    Parameters
    ----------
    x, x_hat : (n, 3) or (n,) true and estimated sources.
    pos_mm : (n, 3) positions (mm).
    emd_uniform : precomputed EMD(uniform, p) (saves time over several estimates).
    """
    p, q = _mag(x), _mag(x_hat)
    if q.sum() <= 0:
        return float("nan")
    if emd_uniform is None:
        emd_uniform = emd(np.ones_like(p), p, pos_mm)
    return emd(q, p, pos_mm) / emd_uniform


def nmse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """mean((x − αx̂)²) / mean(x²) with the least-squares scale α ≥ 0 (scale-free)."""
    x = np.asarray(x, float).ravel()
    y = np.asarray(x_hat, float).ravel()
    yy = y @ y
    alpha = max(0.0, (x @ y) / yy) if yy > 0 else 0.0
    return float(np.mean((x - alpha * y) ** 2) / np.mean(x**2))


def weighted_cosine_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """1 − Σ w_i cos∠(x̂_i, x_i) with w_i = ‖x_i‖ / Σ‖x‖; x, x̂ of shape (n, 3)."""
    x = np.asarray(x, float)
    y = np.asarray(x_hat, float)
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    cos = np.where((nx > 0) & (ny > 0), (x * y).sum(1) / np.maximum(nx * ny, 1e-300), 0.0)
    return float(1.0 - (nx * cos).sum() / nx.sum())


def grid_neighbours(vox: np.ndarray) -> np.ndarray:
    """26-neighbourhood on the source lattice.

    Parameters
    ----------
    vox : (n, 3) int voxel indices.

    Returns
    -------
    (n, 26) int, index of each neighbour or −1 where the neighbour is not a source point.
    """
    vox = np.asarray(vox, int)
    shape = vox.max(0) + 3
    lut = -np.ones(shape, int)
    lut[tuple((vox + 1).T)] = np.arange(len(vox))
    offs = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                     if (i, j, k) != (0, 0, 0)])
    nb = vox[:, None, :] + 1 + offs[None]
    return lut[nb[..., 0], nb[..., 1], nb[..., 2]]


def local_maxima(values: np.ndarray, neighbours: np.ndarray,
                 rel_threshold: float = 0.2) -> np.ndarray:
    """Indices of local maxima, strongest first.

    Parameters
    ----------
    values : (n,) non-negative map.
    neighbours : (n, 26) from :func:`grid_neighbours`.
    rel_threshold : keep maxima ≥ this fraction of the global maximum.
    """
    v = np.asarray(values, float)
    vmax = v.max() if v.size else 0.0
    if vmax <= 0:
        return np.zeros(0, int)
    nbv = np.where(neighbours >= 0, v[np.maximum(neighbours, 0)], -np.inf)
    is_max = (v >= nbv.max(1)) & (v >= rel_threshold * vmax)
    idx = np.flatnonzero(is_max)
    # plateaus: keep one point per connected tie (the first in index order)
    keep = []
    taken = np.zeros(len(v), bool)
    for i in idx[np.argsort(-v[idx], kind="stable")]:
        if taken[i]:
            continue
        keep.append(i)
        nb = neighbours[i][neighbours[i] >= 0]
        taken[nb[v[nb] == v[i]]] = True
    return np.array(keep, int)


def localisation_error(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
                       neighbours: np.ndarray, rel_threshold: float = 0.2) -> float:
    """Mean localisation error (mm) between local maxima (see module docstring)."""
    true_max = local_maxima(_mag(x), neighbours, rel_threshold)
    est_max = local_maxima(_mag(x_hat), neighbours, rel_threshold)
    if true_max.size == 0 or est_max.size == 0:
        return float("nan")
    est_top = est_max[: true_max.size]
    D = cdist(pos_mm[true_max], pos_mm[est_top])
    rows, cols = linear_sum_assignment(D)
    err = np.empty(true_max.size)
    err[:] = np.nan
    err[rows] = D[rows, cols]
    left = np.isnan(err)
    if left.any():
        err[left] = cdist(pos_mm[true_max[left]], pos_mm[est_max]).min(1)
    return float(err.mean())


def _auc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    n1, n0 = len(pos_scores), len(neg_scores)
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.r_[pos_scores, neg_scores])
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_close_far(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
                  active_threshold: float = 0.25, close_mm: float = 20.0) -> float:
    """Mean of the AUCs active-vs-close and active-vs-far (see module docstring)."""
    m, s = _mag(x), _mag(x_hat)
    active = m >= active_threshold * m.max()
    if not active.any() or active.all():
        return float("nan")
    d = cdist(pos_mm[~active], pos_mm[active]).min(1)
    inactive = np.flatnonzero(~active)
    close, far = inactive[d <= close_mm], inactive[d > close_mm]
    vals = [_auc(s[active], s[g]) for g in (close, far) if g.size]
    return float(np.mean(vals))


def sample_metrics(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
                   neighbours: np.ndarray, emd_uniform: float | None = None
                   ) -> dict[str, float]:
    """All metrics for one sample: nemd, mle_mm, auc, nmse, wcos_err."""
    return {
        "nemd": nemd(x, x_hat, pos_mm, emd_uniform),
        "mle_mm": localisation_error(x, x_hat, pos_mm, neighbours),
        "auc": auc_close_far(x, x_hat, pos_mm),
        "nmse": nmse(x, x_hat),
        "wcos_err": weighted_cosine_error(x, x_hat),
    }


# --------------------------------------------------------------------------- sweep
@dataclass(frozen=True)
class Condition:
    """One test condition: number of sources, extent range (mm), SNR (dB)."""

    n_sources: int = 1
    extent_mm: tuple[float, float] = (5.0, 40.0)
    snr_db: float = 10.0

    @property
    def key(self) -> str:
        lo, hi = self.extent_mm
        ext = f"{lo:g}" if lo == hi else f"{lo:g}-{hi:g}"
        return f"n={self.n_sources} sigma={ext}mm snr={self.snr_db:g}dB"


def default_conditions() -> dict[str, list[Condition]]:
    """The three sweeps around one source, σ 5–40 mm, 10 dB."""
    return {
        "snr_db": [Condition(snr_db=s) for s in (0.0, 5.0, 10.0, 20.0, 30.0)],
        "n_sources": [Condition(n_sources=n) for n in (1, 2, 3, 5, 10)],
        "extent_mm": [Condition(extent_mm=(e, e)) for e in (5.0, 10.0, 20.0, 40.0)],
    }


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation settings.

    headmodel : the held-out head model that makes the EEG (montage included).
    inverse_from : ``"eval"`` (kernels from the evaluation head model, as the reference does)
        or ``"template"`` (kernels from ``template``: conductor mismatch, the realistic case).
    template : the head model the kernels come from when ``inverse_from = "template"``.
    n_samples : samples per condition.
    corr_noise : fraction of the noise power that is spatially correlated (0 = white).
    lambda2 : λ² of every kernel.
    seed : seed of the test sets (the same for every method).
    batch_size : network batch size.
    workers : processes computing the metrics (the exact EMD dominates the run time).
    """

    headmodel: HeadModelConfig = HeadModelConfig(montage="GSN-HydroCel-129", conductor="sphere",
                                                 conductivity=(0.332, 0.0113, 0.332))
    inverse_from: Literal["eval", "template"] = "eval"
    template: HeadModelConfig = HeadModelConfig(conductor="bem",
                                                conductivity=(0.3, 0.006, 0.3), bem_ico=4)
    n_samples: int = 50
    corr_noise: float = 0.0
    noise_corr_length_mm: float = 40.0
    lambda2: float = 1.0 / 9.0
    seed: int = 1234
    batch_size: int = 8
    workers: int = 1


@dataclass
class EvalResult:
    """Per-sample rows and per-condition medians.

    rows : list of dicts (sweep, condition, n_sources, extent, snr_db, method, sample,
        and every metric).
    summary : list of dicts (sweep, condition, method, median and IQR of every metric).
    meta : provenance (head models, montage, checkpoints, warnings).
    """

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def _training_headmodels(header: dict[str, Any]) -> tuple[list[dict], list[str]]:
    sim = header.get("training_config", {}).get("simulate", {})
    return list(sim.get("headmodels", [])), list(sim.get("montages", []))


def check_inverse_crime(cfg: EvalConfig, headers: dict[str, dict[str, Any]]) -> list[str]:
    """Warn (and return messages) when the evaluation head model was used in training."""
    msgs = []
    h = cfg.headmodel
    for name, header in headers.items():
        models, montages = _training_headmodels(header)
        for m in models:
            same_cond = (m.get("conductor") == h.conductor
                         and np.allclose(m.get("conductivity", []), h.conductivity)
                         and (h.conductor == "sphere" or m.get("bem_ico") == h.bem_ico))
            if same_cond:
                where = ("with the same montage" if h.montage in montages
                         else "(another montage)")
                msg = (f"The evaluation head model ({h.conductor}, {h.conductivity} S/m) is one "
                       f"that {name} was trained on {where}: this measures the inverse crime, "
                       "not generalisation to a real head.")
                warnings.warn(msg, InverseCrimeWarning, stacklevel=3)
                logger.warning(msg)
                msgs.append(msg)
                break
    return msgs


def _metrics_job(job) -> dict[str, dict[str, float]]:
    x, estimates, pos_mm, nb = job
    e_u = emd(np.ones(len(pos_mm)), _mag(x), pos_mm)
    return {m: sample_metrics(x, e, pos_mm, nb, e_u) for m, e in estimates.items()}


def _predict(model: torch.nn.Module, mapper, z: np.ndarray, batch_size: int) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for s in range(0, len(z), batch_size):
            zt = torch.from_numpy(np.ascontiguousarray(z[s:s + batch_size], np.float32))
            vol, scale = mapper.to_volume(zt)
            out.append(mapper.from_volume(model(vol), scale).numpy())
    return np.concatenate(out)


def evaluate(checkpoints: dict[str, str | os.PathLike] | None = None,
             cfg: EvalConfig | None = None, *,
             conditions: dict[str, list[Condition]] | None = None,
             baselines: tuple[str, ...] = BASELINES, progress: bool = True,
             models: dict[str, torch.nn.Module] | None = None) -> EvalResult:
    """Evaluate networks and classical inverses on a held-out head model.

    Parameters
    ----------
    checkpoints : name → checkpoint file (each a PIUNet refining eLORETA).
    cfg : EvalConfig.
    conditions : sweep name → conditions (default :func:`default_conditions`). Conditions
        shared by several sweeps are simulated once.
    baselines : linear inverses to evaluate (eloreta, sloreta, dspm, mne).
    progress : progress bar.
    models : name → already-loaded network (alternative to ``checkpoints``).

    Returns
    -------
    EvalResult
    """
    from tqdm.auto import tqdm

    from .models.checkpoint import load_checkpoint
    from .models.volume import VolumeMapper
    from .simulate import load_entry, random_sources, simulate_eeg

    cfg = cfg or EvalConfig()
    conditions = conditions or default_conditions()
    for b in baselines:
        if b not in BASELINES:
            raise ValueError(f"Baseline {b!r} is not valid; choose from {list(BASELINES)}.")
    nets: dict[str, torch.nn.Module] = dict(models or {})
    headers: dict[str, dict[str, Any]] = {}
    for name, path in (checkpoints or {}).items():
        ck = load_checkpoint(path)
        nets[name] = ck.model.eval()
        headers[name] = {**ck.header, "sha256": ck.sha256, "path": str(ck.path)}
    crime = check_inverse_crime(cfg, headers)

    inv_hm = cfg.headmodel if cfg.inverse_from == "eval" else cfg.template
    fwd_entry, hm = load_entry(cfg.headmodel, None, InverseConfig(method="eloreta",
                               lambda2=cfg.lambda2), noise_length_mm=cfg.noise_corr_length_mm,
                               progress=progress)
    kernels: dict[str, torch.Tensor] = {}
    for method in sorted(set(baselines) | {"eloreta"}):
        entry, _ = load_entry(inv_hm, cfg.headmodel.montage,
                              InverseConfig(method=method, lambda2=cfg.lambda2),
                              noise_length_mm=cfg.noise_corr_length_mm)
        if entry.ch_names != fwd_entry.ch_names:
            raise ValueError("Evaluation and template head models have other channels.")
        kernels[method] = entry.kernel
    mapper = VolumeMapper(hm.vox)
    pos_mm = hm.src_pos * 1000.0
    pos_t = torch.from_numpy(pos_mm.astype(np.float32))
    nb = grid_neighbours(hm.vox)
    methods = list(nets) + list(baselines)

    unique: dict[str, Condition] = {}
    for conds in conditions.values():
        for c in conds:
            unique.setdefault(c.key, c)
    results: dict[str, list[dict[str, float]]] = {}
    pool = None
    if cfg.workers > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"))
    bar = tqdm(total=len(unique) * cfg.n_samples, desc="Evaluate", unit="sample",
               disable=not progress)
    for key, cond in unique.items():
        g = torch.Generator().manual_seed(int(stable_hash("eval", cfg.seed, key, length=15), 16))
        src = random_sources(pos_t, cfg.n_samples, n_sources=(cond.n_sources, cond.n_sources),
                             extent_mm=cond.extent_mm, generator=g)
        snr = torch.full((cfg.n_samples,), float(cond.snr_db))
        rho = torch.full((cfg.n_samples,), float(cfg.corr_noise))
        eeg = simulate_eeg(src.x, fwd_entry, snr, rho, g)
        est = {m: (eeg @ k.T).reshape(src.x.shape).numpy() for m, k in kernels.items()}
        for name, net in nets.items():
            est[name] = _predict(net, mapper, est["eloreta"], cfg.batch_size)
        x = src.x.numpy()
        jobs = [(x[i], {m: est[m][i] for m in methods}, pos_mm, nb) for i in range(cfg.n_samples)]
        rows = []
        if pool is None:
            done = map(_metrics_job, jobs)
        else:
            done = pool.map(_metrics_job, jobs)
        for i, per_method in enumerate(done):
            for m in methods:
                rows.append({"method": m, "sample": i, **per_method[m]})
            bar.update()
        results[key] = rows
    bar.close()
    if pool is not None:
        pool.shutdown()

    all_rows: list[dict[str, Any]] = []
    summary: list[dict[str, Any]] = []
    for sweep, conds in conditions.items():
        for c in conds:
            desc = {"sweep": sweep, "condition": c.key, "n_sources": c.n_sources,
                    "extent_mm": f"{c.extent_mm[0]:g}" if c.extent_mm[0] == c.extent_mm[1]
                    else f"{c.extent_mm[0]:g}-{c.extent_mm[1]:g}", "snr_db": c.snr_db}
            for r in results[c.key]:
                all_rows.append({**desc, **r})
            for m in methods:
                vals = {k: np.array([r[k] for r in results[c.key] if r["method"] == m])
                        for k in METRICS}
                s = {**desc, "method": m}
                for k, v in vals.items():
                    v = v[np.isfinite(v)]
                    s[k] = float(np.median(v)) if v.size else float("nan")
                    s[f"{k}_q25"] = float(np.percentile(v, 25)) if v.size else float("nan")
                    s[f"{k}_q75"] = float(np.percentile(v, 75)) if v.size else float("nan")
                    s[f"{k}_mean"] = float(np.mean(v)) if v.size else float("nan")
                summary.append(s)
    meta = {
        "eval_headmodel": {k: v for k, v in dataclasses.asdict(cfg.headmodel).items()},
        "eval_headmodel_hash": hm.hash,
        "inverse_from": cfg.inverse_from,
        "inverse_headmodel": dataclasses.asdict(inv_hm),
        "lambda2": cfg.lambda2, "n_samples": cfg.n_samples, "corr_noise": cfg.corr_noise,
        "seed": cfg.seed,
        "networks": {n: {"path": h.get("path"), "sha256": h.get("sha256"),
                         "width": h.get("width")} for n, h in headers.items()},
        "inverse_crime_warnings": crime,
    }
    return EvalResult(rows=all_rows, summary=summary, meta=meta)


# --------------------------------------------------------------------------- report
def _fmt(v: float, k: str) -> str:
    if not math.isfinite(v):
        return "–"
    return f"{v:.1f}" if k == "mle_mm" else f"{v:.3f}"


def markdown_table(result: EvalResult, metrics: tuple[str, ...] = ("nemd", "mle_mm", "auc")
                   ) -> str:
    """Markdown tables (one per sweep): medians per condition and method."""
    methods = list(dict.fromkeys(s["method"] for s in result.summary))
    lines = []
    for sweep in dict.fromkeys(s["sweep"] for s in result.summary):
        rows = [s for s in result.summary if s["sweep"] == sweep]
        conds = list(dict.fromkeys(s["condition"] for s in rows))
        lines.append(f"**Sweep over {sweep}** (median over {result.meta.get('n_samples')} "
                     "samples per condition)\n")
        head = ["condition"] + [f"{METRIC_LABELS[k]} {m}" for k in metrics for m in methods]
        lines.append("| " + " | ".join(head) + " |")
        lines.append("|" + "---|" * len(head))
        for c in conds:
            by_m = {s["method"]: s for s in rows if s["condition"] == c}
            cells = [c] + [_fmt(by_m[m][k], k) for k in metrics for m in methods]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


def _plot(result: EvalResult, out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files = []
    methods = list(dict.fromkeys(s["method"] for s in result.summary))
    for sweep in dict.fromkeys(s["sweep"] for s in result.summary):
        rows = [s for s in result.summary if s["sweep"] == sweep]
        fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.4))
        for ax, k in zip(axes, METRICS, strict=True):
            for m in methods:
                rs = [r for r in rows if r["method"] == m]
                xs = [float(str(r[sweep]).split("-")[0]) for r in rs]
                med = np.array([r[k] for r in rs])
                ax.plot(xs, med, "o-", label=m, lw=2 if m not in BASELINES else 1)
                ax.fill_between(xs, [r[f"{k}_q25"] for r in rs], [r[f"{k}_q75"] for r in rs],
                                alpha=0.12)
            ax.set_xlabel(sweep.replace("_", " "))
            ax.set_title(METRIC_LABELS[k] + (" ↓" if LOWER_IS_BETTER[k] else " ↑"))
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.tight_layout()
        path = out / f"sweep_{sweep}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        files.append(path)
    return files


def write_report(result: EvalResult, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``samples.csv``, ``summary.csv``, ``report.md``, ``meta.json`` and PNG plots.

    Returns
    -------
    dict name → path of what was written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, rows in (("samples", result.rows), ("summary", result.summary)):
        path = out / f"{name}.csv"
        with open(path, "w", newline="") as fid:
            w = csv.DictWriter(fid, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        files[name] = path
    meta = out / "meta.json"
    meta.write_text(json.dumps(result.meta, indent=2, default=str))
    files["meta"] = meta
    md = out / "report.md"
    h = result.meta.get("eval_headmodel", {})
    text = [
        "# rtsource evaluation\n",
        f"Held-out data: {h.get('conductor')} head model, conductivities "
        f"{h.get('conductivity')} S/m, montage {h.get('montage')}; kernels from the "
        f"{'evaluation' if result.meta.get('inverse_from') == 'eval' else 'template'} "
        f"head model; λ² = {result.meta.get('lambda2'):.4g}; white"
        f"{' + correlated' if result.meta.get('corr_noise') else ''} sensor noise.\n",
    ]
    for msg in result.meta.get("inverse_crime_warnings", []):
        text.append(f"> **Warning:** {msg}\n")
    text.append(markdown_table(result))
    text.append("NMSE and 1 − weighted cosine are in `summary.csv`; plots: "
                + ", ".join(f"`{p.name}`" for p in _plot(result, out)) + ".\n")
    md.write_text("\n".join(text))
    files["report"] = md
    for p in out.glob("sweep_*.png"):
        files[p.stem] = p
    return files
