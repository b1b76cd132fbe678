"""How often a method's most powerful region of a class is a true one, window by window.

Reads a dynamic evaluation's ``dynamic_windows.csv`` (``rtsource evaluate --dynamic``; its
``top1`` column: 1 when the region of the class with the most power over the window carries the
regime's activity) and prints, per regime, region class and method, the windows counted, the
top-1 count, the mean precision and recall of the evaluation's Otsu rule, and, over the windows
with one true region of the class, an upper bound on the precision any active-region rule that
flags regions in this power ranking's order can reach while keeping recall at or above a target
(default 0.7): :func:`rtsource.evaluate.dynamic.top1_precision_bound`. The evaluation's own
rule (samples above one Otsu threshold) need not follow that order, so the bound describes the
ranking, not every possible rule.

    python bench/region_top1.py evaluations/temporal-top1/source --json region-top1-source.json

The temporal model card's "What limits the thalamic rows" paragraph comes from this command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", help="a folder holding dynamic_windows.csv")
    p.add_argument("--recall", type=float, default=0.7, help="recall target (default 0.7)")
    p.add_argument("--json", help="also write the result to bench/results/<name>")
    args = p.parse_args(argv)
    import pandas as pd

    from rtsource.evaluate.dynamic import top1_precision_bound

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
                     "one_true_top1": int(one["top1"].sum()),
                     "precision_bound": (top1_precision_bound(len(one), int(one["top1"].sum()),
                                                              args.recall) if len(one) else None)})
    print(f"{'regime':<11}{'SNR':>5} {'regions':<9}{'method':<9}{'top-1':>9}{'P':>6}{'R':>6}"
          f"{'one true: top-1':>17}{'P bound':>9}")
    for r in rows:
        bound = "–" if r["precision_bound"] is None else f"{r['precision_bound']:.2f}"
        one = f"{r['one_true_top1']}/{r['one_true_windows']}"
        print(f"{r['regime']:<11}{r['snr_db']:>5g} {r['regions']:<9}{r['method']:<9}"
              f"{r['top1']:>4}/{r['windows']:<4}{r['precision']:>6.2f}{r['recall']:>6.2f}"
              f"{one:>17}{bound:>9}")
    if args.json:
        out = write(Path(args.json).name,
                    {"folder": args.folder, "recall_target": args.recall, "rows": rows})
        print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
