"""How often a method's most powerful region of a class is a true one, window by window.

Reads a dynamic evaluation's ``dynamic_windows.csv`` (``rtsource evaluate --dynamic``; its
``top1`` column: 1 when the region of the class with the most power over the window carries the
regime's activity) and prints, per regime, region class and method, the windows counted, the
top-1 count, the mean precision and recall of the evaluation's Otsu rule, and an upper bound on
the precision any active-region rule that follows this power ranking can reach while keeping
recall at or above a target (default 0.7) in windows with one true region: a window whose true
region is not ranked first can only be found by flagging at least two regions (precision at
most 1/2), so with ``h`` windows found (``h`` ≥ target × windows) and ``t`` of them ranked
first, precision ≤ (t + (h − t)/2)/h, largest for the smallest ``h``.

    python bench/region_top1.py evaluations/temporal-top1/source --json region-top1-source.json

The temporal model card's "What limits the thalamic rows" paragraph comes from this command.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def precision_bound(n: int, top1: int, recall: float) -> float:
    """Largest mean precision with recall ≥ ``recall`` over ``n`` one-true-region windows
    of which ``top1`` rank the true region first (see the module docstring)."""
    h = max(math.ceil(recall * n - 1e-9), 1)
    t = min(top1, h)
    return (t + 0.5 * (h - t)) / h


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="a folder holding dynamic_windows.csv")
    p.add_argument("--recall", type=float, default=0.7, help="recall target (default 0.7)")
    p.add_argument("--json", help="also write the result to bench/results/<name>")
    args = p.parse_args(argv)
    import pandas as pd

    path = Path(args.folder) / "dynamic_windows.csv"
    if not path.exists():
        p.error(f"{path} does not exist: run `rtsource evaluate --dynamic ... --out "
                f"{args.folder}` first")
    df = pd.read_csv(path)
    if "top1" not in df:
        p.error(f"{path} has no top1 column: it predates it; run the evaluation again")
    rows = []
    for (regime, snr, cls, method), g in df.groupby(["regime", "snr_db", "regions", "method"],
                                                    sort=False):
        one = g[g["n_true"] == 1]
        rows.append({"regime": regime, "snr_db": float(snr), "regions": cls, "method": method,
                     "windows": len(g), "top1": int(g["top1"].sum()),
                     "precision": float(g["precision"].mean()),
                     "recall": float(g["recall"].mean()),
                     "one_true_windows": len(one),
                     "precision_bound": (precision_bound(len(one), int(one["top1"].sum()),
                                                         args.recall) if len(one) else None)})
    print(f"{'regime':<11}{'SNR':>5} {'regions':<9}{'method':<9}{'top-1':>9}{'P':>6}{'R':>6}"
          f"{'P bound':>9}")
    for r in rows:
        bound = "–" if r["precision_bound"] is None else f"{r['precision_bound']:.2f}"
        print(f"{r['regime']:<11}{r['snr_db']:>5g} {r['regions']:<9}{r['method']:<9}"
              f"{r['top1']:>4}/{r['windows']:<4}{r['precision']:>6.2f}{r['recall']:>6.2f}"
              f"{bound:>9}")
    if args.json:
        out = ROOT / "bench" / "results" / args.json
        out.write_text(json.dumps({"folder": args.folder, "recall_target": args.recall,
                                   "rows": rows}, indent=2) + "\n")
        print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
