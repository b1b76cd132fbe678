"""Pool seizure-onset-zone evaluations and compare two methods recording by recording.

Reads the ``soz_recordings.csv`` of each folder given (``bench/eval_soz.py`` writes them), keeps
one focus kind, and counts for each of two methods the recordings whose focus is in the top 3,
ranked first, or has a top-3 region within 15 mm. Each count comes with the exact McNemar test
(a two-sided binomial test on the recordings where only one of the two methods succeeds,
``scipy.stats.binomtest``): whether the difference could be chance.

    python bench/soz_pooled.py evaluations/soz evaluations/soz-2026 evaluations/soz-2027 \\
        --json soz-thalamic-pooled.json

The figures in the temporal model card's "Targets" table come from this command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folders", nargs="+", help="folders holding soz_recordings.csv")
    p.add_argument("--focus", choices=("thalamic", "cortical"), default="thalamic")
    p.add_argument("--methods", default="temporal,eloreta", help="two methods, A,B")
    p.add_argument("--within-mm", type=float, default=15.0,
                   help="a top-3 region this close to the focus counts as near (default 15)")
    p.add_argument("--json", help="also write the result to bench/results/<name>")
    args = p.parse_args(argv)
    import pandas as pd
    from scipy.stats import binomtest

    a, b = args.methods.split(",")
    frames = []
    for folder in args.folders:
        path = Path(folder) / "soz_recordings.csv"
        if not path.is_file():
            p.error(f"{path} not found: give folders written by bench/eval_soz.py")
        frames.append(pd.read_csv(path).assign(folder=folder))
    d = pd.concat(frames)
    d = d[d.focus_kind == args.focus]
    missing = {a, b} - set(d.method)
    if missing:
        p.error(f"method(s) {sorted(missing)} not found; the folders hold "
                f"{sorted(set(d.method))}")
    d = d.assign(top1=d["rank"] == 1, near=d.topk_nearest_mm <= args.within_mm)
    key = ["folder", "regime", "run"]
    out = {"folders": args.folders, "focus": args.focus, "methods": [a, b], "counts": {}}
    for metric in ("hit", "top1", "near"):
        t = d.pivot_table(index=key, columns="method", values=metric, aggfunc="first")
        t = t[[a, b]].dropna().astype(bool)
        only_a, only_b = int((t[a] & ~t[b]).sum()), int((~t[a] & t[b]).sum())
        pval = binomtest(only_a, only_a + only_b).pvalue if only_a + only_b else 1.0
        out["counts"][metric] = {"n": len(t), a: int(t[a].sum()), b: int(t[b].sum()),
                                 f"only_{a}": only_a, f"only_{b}": only_b,
                                 "mcnemar_exact_p": round(float(pval), 4)}
        print(f"{metric:5s} n={len(t)}  {a} {int(t[a].sum())}  {b} {int(t[b].sum())}  "
              f"(only {a} {only_a}, only {b} {only_b}; exact McNemar p = {pval:.3f})")
    if args.json:
        print(f"Wrote {write(Path(args.json).name, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
