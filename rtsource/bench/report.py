"""What a run's results look like to a person: the latency histogram and timeline
(:func:`plot_results`) and the short text ``rtsource bench`` prints
(:func:`summary_lines`)."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .stats import STAGES

__all__ = ["plot_results", "summary_lines"]


def plot_results(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Latency histogram and latency timeline (rtsource, and the baseline if run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    pipe = results.get("pipeline") or {}
    if "_series" in pipe:
        series.append(("rtsource", pipe["_series"], "tab:blue"))
    base = results.get("baseline") or {}
    if "_series" in base:
        series.append(("MNE baseline", base["_series"], "tab:red"))
    if not series:
        raise ValueError("These results hold no latency series to plot (refine-only run?).")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    all_lat = np.concatenate([np.asarray(s["latency_ms"]) for _, s, _ in series])
    all_lat = all_lat[np.isfinite(all_lat) & (all_lat > 0)]
    log = len(all_lat) and all_lat.max() / max(all_lat.min(), 1e-3) > 100
    bins = (np.geomspace(max(all_lat.min(), 1e-3), all_lat.max(), 80) if log
            else np.linspace(0, all_lat.max() if len(all_lat) else 1, 80))
    for label, s, color in series:
        lat = np.asarray(s["latency_ms"])
        lat = lat[np.isfinite(lat)]
        if not len(lat):
            continue
        p50, p99 = np.percentile(lat, [50, 99])
        ax1.hist(lat, bins=bins, color=color, alpha=0.6,
                 label=f"{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        ax2.plot(np.asarray(s["t"]), lat, ".", ms=1.5, color=color, label=label)
    if log:
        ax1.set_xscale("log")
        ax2.set_yscale("log")
    ax1.set_xlabel("latency: EEG push -> region sample arrival (ms)")
    ax1.set_ylabel("samples")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("capture time since the start (s)")
    ax2.set_ylabel("latency (ms)")
    ax2.legend(fontsize=8, markerscale=6)
    cfg = results.get("config", {})
    load = (results.get("machine") or {}).get("load_average")
    fig.suptitle(f"rtsource bench: {cfg.get('method')} {cfg.get('montage')} {cfg.get('rate'):g} Hz, "
                 f"{pipe.get('backend', '')}, load average {load}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(stats: dict[str, Any] | None, keys: Sequence[str] = ("p50", "p95", "p99", "max")
         ) -> str:
    if not stats or not stats.get("n"):
        return "-"
    return ", ".join(f"{k} {stats[k]:.2f}" for k in keys) + " ms"


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A short human-readable summary of results."""
    lines = []
    m = results.get("machine", {})
    lines.append(f"Machine: {m.get('cpu')}, {m.get('cpu_count')} cores, load average "
                 f"{m.get('load_average')} -> {m.get('load_average_end')}"
                 + (f", GPU {m['gpu']['name']}" if m.get("gpu") else ""))
    ref = results.get("refine") or (results.get("pipeline") or {}).get("refine")
    if "latency_ms" in results:
        p = results["pipeline"]
        r = p["rates_hz"]
        lines.append(
            f"rtsource ({results['config']['method']}/{p['backend']}, {p['n_channels']} ch, "
            f"{r['input']:.0f} Hz in, {r['output']:.1f} Hz out (declared "
            f"{r['output_declared']:g})): latency {_fmt(results['latency_ms'])}")
        lines.append(f"  samples in {results['samples_in']}, out {results['samples_out']}, "
                     f"dropped {results['dropped']}, timestamp error max "
                     f"{p['timestamp_error_max_us'] or 0:.0f} us")
        st = results["stages_ms"]
        if st:
            lines.append("  stages median/p99 (ms): " + ", ".join(
                f"{k} {st[k]['median']:.3f}/{st[k]['p99']:.3f}" for k in STAGES if k in st))
        c = p["cpu"]
        lines.append(f"  CPU: {c['cores_used']:.2f} cores ({c['fraction_of_machine']:.0%} of "
                     f"the machine) over {c['wall_s']:.1f} s"
                     + (f"; GPU {p['gpu']}" if p.get("gpu") else ""))
    if ref:
        b1 = ref.get("batch1_ms", {})
        tp = ref["throughput"]
        lines.append(f"Refinement ({ref['backend']}): batch 1 median {b1.get('median', math.nan):.2f} "
                     f"ms, p99 {b1.get('p99', math.nan):.2f} ms per volume; best throughput "
                     f"{tp['volumes_per_s']:.1f} volumes/s at batch {tp['batch']} "
                     f"({tp['per_volume_ms']:.2f} ms per volume)")
    base = results.get("baseline")
    if base:
        lines.append(f"MNE baseline ({base['duration_s']:g} s): latency {_fmt(base['latency_ms'])}; "
                     f"compute per hop median {base['compute_per_hop_ms']['p50']:.1f} ms "
                     f"({'keeps up' if base['keeps_up'] else 'falls behind'})")
        cmp_ = results.get("comparison")
        if cmp_:
            lines.append(
                f"  baseline / rtsource: latency p50 x{cmp_['baseline_over_rtsource_latency_p50']:.0f}"
                f", p99 x{cmp_['baseline_over_rtsource_latency_p99']:.0f}, compute per hop x"
                f"{cmp_['baseline_over_rtsource_compute_per_hop_median']:.1f}")
    return lines
