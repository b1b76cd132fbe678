"""Reports of an evaluation: markdown tables, CSV files, ``meta.json`` and sweep plots."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from .metrics import LOWER_IS_BETTER, METRIC_LABELS, METRICS
from .sweep import BASELINES, EvalResult

__all__ = ["markdown_table", "peak_targets", "targets_markdown", "write_report"]


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


def _median(result: EvalResult, method: str, metric: str, n_sources: int, snr_db: float
            ) -> float | None:
    for s in result.summary:
        if (s["method"] == method and int(s["n_sources"]) == n_sources
                and float(s["snr_db"]) == snr_db and s["extent_mm"] == "5-40"):
            return float(s[metric])
    return None


def peak_targets(result: EvalResult, network: str) -> list[dict]:
    """Whether ``network`` beats the linear inverses where a user looks (medians).

    The rows: one source at 10 and 20 dB, NEMD ≤ 0.5 × eLORETA's, MLE ≤ eLORETA's and AUC ≥
    eLORETA's; three sources at 10 dB, NEMD and AUC better than eLORETA's; ten sources at
    10 dB, NEMD no worse than eLORETA's; one source at 0 and 5 dB, NEMD and MLE better than
    every linear inverse evaluated. Rows whose conditions the evaluation did not run (the
    ``snr_db`` and ``n_sources`` sweeps, extent σ 5–40 mm, hold them all) or whose references
    it did not evaluate (eLORETA; at least one linear inverse) are left out.

    Parameters
    ----------
    result : an evaluation that includes ``network`` and ``eloreta``.
    network : method name of the network.

    Returns
    -------
    list of dicts with ``target``, ``network``, ``reference`` (text) and ``reached`` (bool).
    """
    linear = [m for m in BASELINES if any(s["method"] == m for s in result.summary)]
    rows: list[dict] = []

    def add(target: str, pairs: list[tuple[str, int, float, str]]) -> None:
        net_txt, ref_txt, ok = [], [], True
        for metric, n, snr, rule in pairs:
            v = _median(result, network, metric, n, snr)
            refs = {m: _median(result, m, metric, n, snr)
                    for m in (linear if rule == "all" else ["eloreta"])}
            if v is None or not refs or any(r is None for r in refs.values()):
                return
            label = METRIC_LABELS[metric]
            net_txt.append(f"{label} {_fmt(v, metric)}")
            if rule == "all":
                best_m = min(refs, key=refs.get) if LOWER_IS_BETTER[metric] else max(refs,
                                                                                    key=refs.get)
                ref_txt.append(f"{label} {_fmt(refs[best_m], metric)} ({best_m})")
                ok &= v < refs[best_m] if LOWER_IS_BETTER[metric] else v > refs[best_m]
                continue
            r = refs["eloreta"]
            bound = {"half": 0.5 * r, "le": r, "ge": r, "lt": r, "gt": r}[rule]
            ref_txt.append(f"{label} {_fmt(r, metric)}" + (f" (½: {_fmt(bound, metric)})"
                                                           if rule == "half" else ""))
            ok &= {"half": v <= bound, "le": v <= bound, "ge": v >= bound, "lt": v < bound,
                   "gt": v > bound}[rule]
        rows.append({"target": target, "network": ", ".join(net_txt),
                     "reference": ", ".join(ref_txt), "reached": bool(ok)})

    for snr in (10.0, 20.0):
        add(f"1 source, {snr:g} dB: NEMD ≤ 0.5 × eLORETA, MLE ≤ eLORETA, AUC ≥ eLORETA",
            [("nemd", 1, snr, "half"), ("mle_mm", 1, snr, "le"), ("auc", 1, snr, "ge")])
    add("3 sources, 10 dB: NEMD and AUC better than eLORETA",
        [("nemd", 3, 10.0, "lt"), ("auc", 3, 10.0, "gt")])
    add("10 sources, 10 dB: NEMD no worse than eLORETA", [("nemd", 10, 10.0, "le")])
    for snr in (0.0, 5.0):
        add(f"1 source, {snr:g} dB: NEMD and MLE better than every linear inverse",
            [("nemd", 1, snr, "all"), ("mle_mm", 1, snr, "all")])
    return rows


def targets_markdown(result: EvalResult, network: str) -> str:
    """:func:`peak_targets` as a markdown table ('' when no target's conditions ran)."""
    rows = peak_targets(result, network)
    if not rows:
        return ""
    linear = [m for m in BASELINES if any(s["method"] == m for s in result.summary)]
    n = result.meta.get("n_samples")
    lines = [f"**Targets for {network}** (medians of {n} samples per condition; eLORETA is the "
             f"reference unless named; linear inverses evaluated: {', '.join(linear)})\n",
             "| target | " + network + " | reference | reached |", "|---|---|---|---|"]
    lines += [f"| {r['target']} | {r['network']} | {r['reference']} | "
              f"{'yes' if r['reached'] else '**no**'} |" for r in rows]
    return "\n".join(lines) + "\n"


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
        files[name] = write_csv(out / f"{name}.csv", rows)
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
    host = result.meta.get("host")
    if host:
        load = (host.get("load_average") or ["?"])[0]
        text.append(f"Run on {host.get('cpu')} ({host.get('cpu_count')} cores, 1-min load "
                    f"{load} at the start) in {result.meta.get('wall_s')} s; networks on "
                    f"{result.meta.get('backend')} / {result.meta.get('precision')}, "
                    f"{result.meta.get('workers')} metric worker(s).\n")
    text.append(markdown_table(result))
    for net in [m for m in dict.fromkeys(x["method"] for x in result.summary)
                if m not in BASELINES]:
        if any(x["method"] == "eloreta" for x in result.summary):
            text.append(targets_markdown(result, net))
    text.append("NMSE and 1 − weighted cosine are in `summary.csv`; plots: "
                + ", ".join(f"`{p.name}`" for p in _plot(result, out)) + ".\n")
    md.write_text("\n".join(text))
    files["report"] = md
    for p in out.glob("sweep_*.png"):
        files[p.stem] = p
    return files


def write_csv(path: Path, rows: list[dict]) -> Path:
    """Write ``rows`` (dicts with the same keys, in column order) as a CSV file."""
    with open(path, "w", newline="") as fid:
        w = csv.DictWriter(fid, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return path
