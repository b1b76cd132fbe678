"""Temporal networks on the same validation windows: loss, squared error alone, focus share, top-1.

Draws the validation windows of a training configuration exactly as ``rtsource train`` does
(the configuration's seed; 64 windows of its data distribution) and scores each checkpoint
on them in one pass (:func:`rtsource.train_temporal.validation_metrics`): the configuration's
loss, the weighted squared error alone, the median share of the output's power on the true
nodes (what :func:`rtsource.train_temporal.focus_share_loss` rewards) and the share of windows
whose most powerful output node is the target's (:func:`rtsource.train_temporal.top1_hit`). A
training run's own validation records use a different configuration's windows per stage, so
they cannot be compared across stages; this can.

    python bench/compare_temporal_validation.py [--config configs/train-temporal-focus.toml]
        [--checkpoint stage3=weights/temporal-stage3.safetensors --checkpoint stage4=FILE]
        [--json temporal-validation-comparison.json]
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/train-temporal-focus.toml")
    p.add_argument("--checkpoint", action="append", metavar="NAME=FILE",
                   help="networks to score (default: stage3 and the shipped weights)")
    p.add_argument("--json", default="temporal-validation-comparison.json",
                   help="file name under bench/results/")
    args = p.parse_args(argv)

    from rtsource.models.checkpoint import load_checkpoint
    from rtsource.train import use_bf16
    from rtsource.train_temporal import (
        SHIPPED_TEMPORAL,
        TemporalSampler,
        load_temporal_config,
        validation_batches,
        validation_metrics,
    )

    specs = args.checkpoint or ["stage3=weights/temporal-stage3.safetensors",
                                f"shipped={SHIPPED_TEMPORAL}"]
    nets = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or not path:
            p.error(f"--checkpoint {spec!r}: give NAME=FILE")
        nets[name] = path
    cfg = load_temporal_config(args.config)
    torch.set_num_threads(cfg.threads)
    t0 = time.perf_counter()
    sampler = TemporalSampler(cfg, progress=False)
    val = validation_batches(sampler, cfg)  # the windows training validates on
    bf16 = use_bf16(cfg, torch.device("cpu"))
    results = {}
    for name, path in nets.items():
        ck = load_checkpoint(path, architecture="TemporalNet")
        model = ck.model.float()
        r = validation_metrics(model, val, bf16, cfg)  # one pass over the windows
        results[name] = {"path": str(path), "sha256": ck.sha256, **r}
        print(f"{name}: loss {r['val_loss']:.4f}, weighted MSE {r['val_weighted_mse']:.4f}, "
              f"focus share {r['val_focus_share']:.3f}, top-1 {r['val_top1']:.3f} "
              f"(all-zero loss {r['val_zero_loss']:.4f})")
    path = write(args.json, {"benchmark": "temporal networks on one configuration's validation "
                             "windows", "config_file": args.config,
                             "n_windows": cfg.val_windows, "precision": "bf16" if bf16 else "fp32",
                             "wall_s": round(time.perf_counter() - t0, 1), "results": results})
    print(f"Wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
