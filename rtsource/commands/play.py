"""``rtsource play``: replay an MNE-readable recording on LSL in real time."""

from __future__ import annotations

import argparse
import signal
import threading
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", metavar="FILE",
                   help="recording (FIF, EDF/BDF, BrainVision, EEGLAB... anything mne.io.read_raw reads)")
    p.add_argument("--name", metavar="NAME", help="LSL stream name (default rtsource-play-<stem>)")
    p.add_argument("--speed", type=float, default=1.0, metavar="X",
                   help="playback speed (default 1: real time)")
    p.add_argument("--loop", action="store_true", help="start again at the end")
    p.add_argument("--source-id", metavar="ID", help="LSL source_id (default: derived)")
    p.add_argument("--chunk", type=int, metavar="N", help="samples per push (default ~10 ms)")
    p.add_argument("--format", choices=["float32", "double64"], default="float32",
                   help="LSL channel format (default float32)")


def run(args: argparse.Namespace) -> int:
    from ..stream.player import _read_raw, default_source_id, play_file

    raw = _read_raw(args.file)
    name = args.name or f"rtsource-play-{Path(args.file).stem}"
    source_id = args.source_id or default_source_id(args.file, name)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    print(f"Playing {args.file} on LSL stream {name!r} (source_id {source_id}): "
          f"{len(raw.ch_names)} channels at {raw.info['sfreq']:g} Hz, {raw.times[-1]:.1f} s, "
          f"speed {args.speed:g}{', looping' if args.loop else ''}.", flush=True)
    try:
        n = play_file(args.file, name, speed=args.speed, loop=args.loop, chunk_size=args.chunk,
                      source_id=source_id, dtype=args.format, stop_event=stop, raw=raw)
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    print(f"Stopped after {n} samples.", flush=True)
    return 0
