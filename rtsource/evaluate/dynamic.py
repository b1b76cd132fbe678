"""Dynamic evaluation: region time courses recovered by every method, per brain regime.

Test windows are composed from the brain model's cached waveform libraries
(:mod:`rtsource.simulate.dynamics`) on a held-out head model and montage (by default the
static sweep's: a three-shell sphere with the reference's test conductivities and
GSN-HydroCel-129, neither used in training), at several sensor SNRs. Every method rtsource
has (eLORETA, sLORETA, dSPM, MNE and the 3D-PIUNet refinement of eLORETA) estimates source
vectors for every sample of a window; they are reduced to the brain model's BN246 regions
with the signed region mode (:class:`rtsource.regions.RegionReducer`, the inverse head
model's partial-volume weights and dominant orientations). The temporal network (method
``temporal``) estimates the node time courses directly (:class:`rtsource.online.temporal.
TemporalStage`, started afresh for every window, as the other methods' windows are
independent).

Metrics per window, after DeepSIF (Sun et al. 2022, PNAS 119:e2201128119, and its code):

* **active regions**: Otsu's threshold (``skimage.filters.threshold_otsu``) of the absolute
  region activity over all regions and samples of the window; a region is active when it is
  above the threshold for more than 7 samples (scored on every k-th sample: for the same
  duration, more than ceil(8 / k) − 1 samples);
* **precision, recall**: of the active regions against the true regions (those carrying the
  regime's activity: a focus and its spread, or a stimulated thalamic nucleus and its cortex);
* **localisation error** (mm): mean distance from each active region's centroid to the
  nearest true region's centroid;
* **|r|**: mean absolute Pearson correlation of the estimated with the true time course over
  the true regions (absolute: the polarity of a free thalamic dipole is arbitrary).

Each is computed separately for cortical and for thalamic regions (a class's row only from
windows that have true regions of that class: precision and localisation error then count
only that class's active regions).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm.auto import tqdm

from .._util import host_provenance, optional_import, stable_hash
from ..config import INVERSE_METHODS, HeadModelConfig, InverseConfig, check_range, check_value
from ..regions import RegionReducer, region_map
from ..simulate import load_entry
from ..simulate.dynamics import (
    NOISE_KINDS,
    REGIMES,
    DynamicComposer,
    LibraryConfig,
    RegionProjector,
    brain_nodes,
    build_library,
)
from .report import write_csv

__all__ = ["DYNAMIC_METHODS", "DYNAMIC_METRICS", "DynamicEvalConfig", "DynamicEvalResult",
           "dynamic_markdown",
           "evaluate_dynamic", "region_metrics", "top1_precision_bound",
           "write_dynamic_report"]

DYNAMIC_METHODS = (*INVERSE_METHODS, "piunet", "temporal")
"""Every method rtsource has."""
DYNAMIC_METRICS = ("precision", "recall", "le_mm", "corr")
#: DeepSIF's rule: a region is active when above Otsu's threshold for more than 7 samples.
ACTIVE_MIN_SAMPLES = 7
_LABELS = {"precision": "precision", "recall": "recall", "le_mm": "LE (mm)", "corr": "|r|"}


@dataclass(frozen=True)
class DynamicEvalConfig:
    """Settings of the dynamic sweep.

    headmodel : held-out head model and montage that make the EEG.
    inverse_from : ``"eval"`` (kernels from ``headmodel``) or ``"template"`` (from ``template``).
    template : head model of the kernels when ``inverse_from = "template"``.
    regimes : regimes to evaluate.
    snr_db : sensor SNRs (dB).
    n_windows : windows per (regime, SNR).
    window_s : window length (s).
    sfreq : rate of the libraries and windows (Hz; divides 2000).
    library_runs, library_s : library size per regime (runs × seconds).
    source_snr_db : the focus' SNR (dB, uniform range): its power over the background's, in
        region activity (``snr_at = "source"``) or in the EEG (``"scalp"``; see
        :class:`~rtsource.simulate.dynamics.DynamicComposer`).
    snr_at : ``"source"`` or ``"scalp"``.
    spread_mm : half-amplitude distance of the focus spread (mm), uniform range.
    noise : sensor noise kind (``white``, ``correlated``, ``real``).
    lambda2 : λ² of every kernel.
    seed : seed of the libraries and windows.
    piunet_every : 3D-PIUNet refines every k-th sample of a window (its cost); the linear
        methods are scored on the same samples.
    backend, precision : how the network runs (see :func:`rtsource.engines.make_engine`).
    lead_in_s : seconds of EEG before each scored window (composed with it, the event at 40 %
        of the scored part): the temporal network runs over them first, as it has the
        stream's past when it runs live; every method is scored on the same window_s
        seconds. 0: windows start cold.
    """

    headmodel: HeadModelConfig = HeadModelConfig(montage="GSN-HydroCel-129", conductor="sphere",
                                                 conductivity=(0.332, 0.0113, 0.332))
    inverse_from: Literal["eval", "template"] = "eval"
    template: HeadModelConfig = HeadModelConfig(conductor="bem",
                                                conductivity=(0.3, 0.006, 0.3), bem_ico=4)
    regimes: tuple[str, ...] = ("spontaneous", "evoked", "interictal", "ictal")
    snr_db: tuple[float, ...] = (5.0, 10.0, 20.0)
    n_windows: int = 20
    window_s: float = 0.5
    sfreq: float = 250.0
    library_runs: int = 6
    library_s: float = 20.0
    source_snr_db: tuple[float, float] = (10.0, 20.0)
    snr_at: str = "source"
    spread_mm: tuple[float, float] = (0.0, 20.0)
    noise: str = "white"
    lambda2: float = 1.0 / 9.0
    seed: int = 2024
    piunet_every: int = 1
    backend: str = "eager"
    precision: str = "fp32"
    lead_in_s: float = 0.5

    @property
    def inverse_headmodel(self) -> HeadModelConfig:
        """The head model the kernels come from (``inverse_from``), as in
        :attr:`rtsource.evaluate.sweep.EvalConfig.inverse_headmodel`."""
        return self.headmodel if self.inverse_from == "eval" else self.template

    def __post_init__(self) -> None:
        if self.lead_in_s < 0:
            raise ValueError(f"lead_in_s = {self.lead_in_s} must be >= 0.")
        for r in self.regimes:
            check_value(r, REGIMES, "regime")
        check_value(self.noise, NOISE_KINDS, "noise")
        check_value(self.snr_at, ("source", "scalp"), "snr_at")
        check_range("The focus SNR (--focus-snr LO HI; source_snr_db in Python)",
                    tuple(self.source_snr_db), low=-60.0, high=60.0, unit="dB",
                    example="--focus-snr 10 20 (--focus-snr-at source) or --focus-snr -5 5 "
                    "(--focus-snr-at scalp)")
        if self.n_windows < 1 or self.piunet_every < 1:
            raise ValueError(f"n_windows = {self.n_windows} and piunet_every = "
                             f"{self.piunet_every} must be at least 1.")


@dataclass
class DynamicEvalResult:
    """rows: one dict per (regime, snr, window, method, class); summary: means per
    (regime, snr, class, method); meta: provenance."""

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


def _otsu(values: np.ndarray) -> float:
    filters = optional_import("skimage.filters", "train", "Otsu's threshold (dynamic evaluation)")
    return float(filters.threshold_otsu(values))


def region_metrics(est: np.ndarray, true: np.ndarray, truth: np.ndarray, kinds: np.ndarray,
                   centroids_mm: np.ndarray, min_samples: int = 7) -> dict[str, dict[str, float]]:
    """DeepSIF's region metrics of one window, per region class.

    Parameters
    ----------
    est : array, shape (n_regions, n_times)
        Estimated region time courses (any unit).
    true : array, shape (n_regions, n_times)
        True time courses (used on ``truth`` rows).
    truth : bool array, shape (n_regions,)
        True regions.
    kinds : array of str, shape (n_regions,)
        ``"cortical"`` / ``"thalamic"`` (other kinds are ignored).
    centroids_mm : array, shape (n_regions, 3)
    min_samples : int
        A region is active when above the Otsu threshold for more than this many samples.

    Returns
    -------
    dict
        ``{"cortical": {...}, "thalamic": {...}}`` with precision, recall, le_mm, corr,
        n_active, n_true (NaN where undefined) and top1 (1.0 when the class's region of
        most power over the window, mean of ``est``², is a true one, else 0.0, NaN when
        the class has no power: a ranking that no threshold enters); a class with no true
        region is absent.
    """
    a = np.abs(est)
    thr = _otsu(a.ravel()) if np.ptp(a) > 0 else np.inf
    active = (a > thr).sum(1) > min_samples
    d = np.sqrt(((centroids_mm[:, None] - centroids_mm[None]) ** 2).sum(-1))
    power = (est ** 2).mean(1)
    out = {}
    for cls in ("cortical", "thalamic"):
        m = kinds == cls
        t, e = truth & m, active & m
        if not t.any():
            continue
        hit = (t & e).sum()
        prec = hit / e.sum() if e.any() else math.nan
        le = float(d[np.ix_(e, truth)].min(1).mean()) if e.any() else math.nan
        cors = []
        for i in np.flatnonzero(t):
            x, y = est[i] - est[i].mean(), true[i] - true[i].mean()
            den = np.sqrt((x @ x) * (y @ y))
            cors.append(abs(float(x @ y / den)) if den > 0 else 0.0)
        out[cls] = {"precision": float(prec), "recall": float(hit / t.sum()), "le_mm": le,
                    "corr": float(np.mean(cors)), "n_active": int(e.sum()),
                    "n_true": int(t.sum()),
                    "top1": (float(truth[np.flatnonzero(m)[np.argmax(power[m])]])
                             if power[m].max() > 0 else math.nan)}
    return out


def top1_precision_bound(n_windows: int, n_top1: int, recall: float = 0.7) -> float:
    """The highest mean precision an active-region rule that follows a power ranking can
    reach at a recall of at least ``recall``, over windows with one true region of a class.

    A window whose true region is not ranked first can only be found by flagging at least
    two regions (precision at most 1/2), and windows where nothing is flagged have no
    precision (the evaluation leaves them out). With ``h`` windows found (``h`` ≥ ``recall``
    × ``n_windows``), ``t`` ≤ ``n_top1`` of them ranked first, the mean precision is at most
    (t + (h − t) / 2) / h, largest for the smallest ``h``.

    Parameters
    ----------
    n_windows : int
        Windows with exactly one true region of the class (≥ 1).
    n_top1 : int
        Of those, the windows whose most powerful region of the class is the true one
        (``top1`` of :func:`region_metrics`).
    recall : float
        Recall to keep, in (0, 1].

    Returns
    -------
    float
        The bound, in [0.5, 1].

    Raises
    ------
    ValueError
        ``n_windows`` < 1, ``n_top1`` outside [0, n_windows], or ``recall`` outside (0, 1].
    """
    if n_windows < 1 or not 0 <= n_top1 <= n_windows or not 0 < recall <= 1:
        raise ValueError(f"top1_precision_bound(n_windows={n_windows}, n_top1={n_top1}, "
                         f"recall={recall}): need n_windows >= 1, 0 <= n_top1 <= n_windows "
                         "and 0 < recall <= 1.")
    h = max(math.ceil(recall * n_windows - 1e-9), 1)
    t = min(n_top1, h)
    return (t + 0.5 * (h - t)) / h


def evaluate_dynamic(cfg: DynamicEvalConfig | None = None, *,
                     methods: tuple[str, ...] = DYNAMIC_METHODS,
                     checkpoint: str | os.PathLike | None = None,
                     temporal_checkpoint: str | os.PathLike = "default",
                     progress: bool = True) -> DynamicEvalResult:
    """Run the dynamic sweep (see the module docstring).

    Parameters
    ----------
    cfg : DynamicEvalConfig
    methods : subset of :data:`DYNAMIC_METHODS`.
    checkpoint : 3D-PIUNet checkpoint (default: the shipped weights).
    temporal_checkpoint : the temporal network's (``"default"``: the shipped weights).
    progress : progress bars.

    Returns
    -------
    DynamicEvalResult

    Raises
    ------
    ValueError
        For an unknown method (listing the valid ones).
    """
    cfg = cfg or DynamicEvalConfig()
    for m in methods:
        check_value(m, DYNAMIC_METHODS, "method")
    t_start, host = time.perf_counter(), host_provenance()
    nodes = brain_nodes()
    inv_hm = cfg.inverse_headmodel
    fwd_entry, hm = load_entry(cfg.headmodel, None, InverseConfig(method="eloreta",
                               lambda2=cfg.lambda2), progress=progress)
    kernels: dict[str, np.ndarray] = {}
    inv_model = None
    for method in sorted({m for m in methods if m not in ("piunet", "temporal")} | {"eloreta"}):
        entry, inv_model = load_entry(inv_hm, cfg.headmodel.montage,
                                      InverseConfig(method=method, lambda2=cfg.lambda2))
        if entry.ch_names != fwd_entry.ch_names:
            raise ValueError("Evaluation and inverse head models have other channels.")
        kernels[method] = entry.kernel.numpy().astype(np.float64)  # (3 n_src, n_ch)
    assert inv_model is not None
    rmap = region_map(inv_model, "bn246")
    reducer = RegionReducer(rmap, mode="signed")
    rows_idx = np.array([rmap.names.index(n) for n in nodes.names])
    projector = RegionProjector(hm, nodes)
    net = mapper = None
    net_info: dict[str, Any] = {}
    if "piunet" in methods:
        from ..engines import make_engine
        from ..models.checkpoint import load_checkpoint
        from ..models.volume import VolumeMapper
        from ..train import default_checkpoint_path

        ck = load_checkpoint(checkpoint or default_checkpoint_path())
        net = ck.model.eval()
        net_info = {"path": str(ck.path), "sha256": ck.sha256}
        if (cfg.backend, cfg.precision) != ("eager", "fp32"):
            net = make_engine(net, cfg.backend, batch_sizes=(32,), precision=cfg.precision)
        mapper = VolumeMapper(hm.vox)
    stage = None
    if "temporal" in methods:
        from ..online.temporal import TemporalStage

        stage = TemporalStage(inv_model, kernels["eloreta"], cfg.sfreq,
                              str(temporal_checkpoint), precision=cfg.precision
                              if cfg.precision in ("fp32", "bf16") else "auto",
                              backend="torch")  # the reference path
        if stage.decimate != 1:
            raise ValueError(f"The temporal network runs at {stage.model_sfreq:g} Hz; run the "
                             f"dynamic evaluation at that rate (sfreq = {cfg.sfreq:g}).")
        if stage.node_names != list(nodes.names):
            raise ValueError("The temporal network's nodes differ from the brain model's.")
        prov = stage.provenance()
        net_info["temporal"] = {"path": str(stage.checkpoint.path),
                                "sha256": stage.checkpoint.sha256,
                                "backend": prov["temporal_backend"],
                                "precision": prov["temporal_precision"]}

    background = build_library(LibraryConfig(regime="spontaneous", n_runs=cfg.library_runs,
                                             duration_s=cfg.library_s, sfreq=cfg.sfreq,
                                             seed=cfg.seed), progress=progress)
    rows: list[dict[str, Any]] = []
    # DeepSIF: active when above the threshold for more than 7 samples (at least 8, 32 ms at
    # 250 Hz); scored on every k-th sample, the same duration is ceil(8 / k) samples
    min_samples = math.ceil((ACTIVE_MIN_SAMPLES + 1) / cfg.piunet_every) - 1
    rates = {"spontaneous": background.rate}
    total = len(cfg.regimes) * len(cfg.snr_db) * cfg.n_windows
    bar = tqdm(total=total, desc="Dynamic evaluation", unit="window", disable=not progress)
    for regime in cfg.regimes:
        lib = background if regime == "spontaneous" else build_library(
            LibraryConfig(regime=regime, n_runs=cfg.library_runs, duration_s=cfg.library_s,
                          sfreq=cfg.sfreq, seed=cfg.seed), progress=progress)
        rates[regime] = lib.rate
        total = cfg.window_s + cfg.lead_in_s
        comp = DynamicComposer(lib, background, projector, window_s=total,
                               spread_mm=cfg.spread_mm, source_snr_db=cfg.source_snr_db,
                               noise=cfg.noise, snr_at=cfg.snr_at,
                               event_frac=(cfg.lead_in_s + 0.4 * cfg.window_s) / total)
        n_lead = round(cfg.lead_in_s * cfg.sfreq)
        for snr in cfg.snr_db:
            rng = np.random.default_rng(int(stable_hash("dyn-eval", cfg.seed, regime, snr,
                                                        length=12), 16))
            for w in range(cfg.n_windows):
                s = comp.sample(rng, snr)
                full_eeg = s.eeg
                s.eeg, s.target = s.eeg[:, n_lead:], s.target[:, n_lead:]
                keep = np.arange(0, s.eeg.shape[1], cfg.piunet_every)
                eeg = s.eeg[:, keep]
                est_src = {m: (kernels[m] @ eeg).T.reshape(len(keep), -1, 3)
                           for m in methods if m not in ("piunet", "temporal")}
                if "piunet" in methods:
                    from .sweep import _predict

                    z = (kernels["eloreta"] @ eeg).T.reshape(len(keep), -1, 3)
                    est_src["piunet"] = _predict(net, mapper, z.astype(np.float32), 32)
                if stage is not None:
                    stage.reset()
                    node_est = stage(stage.condition(full_eeg.T))[n_lead:][keep].T.astype(
                        np.float64)
                for m in methods:
                    if m == "temporal":
                        est = node_est
                    else:
                        reg = reducer(np.ascontiguousarray(est_src[m], np.float32))  # (T, n_reg)
                        est = reg[:, rows_idx].T.astype(np.float64)
                    res = region_metrics(est, s.target[:, keep], s.truth, nodes.kinds,
                                         nodes.centroids_mni, min_samples=min_samples)
                    for cls, vals in res.items():
                        rows.append({"regime": regime, "snr_db": snr, "window": w,
                                     "method": m, "regions": cls,
                                     "focus": nodes.names[s.focus], **vals})
                bar.update()
    bar.close()
    summary = []
    for regime in cfg.regimes:
        for snr in cfg.snr_db:
            for cls in ("cortical", "thalamic"):
                for m in methods:
                    sel = [r for r in rows if r["regime"] == regime and r["snr_db"] == snr
                           and r["regions"] == cls and r["method"] == m]
                    if not sel:
                        continue
                    s = {"regime": regime, "snr_db": snr, "regions": cls, "method": m,
                         "n_windows": len(sel)}
                    for k in DYNAMIC_METRICS:
                        v = np.array([r[k] for r in sel], float)
                        v = v[np.isfinite(v)]
                        s[k] = float(v.mean()) if v.size else math.nan
                        s[f"{k}_sd"] = float(v.std()) if v.size else math.nan
                    summary.append(s)
    meta = {"config": dataclasses.asdict(cfg), "eval_headmodel_hash": hm.hash,
            "active_rule": f"above Otsu's threshold for more than {min_samples} of the scored "
                           f"samples (every {cfg.piunet_every}: the duration of DeepSIF's "
                           f"> {ACTIVE_MIN_SAMPLES} samples)",
            "inverse_headmodel": dataclasses.asdict(inv_hm), "methods": list(methods),
            "network": net_info, "library_rate_sim_s_per_wall_s": rates,
            "cortex_normal_fraction": projector.normal_fraction,
            "connectome": "BN246 EDR + named thalamo-cortical (rtsource.simulate.dynamics)",
            "host": host, "wall_s": round(time.perf_counter() - t_start, 1)}
    return DynamicEvalResult(rows=rows, summary=summary, meta=meta)


def _fmt(v: float, k: str) -> str:
    if not math.isfinite(v):
        return "–"
    return f"{v:.1f}" if k == "le_mm" else f"{v:.2f}"


def dynamic_markdown(result: DynamicEvalResult) -> str:
    """Markdown table: one row per (regime, SNR, region class, method), metric means."""
    head = ["regime", "SNR (dB)", "regions", "method", "n"] + [_LABELS[k] for k in DYNAMIC_METRICS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in result.summary:
        cells = [s["regime"], f"{s['snr_db']:g}", s["regions"], s["method"], str(s["n_windows"])]
        cells += [_fmt(s[k], k) for k in DYNAMIC_METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _every(k: int) -> str:
    """'every sample', 'every 2nd sample', 'every 4th sample' …"""
    if k == 1:
        return "every sample"
    suffix = {1: "st", 2: "nd", 3: "rd"}.get(k % 10 if k % 100 not in (11, 12, 13) else 0, "th")
    return f"every {k}{suffix} sample"


def write_dynamic_report(result: DynamicEvalResult, out_dir: str | os.PathLike,
                         command: str | None = None) -> dict[str, Path]:
    """Write ``dynamic_windows.csv``, ``dynamic_summary.csv``, ``dynamic_report.md``,
    ``dynamic_meta.json`` and ``dynamic_<regime>.png`` (recall and |r| against SNR)."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    for name, rows in (("dynamic_windows", result.rows), ("dynamic_summary", result.summary)):
        files[name] = write_csv(out / f"{name}.csv", rows)
    meta = dict(result.meta)
    if command:
        meta["command"] = command
    (out / "dynamic_meta.json").write_text(json.dumps(meta, indent=2, default=str))
    files["meta"] = out / "dynamic_meta.json"
    methods = list(dict.fromkeys(s["method"] for s in result.summary))
    for regime in dict.fromkeys(s["regime"] for s in result.summary):
        fig, axes = plt.subplots(1, 4, figsize=(16, 3.4))
        for ax, k in zip(axes, DYNAMIC_METRICS, strict=True):
            for m in methods:
                for cls, ls in (("cortical", "-"), ("thalamic", "--")):
                    rs = [s for s in result.summary if s["regime"] == regime
                          and s["method"] == m and s["regions"] == cls]
                    if rs:
                        ax.plot([r["snr_db"] for r in rs], [r[k] for r in rs], "o" + ls,
                                label=f"{m} ({cls[:4]}.)", color=f"C{methods.index(m)}")
            ax.set_xlabel("sensor SNR (dB)")
            ax.set_title(f"{regime}: {_LABELS[k]}")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = out / f"dynamic_{regime}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        files[path.stem] = path
    c = result.meta.get("config", {})
    h = c.get("headmodel", {})
    where = "in EEG power" if c.get("snr_at") == "scalp" else "in region activity"
    text = ["# rtsource dynamic evaluation (brain model, region time courses)\n",
            f"Held-out data: {h.get('conductor')} head model, conductivities "
            f"{h.get('conductivity')} S/m, montage {h.get('montage')}; kernels from the "
            f"{c.get('inverse_from')} head model; {c.get('noise')} sensor noise; windows of "
            f"{c.get('window_s')} s at {c.get('sfreq')} Hz; focus SNR {c.get('source_snr_db')} "
            f"dB (measured {where} over the background's); spread {c.get('spread_mm')} mm; "
            f"each window follows {c.get('lead_in_s', 0)} s of "
            "lead-in that only the temporal network uses (it runs live with the stream's past). "
            "Means over windows; LE = localisation error. "
            f"Metrics on {_every(c.get('piunet_every', 1))}, active = "
            f"{result.meta.get('active_rule', 'see dynamic_meta.json')}: compare only tables "
            "scored on the same samples (`--piunet-every`).\n"]
    if command:
        text.append(f"Command: `{command}`\n")
    text.append(dynamic_markdown(result))
    (out / "dynamic_report.md").write_text("\n".join(text))
    files["report"] = out / "dynamic_report.md"
    return files
