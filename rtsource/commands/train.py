"""``rtsource train CONFIG.toml``: train a 3D-PIUNet on simulated data."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.toml",
                   help="training configuration ([train] and [simulate] tables; see configs/)")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out_dir>/last.safetensors and last.state.pt")
    p.add_argument("--out-dir", metavar="DIR", help="override train.out_dir")
    p.add_argument("--max-steps", type=int, metavar="N", help="override train.max_steps")
    p.add_argument("--max-minutes", type=float, metavar="MIN",
                   help="override train.max_minutes (training time, summed over resumes)")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device")
    p.add_argument("--threads", type=int, metavar="N", help="override train.threads (CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from ..train import load_train_config, train

    cfg = load_train_config(args.config, out_dir=args.out_dir, max_steps=args.max_steps,
                            max_minutes=args.max_minutes, device=args.device,
                            threads=args.threads)
    import os

    res = train(cfg, resume=args.resume, progress=not args.no_progress)
    if os.environ.get("RANK", "0") != "0":  # torchrun: rank 0 reports
        return 0
    m = res.metrics
    print(f"Trained PIUNet(width={cfg.width}) to step {res.step} in {res.elapsed_s / 60:.1f} min; "
          f"checkpoint {res.checkpoint}")
    if "val_loss" in m:
        print(f"Validation loss {m['val_loss']:.5f} (all-zero prediction {m['val_zero_loss']:.5f})")
    return 0
