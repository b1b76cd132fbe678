"""``rtsource view``: a live pyqtgraph window of region activations from an LSL outlet."""

from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default="rtsource", metavar="NAME",
                   help="name of the SourceActivation outlet (default: rtsource)")
    p.add_argument("--markers", metavar="NAME",
                   help="marker stream to show (default: <input>-markers if present)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to find the streams")
    p.add_argument("--bars", type=int, default=20, help="regions shown as bars")
    p.add_argument("--traces", type=int, default=5, help="time courses drawn")


def run(args: argparse.Namespace) -> int:
    from ..stream import resolve_stream
    from ..viewer import RegionViewer

    info = resolve_stream(name=args.input, timeout=args.timeout)
    marker = None
    try:
        marker = resolve_stream(name=args.markers or f"{args.input}-markers",
                                timeout=args.timeout if args.markers else 1.0)
    except TimeoutError:
        if args.markers:
            raise
    viewer = RegionViewer(info, n_bars=args.bars, n_traces=args.traces, marker_info=marker)
    viewer.run()
    return 0
