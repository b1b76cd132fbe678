"""``rtsource demo``: offline demo — dipoles in named regions, localised with eLORETA.

The EEG is simulated with a head model the inverse was not built from (a three-shell
sphere with other conductivities), so the demo shows honest template-model errors.
"""

from __future__ import annotations

import argparse
import dataclasses
import time

import numpy as np

from ..config import CONDUCTORS, METHODS

DEFAULT_REGIONS = ["PrG_6_1_L", "MVOcC_5_2_R", "STG_6_3_L", "SFG_7_4_R", "Tha_8_2_R"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--montage", default="biosemi128", help="montage (default biosemi128)")
    p.add_argument("--regions", nargs="+", default=DEFAULT_REGIONS, metavar="NAME",
                   help="BN246 regions to place one dipole in each (default: %(default)s)")
    p.add_argument("--snr", type=float, default=20.0, help="sensor SNR in dB (default 20)")
    p.add_argument("--conductor", choices=CONDUCTORS, default="bem",
                   help="head model used for the inverse (default bem)")
    p.add_argument("--method", default="eloreta", choices=METHODS)


def run(args: argparse.Namespace) -> int:
    from ..config import HeadModelConfig, load_config
    from ..headmodel import build_headmodel
    from ..online.localize import localize

    cfg = load_config(headmodel={"montage": args.montage, "conductor": args.conductor})
    sfreq, n_t = 500.0, 500
    print(f"Head model for {args.montage} ({args.conductor}); building it once takes a minute "
          "or two, later runs load it from the cache.")
    truth = build_headmodel(HeadModelConfig(montage=args.montage, conductor="sphere",
                                            conductivity=(0.332, 0.0113, 0.332)))
    rng = np.random.default_rng(7)
    t = np.arange(n_t) / sfreq
    wave = np.sin(2 * np.pi * 10 * t) * np.hanning(n_t) * 2e-8  # 20 nA·m, 10 Hz burst
    rows, apply_ms = [], []
    regions = None
    for name in args.regions:
        if regions is None:
            from ..regions import region_map

            regions = region_map(truth, cfg.regions.atlas)
        if name not in regions.names:
            from .._util import close_matches

            raise ValueError(f"Region {name!r} is not in {regions.atlas}."
                             f"{close_matches(name, regions.names)}")
        r = regions.names.index(name)
        src = int(np.argmax(regions.weights[r]))
        x = (truth.gain[:, src] @ regions.orientations[r])[:, None] * wave[None]
        noise = rng.normal(size=x.shape)
        x += noise * np.std(x) / np.sqrt(10 ** (args.snr / 10))
        res = localize(x, ch_names=truth.ch_names, sfreq=sfreq, montage=args.montage,
                       method=args.method, config=cfg)
        seg = slice(n_t // 4, 3 * n_t // 4)
        act = res.regions[seg].mean(axis=0)
        order = np.argsort(act)[::-1]
        power = (res.sources[seg] ** 2).sum(-1).mean(0)
        err = np.linalg.norm(res.positions_mni[power.argmax()] - truth.src_pos_mni[src])
        rank = int(np.where(order == res.region_names.index(name))[0][0]) + 1
        rows.append((name, [res.region_names[i] for i in order[:3]], rank, err))
        apply_ms.append(_time_apply(res, cfg, args))
    print(f"\n{'true region':<14} {'top 3 estimated regions':<40} {'rank':>5} {'peak error':>11}")
    for name, top, rank, err in rows:
        print(f"{name:<14} {', '.join(top):<40} {rank:>5} {err:>8.1f} mm")
    print(f"\nper-window apply time (25 samples, {args.montage}): median "
          f"{np.median(apply_ms):.3f} ms")
    return 0


def _time_apply(res, cfg, args) -> float:
    """Median time of the kernel + region step for one 25-sample window (after warm-up)."""
    from ..headmodel import build_headmodel
    from ..inverse import make_inverse
    from ..regions import RegionReducer, region_map

    hm = build_headmodel(dataclasses.replace(cfg.headmodel), progress=False)
    op = make_inverse(hm, cfg.inverse)
    red = RegionReducer(region_map(hm, cfg.regions.atlas), cfg.regions.mode)
    x = np.random.default_rng(0).normal(size=(25, op.n_channels)).astype(np.float32)
    src = np.empty((25, op.n_sources, 3), np.float32)
    out = np.empty((25, red.regions.n_regions), np.float32)
    times = []
    for _ in range(60):
        t0 = time.perf_counter()
        op.apply_samples(x, out=src)
        red(src, out=out)
        times.append(time.perf_counter() - t0)
    return float(np.median(times[10:]) * 1e3)
