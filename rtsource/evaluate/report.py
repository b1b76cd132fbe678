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

__all__ = ["markdown_table", "write_report"]


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
    text.append(markdown_table(result))
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
