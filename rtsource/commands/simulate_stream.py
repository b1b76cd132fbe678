"""``rtsource simulate-stream``: a live simulated EEG amplifier on LSL."""

from __future__ import annotations

import argparse
import signal
import threading

from ..config import CONDUCTORS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--montage", default="biosemi128", metavar="NAME",
                   help="MNE standard montage (or electrode file) to stream (default biosemi128)")
    p.add_argument("--rate", type=float, default=1000.0, metavar="HZ",
                   help="sampling rate in Hz (default 1000)")
    p.add_argument("--name", default="rtsource-sim", metavar="NAME",
                   help="LSL stream name (default rtsource-sim); truth markers on NAME-truth")
    p.add_argument("--duration", type=float, metavar="S",
                   help="seconds to stream (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--source-id", metavar="ID", help="LSL source_id (default: derived)")
    p.add_argument("--conductor", choices=CONDUCTORS, default="sphere",
                   help="forward model projecting the sources (default sphere: a different "
                        "conductor from the pipeline's default BEM)")
    p.add_argument("--atlas", default="bn246", metavar="NAME", help="atlas of the active regions")
    p.add_argument("--segment", type=float, default=4.0, metavar="S",
                   help="seconds between changes of the active regions (default 4)")
    p.add_argument("--signal-uv", type=float, default=20.0, metavar="UV",
                   help="scalp RMS of each active region at its peak (default 20 uV)")
    p.add_argument("--noise-uv", type=float, default=1.0, metavar="UV",
                   help="sensor noise standard deviation (default 1 uV)")
    p.add_argument("--chunk", type=int, metavar="N", help="samples per push (default ~10 ms)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--quiet", action="store_true", help="do not print the active regions")
    p.add_argument("--dynamics", metavar="REGIME",
                   help="drive the amplifier with the neural-mass brain model instead: "
                        "spontaneous, evoked, interictal or ictal (truth on NAME-truth)")
    p.add_argument("--foci", metavar="REGIONS",
                   help="with --dynamics: comma-separated focus regions (interictal/ictal) or the "
                        "stimulated thalamic nucleus (evoked), e.g. PrG_6_3_L or Stha_L "
                        "(default: drawn from the seed)")
    p.add_argument("--focus-gain", type=float, default=3.0, metavar="X",
                   help="with --dynamics: factor on the truth regions' activity (default 3)")
    p.add_argument("--background-uv", type=float, default=10.0, metavar="UV",
                   help="with --dynamics: scalp RMS of the background activity (default 10 uV)")


def _run_dynamic(args: argparse.Namespace) -> int:
    from ..config import check_value
    from ..simulate.dynamics import REGIMES, DynamicAmplifier

    check_value(args.dynamics, REGIMES, "--dynamics")
    foci = [f.strip() for f in args.foci.split(",") if f.strip()] if args.foci else None
    amp = DynamicAmplifier(
        args.dynamics, args.montage, args.rate, args.name, args.source_id,
        chunk_size=args.chunk, conductor=args.conductor, foci=foci, seed=args.seed,
        noise_uv=args.noise_uv, focus_gain=args.focus_gain, background_uv=args.background_uv,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    sig = amp.signal
    print(f"Simulated amplifier (brain dynamics: {args.dynamics}) on LSL stream {amp.name!r} "
          f"(source_id {amp.source_id}): {sig.n_eeg} EEG channels ({args.montage}, "
          f"{args.conductor} forward) + 'sample_index' at {amp.sfreq:g} Hz; truth markers on "
          f"{amp.truth_name!r}.", flush=True)
    if not args.quiet:
        if sig.onset_regions:
            print("Onset regions: " + ", ".join(sig.onset_regions), flush=True)
        print(f"Truth regions ({len(sig.truth_regions)}): "
              + (", ".join(sig.truth_regions) or "none (background only)"), flush=True)
    try:
        n = amp.run(args.duration, stop_event=stop)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print(f"Stopped after {n} samples ({n / amp.sfreq:.1f} s).", flush=True)
    return 0


def run(args: argparse.Namespace) -> int:
    from ..simulate.amplifier import SimulatedAmplifier

    if args.dynamics:
        return _run_dynamic(args)
    amp = SimulatedAmplifier(
        args.montage, args.rate, args.name, args.source_id, conductor=args.conductor,
        atlas=args.atlas, segment_s=args.segment, signal_uv=args.signal_uv,
        noise_uv=args.noise_uv, chunk_size=args.chunk, seed=args.seed,
    )
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}

    def on_segment(seg) -> None:
        if not args.quiet:
            print(f"[{seg.start / amp.sfreq:8.1f} s] active: " + ", ".join(
                f"{s.region} ({s.freq_hz:g} Hz)" for s in seg.sources), flush=True)

    print(f"Simulated amplifier on LSL stream {amp.name!r} (source_id {amp.source_id}): "
          f"{amp.n_eeg} EEG channels ({args.montage}, {args.conductor} forward) + "
          f"'sample_index' at {amp.sfreq:g} Hz; truth markers on {amp.truth_name!r}.", flush=True)
    try:
        n = amp.run(args.duration, stop_event=stop, on_segment=on_segment)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print(f"Stopped after {n} samples ({n / amp.sfreq:.1f} s).", flush=True)
    return 0
