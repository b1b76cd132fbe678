"""3D-PIUNet training throughput: the shipped run's settings against this machine's fast path.

Runs ``rtsource.train.train`` for a few steps in each variant, on the training data of
``configs/train-w8.toml`` (same montages, conductor models and batch size), and reports the
seconds per step (median and p99 over the timed steps, the first ``--warmup`` skipped) and
samples per second. The first variant is the baseline the shipped weights were trained with
(float32, one thread, simulation inside the training loop); all run in this one invocation,
so their ratios hold on a noisy machine.

    python bench/bench_train.py [--steps 14] [--warmup 3] [--widths 8,16]

Writes ``bench/results/train-throughput.json`` (CPU, load average, every variant).
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

from rtsource._util import cpu_features  # noqa: E402
from rtsource.train import load_train_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: (name, precision, channels_last, threads, workers)
VARIANTS = [
    ("baseline: fp32, 1 thread, simulation in the loop", "fp32", False, 1, 0),
    ("fp32, 2 threads, simulation in the loop", "fp32", False, 2, 0),
    ("bf16 + channels-last, 2 threads, simulation in the loop", "bf16", True, 2, 0),
    ("bf16 + channels-last, 2 threads, 1 simulation worker", "bf16", True, 2, 1),
    ("bf16 + channels-last, 1 thread, 1 simulation worker", "bf16", True, 1, 1),
]


def run(width: int, name: str, precision: str, cl: bool, threads: int, workers: int,
        steps: int, warmup: int, config: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_train_config(config, out_dir=tmp, max_steps=10_000, max_minutes=0,
                                log_steps=1, val_samples=0, checkpoint_minutes=1e6,
                                width=width, precision=precision, channels_last=cl,
                                threads=threads, workers=workers, init_from="")
        torch.set_num_threads(threads)
        res = train(cfg, progress=False, max_steps=steps + warmup)
    t = np.array([h["elapsed_s"] for h in res.history])
    per_step = np.diff(t)[warmup - 1:] if warmup else np.diff(np.r_[0.0, t])
    med = float(np.median(per_step))
    return {"variant": name, "width": width, "precision": precision, "channels_last": cl,
            "threads": threads, "workers": workers, "batch_size": cfg.batch_size,
            "steps_timed": int(per_step.size), "s_per_step_median": med,
            "s_per_step_p99": float(np.percentile(per_step, 99)),
            "samples_per_s": cfg.batch_size / med}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=14, help="timed steps per variant")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    ap.add_argument("--widths", default="8,16", help="widths; all variants run at the first")
    ap.add_argument("--config", default=str(REPO / "configs" / "train-w8.toml"))
    ap.add_argument("--out", default="train-throughput.json")
    args = ap.parse_args()
    widths = [int(w) for w in args.widths.split(",")]
    rows = []
    native = bool(cpu_features()["bf16_native"])
    for name, prec, cl, threads, workers in VARIANTS:
        if prec == "bf16" and not native:
            print(f"skip {name}: this CPU has no native bf16")
            continue
        rows.append(run(widths[0], name, prec, cl, threads, workers, args.steps, args.warmup,
                        Path(args.config)))
        print(rows[-1])
    best = min(rows, key=lambda r: r["s_per_step_median"])
    for w in widths[1:]:
        for row in (rows[0], best):
            r = run(w, row["variant"], row["precision"], row["channels_last"], row["threads"],
                    row["workers"], args.steps, args.warmup, Path(args.config))
            rows.append(r)
            print(r)
    base = rows[0]["s_per_step_median"]
    for r in rows:
        r[f"speedup_vs_baseline_w{rows[0]['width']}"] = base / r["s_per_step_median"]
    path = write(args.out, {"command": "python " + " ".join(sys.argv),
                            "config": os.path.relpath(args.config, REPO),
                            "note": "s/step includes simulation, forward, backward and AdamW "
                                    "(no validation, no checkpoints)",
                            "rows": rows})
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
