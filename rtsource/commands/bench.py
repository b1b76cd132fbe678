"""``rtsource bench``: end-to-end latency over real LSL, with a same-run MNE baseline."""

from __future__ import annotations

import argparse
import sys
from typing import get_args

from ..config import BACKENDS, CONDUCTORS, METHODS, Schedule

_MONTAGES = {32: "biosemi32", 64: "biosemi64", 128: "biosemi128", 160: "biosemi160",
             256: "biosemi256"}


def _decimate(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--decimate {text!r}: give 'auto' or an integer >= 1.") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"--decimate {n}: give 'auto' or an integer >= 1.")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("input (a simulated amplifier on LSL)")
    g.add_argument("--channels", type=int, choices=sorted(_MONTAGES), default=128,
                   help="EEG channels: a BioSemi montage of that size (default 128)")
    g.add_argument("--montage", metavar="NAME", help="MNE standard montage (overrides --channels)")
    g.add_argument("--rate", type=float, default=1000.0, metavar="HZ",
                   help="sampling rate (default 1000)")
    g.add_argument("--chunk", type=int, metavar="N",
                   help="samples per push (default: 10 ms worth; 1 pushes every sample)")
    g.add_argument("--duration", type=float, default=30.0, metavar="S",
                   help="seconds of EEG streamed to the pipeline (default 30)")
    g = p.add_argument_group("pipeline")
    g.add_argument("--config", metavar="FILE", help="TOML configuration the options override")
    g.add_argument("--method", choices=METHODS,
                   default="eloreta", help="inverse method (default eloreta)")
    g.add_argument("--conductor", choices=CONDUCTORS,
                   help="head model (default: the configuration's, bem)")
    g.add_argument("--atlas", metavar="NAME", help="atlas (default bn246)")
    w = g.add_mutually_exclusive_group()
    w.add_argument("--width", type=int, metavar="W",
                   help="piunet: a network of width W with random weights (timing only)")
    w.add_argument("--checkpoint", metavar="FILE",
                   help="piunet: weights to use (default: the shipped ones)")
    g.add_argument("--backend", choices=BACKENDS, default="auto",
                   help="runtime of the network (default auto; see run --help)")
    g.add_argument("--decimate", type=_decimate, metavar="auto|N",
                   help="piunet: refine one of every N samples (default: the configuration's)")
    g.add_argument("--hop", type=float, metavar="S", help="hop in seconds (default 0.010)")
    g.add_argument("--window", type=float, metavar="S", help="window in seconds (default 0.025)")
    g.add_argument("--schedule", choices=get_args(Schedule), default="arrival",
                   help="process samples as they arrive (default) or a whole hop at a time")
    g = p.add_argument_group("baseline, refinement and output")
    g.add_argument("--no-baseline", action="store_true",
                   help="skip the baseline (pylsl + MNE apply_inverse_raw per hop)")
    g.add_argument("--baseline-duration", type=float, metavar="S",
                   help="seconds of EEG for the baseline (default: min(duration, 5); it falls "
                        "behind, so its latency grows with the length)")
    g.add_argument("--refine-only", action="store_true",
                   help="only time the refinement network (per volume at batch 1, and "
                        "batched throughput); no LSL")
    g.add_argument("--refine-batch", type=int, default=8, metavar="B",
                   help="batch size of the throughput measurement (default 8)")
    g.add_argument("--refine-runs", type=int, default=30, metavar="N",
                   help="timed calls per batch size (default 30)")
    g.add_argument("--threads", type=int, metavar="N",
                   help="refinement-only: CPU threads of the engine (default: all cores)")
    g.add_argument("--warmup", type=float, default=1.0, metavar="S",
                   help="leave the first S seconds out of the latency figures (default 1)")
    g.add_argument("--json", metavar="FILE", help="write the results as JSON")
    g.add_argument("--plot", metavar="FILE", help="draw the latency histogram and timeline")
    g.add_argument("--quiet", action="store_true", help="no progress lines")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..bench import BenchSpec, plot_results, run_benchmark, summary_lines, to_json

    if (args.method != "piunet" and not args.refine_only
            and (args.width or args.checkpoint or args.decimate)):
        print("note: --width, --checkpoint and --decimate only apply to --method piunet.",
              file=sys.stderr)
    if args.refine_only and args.method != "piunet" and not (args.width or args.checkpoint):
        raise ValueError("--refine-only times the 3D-PIUNet network: give --width W (random "
                         "weights) or --checkpoint FILE (or --method piunet for the shipped "
                         "weights).")
    spec = BenchSpec(
        montage=args.montage or _MONTAGES[args.channels], rate=args.rate,
        method="piunet" if args.refine_only else args.method, conductor=args.conductor,
        atlas=args.atlas, width=args.width, checkpoint=args.checkpoint, backend=args.backend,
        decimate=args.decimate, hop_s=args.hop, window_s=args.window, schedule=args.schedule,
        duration_s=args.duration, chunk=args.chunk, baseline=not args.no_baseline,
        baseline_duration_s=args.baseline_duration, config=args.config,
        warmup_s=args.warmup, refine_runs=args.refine_runs, refine_batch=args.refine_batch,
        threads=args.threads,
    )
    say = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    results = run_benchmark(spec, refine_only=args.refine_only, report=say)
    for line in summary_lines(results):
        print(line, flush=True)
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(to_json(results) + "\n")
        print(f"Wrote {path}")
    if args.plot:
        if args.refine_only:
            print("note: --plot draws latency over LSL; nothing to draw with --refine-only.",
                  file=sys.stderr)
        else:
            print(f"Wrote {plot_results(results, args.plot)}")
    bad = results.get("pipeline", {}).get("pipeline_error")
    if bad:
        print(f"rtsource bench: the pipeline ended with an error: {bad}", file=sys.stderr)
        return 1
    return 0
