"""``rtsource headmodel``: build or verify the cached head model, forward and kernel."""

from __future__ import annotations

import argparse
import time

from ._common import add_config_args, config_from_args


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_args(p, network=False)
    p.add_argument("--force", action="store_true", help="rebuild even if cached")
    p.add_argument("--no-kernel", action="store_true",
                   help="skip the inverse kernel (head model and forward only)")


def run(args: argparse.Namespace) -> int:
    from .._util import cache_dir
    from ..headmodel import build_headmodel
    from ..inverse import make_inverse
    from ..regions import region_map

    cfg = config_from_args(args)
    t0 = time.perf_counter()
    hm = build_headmodel(cfg.headmodel, force=args.force)
    print(f"Head model {hm.hash}: {hm.n_channels} channels, {hm.n_sources} sources "
          f"({hm.spacing_mm:g} mm), {hm.description['conductor']} "
          f"({hm.description['conductivity_S_per_m']} S/m) in {time.perf_counter() - t0:.1f} s")
    if not args.no_kernel:
        t1 = time.perf_counter()
        inv = make_inverse(hm, cfg.inverse, force=args.force)
        print(f"Inverse kernel {inv.hash}: {inv.method}, lambda2={inv.lambda2:g} "
              f"in {time.perf_counter() - t1:.1f} s")
        rm = region_map(hm, cfg.regions.atlas)
        print(f"Atlas {rm.atlas}: {rm.n_regions} regions"
              + (f", {len(rm.unresolved)} via nearest points: {', '.join(rm.unresolved)}"
                 if rm.unresolved else ", every region covered by the grid"))
    print(f"Cache: {cache_dir()}")
    return 0
