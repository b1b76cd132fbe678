"""The evaluation sweep: networks and classical inverses on a held-out head model.

Evaluation draws test sets on a head model and a montage the network never saw (by default
a three-shell sphere with the reference's test conductivities and GSN-HydroCel-129); the
inverse kernels (and the eLORETA the network refines) come from the same evaluation head
model unless ``inverse_from = "template"``, which uses the template BEM instead, so that the
data and the inverse also disagree on the conductor (the realistic case).
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from tqdm.auto import tqdm

from .._util import host_provenance, logger, stable_hash
from ..config import INVERSE_METHODS, HeadModelConfig, InverseConfig, check_value
from ..engines import make_engine
from ..models.checkpoint import load_checkpoint
from ..models.volume import VolumeMapper
from ..simulate import load_entry, random_sources, simulate_eeg
from .metrics import METRICS, _mag, emd, grid_neighbours, sample_metrics

__all__ = [
    "BASELINES", "Condition", "EvalConfig", "EvalResult", "InverseCrimeWarning",
    "check_inverse_crime", "default_conditions", "evaluate",
]

BASELINES = INVERSE_METHODS
"""Linear inverses an evaluation can compare against (:data:`rtsource.config.INVERSE_METHODS`)."""


class InverseCrimeWarning(UserWarning):
    """The evaluation head model is one the network was trained on."""


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
    backend, precision : how the networks run (``"eager"``/``"fp32"``: plain PyTorch, the
        reference; any engine of :func:`rtsource.engines.make_engine`, e.g. ``"openvino"``
        with ``"bf16"``, to check that a faster engine leaves the metrics unchanged).
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
    backend: str = "eager"
    precision: str = "fp32"

    @property
    def inverse_headmodel(self) -> HeadModelConfig:
        """The head model the kernels come from (``inverse_from``)."""
        return self.headmodel if self.inverse_from == "eval" else self.template


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


def _predict(model, mapper, z: np.ndarray, batch_size: int) -> np.ndarray:
    """Refined source vectors: ``model`` is a torch module or an engine (numpy in/out)."""
    out = []
    if not isinstance(model, torch.nn.Module):
        for s in range(0, len(z), batch_size):
            vol, scale = mapper.to_volume(np.ascontiguousarray(z[s:s + batch_size], np.float32))
            out.append(np.asarray(mapper.from_volume(model(vol), scale), np.float32))
        return np.concatenate(out)
    with torch.inference_mode():
        for s in range(0, len(z), batch_size):
            zt = torch.from_numpy(np.ascontiguousarray(z[s:s + batch_size], np.float32))
            vol, scale = mapper.to_volume(zt)
            out.append(mapper.from_volume(model(vol), scale).numpy())
    return np.concatenate(out)


def inverse_kernels(cfg: EvalConfig, methods: list[str], fwd_entry: Any) -> dict[str, torch.Tensor]:
    """The kernels (n_sources·3, n_channels) of ``methods`` the evaluation inverts with: from
    the evaluation head model, or from ``cfg.template`` with ``inverse_from = "template"``.

    Raises
    ------
    ValueError
        When the template's channels are not ``fwd_entry``'s.
    """
    kernels: dict[str, torch.Tensor] = {}
    for method in methods:
        entry, _ = load_entry(cfg.inverse_headmodel, cfg.headmodel.montage,
                              InverseConfig(method=method, lambda2=cfg.lambda2),
                              noise_length_mm=cfg.noise_corr_length_mm)
        if entry.ch_names != fwd_entry.ch_names:
            raise ValueError("Evaluation and template head models have other channels.")
        kernels[method] = entry.kernel
    return kernels


def condition_test_set(cfg: EvalConfig, cond: Condition, pos_t: torch.Tensor, fwd_entry: Any
             ) -> tuple[Any, torch.Tensor]:
    """The test set of one condition: ``cfg.n_samples`` source configurations and their EEG
    (``fwd_entry``'s forward model, sensor noise at ``cond.snr_db``), drawn from a generator
    seeded by ``cfg.seed`` and the condition, so that every method and every script sees the
    same samples.

    Returns
    -------
    (SourceBatch with x of shape (n_samples, n_points, 3), EEG (n_samples, n_channels) in V)
    """
    g = torch.Generator().manual_seed(int(stable_hash("eval", cfg.seed, cond.key, length=15), 16))
    src = random_sources(pos_t, cfg.n_samples, n_sources=(cond.n_sources, cond.n_sources),
                         extent_mm=cond.extent_mm, generator=g)
    snr = torch.full((cfg.n_samples,), float(cond.snr_db))
    rho = torch.full((cfg.n_samples,), float(cfg.corr_noise))
    return src, simulate_eeg(src.x, fwd_entry, snr, rho, g)


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
    cfg = cfg or EvalConfig()
    conditions = conditions or default_conditions()
    t_start, host = time.perf_counter(), host_provenance()
    for b in baselines:
        check_value(b, BASELINES, "baseline")
    nets: dict[str, Any] = dict(models or {})
    headers: dict[str, dict[str, Any]] = {}
    for name, path in (checkpoints or {}).items():
        ck = load_checkpoint(path)
        nets[name] = ck.model.eval()
        headers[name] = {**ck.header, "sha256": ck.sha256, "path": str(ck.path)}
    if (cfg.backend, cfg.precision) != ("eager", "fp32"):
        nets = {name: make_engine(net, cfg.backend, batch_sizes=(cfg.batch_size,),
                                  precision=cfg.precision) for name, net in nets.items()}
    crime = check_inverse_crime(cfg, headers)

    fwd_entry, hm = load_entry(cfg.headmodel, None, InverseConfig(method="eloreta",
                               lambda2=cfg.lambda2), noise_length_mm=cfg.noise_corr_length_mm,
                               progress=progress)
    kernels = inverse_kernels(cfg, sorted(set(baselines) | {"eloreta"}), fwd_entry)
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
        pool = ProcessPoolExecutor(cfg.workers, mp_context=multiprocessing.get_context("spawn"))
    bar = tqdm(total=len(unique) * cfg.n_samples, desc="Evaluate", unit="sample",
               disable=not progress)
    for key, cond in unique.items():
        src, eeg = condition_test_set(cfg, cond, pos_t, fwd_entry)
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
        "inverse_headmodel": dataclasses.asdict(cfg.inverse_headmodel),
        "lambda2": cfg.lambda2, "n_samples": cfg.n_samples, "corr_noise": cfg.corr_noise,
        "seed": cfg.seed,
        "networks": {n: {"path": h.get("path"), "sha256": h.get("sha256"),
                         "width": h.get("width")} for n, h in headers.items()},
        "inverse_crime_warnings": crime,
        "host": host, "wall_s": round(time.perf_counter() - t_start, 1),
        "backend": cfg.backend, "precision": cfg.precision, "workers": cfg.workers,
    }
    return EvalResult(rows=all_rows, summary=summary, meta=meta)

