"""``rtsource train CONFIG.toml``: train a network on simulated data.

A ``[train]`` table trains a 3D-PIUNet (``configs/train-w8.toml``); a ``[temporal]`` table
trains the temporal network on the brain model (``configs/train-temporal.toml``)."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", metavar="CONFIG.toml",
                   help="training configuration: [train] and [simulate] tables (3D-PIUNet) or a "
                        "[temporal] table (the temporal network); see configs/")
    p.add_argument("--resume", action="store_true",
                   help="continue from <out_dir>/last.safetensors and last.state.pt")
    p.add_argument("--out-dir", metavar="DIR", help="override train.out_dir (temporal.out_dir)")
    p.add_argument("--max-steps", type=int, metavar="N", help="override train.max_steps (temporal.max_steps)")
    p.add_argument("--max-minutes", type=float, metavar="MIN",
                   help="override train.max_minutes (temporal.max_minutes): training time, "
                        "summed over resumes")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], help="override train.device (the temporal network: cpu)")
    p.add_argument("--threads", type=int, metavar="N", help="override train.threads (temporal.threads; CPU)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _run_temporal(args: argparse.Namespace) -> int:
    from ..train_temporal import load_temporal_config, train_temporal

    if args.device == "cuda":
        raise ValueError("The temporal network trains on the CPU (--device cpu or auto).")
    cfg = load_temporal_config(args.config, out_dir=args.out_dir, max_steps=args.max_steps,
                               max_minutes=args.max_minutes, threads=args.threads)
    res = train_temporal(cfg, resume=args.resume, progress=not args.no_progress)
    print(f"Trained the temporal network to step {res.get('step')} in "
          f"{res.get('elapsed_s', 0) / 60:.1f} min ({res.get('windows_per_s')} windows/s, "
          f"{res.get('precision')}); checkpoint {res['checkpoint']}")
    if "val_loss" in res:
        print(f"Validation loss {res['val_loss']:.5f} (all-zero prediction "
              f"{res['val_zero_loss']:.5f})")
    return 0


def run(args: argparse.Namespace) -> int:
    from ..config import read_toml
    from ..train import load_train_config, train

    if "temporal" in read_toml(args.config):
        return _run_temporal(args)

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
