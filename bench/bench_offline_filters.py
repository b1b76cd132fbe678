"""Peak error of ``rtsource.localize`` on short windows, with and without the live path's
causal filters (issue 12, case 10).

Single dipoles (random grid point and orientation, a 10 Hz burst), 20-sample windows at
500 Hz, white sensor noise at 10 dB SNR, simulated with a head model rtsource's inverse was
not built from (a three-shell sphere with other conductivities, 0.33/0.0042/0.33 S/m) and
localised with the template (BEM by default) on biosemi128, eLORETA. Peak error: distance
(mm, MNI) from the true source to the largest estimated current at the window's largest
sample. Both arms see the same windows (fixed seed); ``filters=False`` is the offline
default, ``filters=True`` applies the config's causal band-pass 1-45 Hz and 50 Hz notch from
the first sample's steady state (what ``localize`` did by default before).

    python bench/bench_offline_filters.py [--n 200] [--conductor bem|sphere]

Writes ``bench/results/offline_filters_<conductor>.json``.
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy loads)

limit_threads()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import write  # noqa: E402

import rtsource  # noqa: E402
from rtsource.bench.offline import dipole_peak_errors  # noqa: E402
from rtsource.config import load_config  # noqa: E402
from rtsource.headmodel import build_headmodel  # noqa: E402


def summary(e: np.ndarray) -> dict:
    return {"median_mm": float(np.median(e)), "p90_mm": float(np.percentile(e, 90)),
            "mean_mm": float(np.mean(e)), "n": int(e.size)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="windows per arm (default 200)")
    ap.add_argument("--conductor", default="bem", choices=("bem", "sphere"),
                    help="the inverse's template head model (default bem)")
    ap.add_argument("--snr", type=float, default=10.0, help="SNR in dB (default 10)")
    args = ap.parse_args()
    cfg = load_config(headmodel={"montage": "biosemi128", "conductor": args.conductor})
    sim_cfg = dataclasses.replace(cfg.headmodel, conductor="sphere",
                                  conductivity=(0.33, 0.0042, 0.33))
    sim = build_headmodel(sim_cfg, progress=True)
    out = {}
    for filters in (False, True):
        loc = rtsource.Localizer(sim.ch_names, 500.0, config=cfg, filters=filters,
                                 progress=True)
        e = dipole_peak_errors(loc, sim, args.n, snr_db=args.snr, seed=12)
        out["filters_on" if filters else "filters_off"] = summary(e)
        print(f"filters={filters}: median {np.median(e):.1f} mm, p90 "
              f"{np.percentile(e, 90):.1f} mm ({args.n} windows)")
    path = write(f"offline_filters_{args.conductor}.json", {
        "what": "peak error of localize on 20-sample single-dipole windows, 500 Hz, with and "
                "without the live causal filters",
        "simulation": "three-shell sphere, conductivities 0.33/0.0042/0.33 S/m, biosemi128, "
                      f"white noise {args.snr:g} dB, seed 12",
        "inverse": f"eLORETA on the template ({args.conductor}), biosemi128, 7 mm grid",
        "command": f"python bench/bench_offline_filters.py --n {args.n} "
                   f"--conductor {args.conductor}",
        **out})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
