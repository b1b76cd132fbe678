"""Seizure-onset-zone evaluation: top-3 hit rate and top-region distance per method.

Simulated interictal and ictal recordings (the brain model's libraries, seed 2024; training
used 11) on the held-out head model (three-shell sphere 0.332/0.0113/0.332 S/m,
GSN-HydroCel-129), white sensor noise at 10 dB; every method goes through the same detector
and ranking (:func:`rtsource.soz.evaluate_soz`). Writes ``soz_report.md``,
``soz_summary.csv``, ``soz_recordings.csv`` and ``soz_meta.json`` (CPU, seeds, command,
wall time) to ``--out``:

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 MKL_NUM_THREADS=1 python bench/eval_soz.py \\
        --out evaluations/soz

The first run simulates the libraries (about a minute per regime on one core); later runs
read them from the rtsource cache.
"""

from __future__ import annotations

import argparse
import shlex
import sys


def _pair(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} must be two numbers LO,HI, e.g. 0,10") \
            from None
    return lo, hi


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="evaluations/soz", help="report folder")
    p.add_argument("--methods", default="temporal,eloreta",
                   help="comma-separated methods (default temporal,eloreta)")
    p.add_argument("--checkpoint", help="temporal network weights (default: the shipped ones)")
    p.add_argument("--regimes", default="interictal,ictal")
    p.add_argument("--recordings", type=int, default=20,
                   help="recordings per regime, half with cortical and half with thalamic "
                        "foci (default 20)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds per recording")
    p.add_argument("--snr", type=float, default=10.0, help="sensor SNR (dB)")
    p.add_argument("--focus-snr", type=_pair, default=(0.0, 10.0), metavar="LO,HI",
                   help="range of the focus' SNR in dB (default 0,10; negative values: "
                        "--focus-snr=-5,5)")
    p.add_argument("--focus-snr-at", choices=("scalp", "source"), default="scalp",
                   help="measure the focus' SNR on the scalp (default) or in source space")
    p.add_argument("--spread", type=_pair, default=(0.0, 20.0), metavar="LO,HI",
                   help="range of the focus' spread, half-amplitude distance in mm")
    p.add_argument("--seed", type=int, default=2024)
    p.add_argument("--examples", type=int, default=2, metavar="N",
                   help="also save the figure of the first N recordings of the first regime "
                        "for each method (soz_example_<regime>_<run>_<method>.png; 0: none)")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    from rtsource._util import loadavg

    load_start = loadavg()

    from pathlib import Path

    from rtsource.soz import (
        SOZEvalConfig,
        evaluate_soz,
        evaluation_recording,
        localize_soz,
        soz_markdown,
        write_soz_report,
    )

    try:
        cfg = SOZEvalConfig(regimes=tuple(args.regimes.split(",")), n_recordings=args.recordings,
                            duration_s=args.duration, snr_db=args.snr,
                            focus_snr_db=args.focus_snr, focus_snr_at=args.focus_snr_at,
                            spread_mm=args.spread, seed=args.seed)
    except ValueError as err:
        p.error(str(err))
    result = evaluate_soz(cfg, methods=tuple(args.methods.split(",")),
                          checkpoint=args.checkpoint, progress=not args.no_progress)
    command = "python bench/eval_soz.py " + " ".join(shlex.quote(a) for a in
                                                     (argv if argv is not None else sys.argv[1:]))
    import subprocess

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "rtsource", "bench"],
                               capture_output=True, text=True, check=True).stdout.split()[1::2]
        result.meta["git_commit"] = commit + (f" (uncommitted: {', '.join(dirty)})" if dirty
                                              else "")
    except (OSError, subprocess.CalledProcessError):
        result.meta["git_commit"] = "unknown"
    result.meta["load_avg_1_5_15min"] = {"start": load_start, "end": loadavg()}
    files = write_soz_report(result, args.out, command=command.strip())
    regime = cfg.regimes[0]
    for run in range(min(args.examples, cfg.n_recordings)):
        rec = evaluation_recording(cfg, regime, run)
        for m in args.methods.split(","):
            res = localize_soz(rec.eeg, rec.ch_names, rec.sfreq, cfg.headmodel.montage, m,
                               checkpoint=args.checkpoint, config=cfg.localize_config(),
                               detector=cfg.detector, ranking=cfg.ranking)
            path = Path(args.out) / f"soz_example_{regime}_{run}_{m}.png"
            res.plot(path, top=5, dpi=80,
                     note=f"simulated {regime} recording {run}: true focus {rec.focus_name} "
                          f"({rec.focus_kind}), ranked {res.regions.index(rec.focus_name) + 1}")
    print(soz_markdown(result))
    print(f"wall time {result.meta['wall_s']} s; report: {files['report']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
