"""Where a widened 3D-PIUNet starts: validation loss of the narrow network and of its copies.

Draws the validation samples a training configuration's run uses (its seed, its simulation) and
scores, with that configuration's loss (bf16 autocast where the CPU has it, as training):

- the narrow network named by ``train.init_from``;
- its Net2WiderNet copy at ``train.width`` (:func:`rtsource.models.piunet.widen`, the GroupNorm
  groups of the narrow network kept: how ``rtsource train`` starts);
- the same weights in a network with the reference's grouping at the new width
  (``norm_width`` unset): what the copy computes if the groups are not kept;
- an all-zero output.

    python bench/widen_start.py configs/train-w16.toml --json widen-start.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config", help="a 3D-PIUNet training configuration with train.init_from")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", help="also write the result to bench/results/<name>")
    args = p.parse_args(argv)
    import torch

    from rtsource.models import load_checkpoint, widen
    from rtsource.models.piunet import PIUNet
    from rtsource.simulate import ForwardBank, Simulator
    from rtsource.train import (
        _check_init_from,
        _validate,
        _validation_set,
        load_train_config,
        use_bf16,
    )

    torch.set_num_threads(args.threads)
    cfg = load_train_config(args.config)
    if cfg.init_from is None:
        p.error(f"{args.config} has no train.init_from: nothing to widen")
    t0 = time.perf_counter()
    src = _check_init_from(cfg)
    narrow = load_checkpoint(src).model.float()
    if narrow.width == cfg.width:
        p.error(f"{src} already has train.width = {cfg.width}: nothing to widen")
    sim = Simulator(ForwardBank(cfg.simulate, device=torch.device("cpu"), progress=False))
    val = _validation_set(sim, cfg)  # the samples rtsource train validates on
    bf16 = use_bf16(cfg, torch.device("cpu"))
    fmt = torch.channels_last_3d if bf16 and cfg.channels_last else torch.contiguous_format
    wide = widen(narrow, cfg.width, seed=cfg.seed)
    cfg_ref = {k: v for k, v in wide.config.items() if k != "norm_width"}
    cfg_ref["channel_mult"] = tuple(cfg_ref["channel_mult"])
    regrouped = PIUNet(**cfg_ref)
    regrouped.load_state_dict(wide.state_dict())
    rows, zero = {}, None
    for name, net in ((f"width {narrow.width} ({src.name})", narrow),
                      (f"width {cfg.width}, widened (groups kept)", wide),
                      (f"width {cfg.width}, widened, reference groups", regrouped)):
        res = _validate(net.to(memory_format=fmt), val, sim.mapper.flat_index, cfg, None, bf16,
                        fmt)
        rows[name] = res["val_loss"]
        zero = res["val_zero_loss"]
    rows["all-zero output"] = zero
    for name, value in rows.items():
        print(f"{name:<45} {value:.5f}")
    if args.json:
        out = write(Path(args.json).name,
                    {"config": args.config, "init_from": str(src), "val_samples": cfg.val_samples,
                     "val_loss": rows, "precision": "bf16" if bf16 else "fp32",
                     "wall_s": round(time.perf_counter() - t0, 1)})
        print(f"Wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
