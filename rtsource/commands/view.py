"""``rtsource view``: a live pyqtgraph window of rtsource's LSL streams.

With a source-volume stream (``rtsource run --publish-volume``): the brain view (glass brain,
top regions, time courses, status). Without one: bars and time courses of the regions.
``--screenshot FILE --duration S`` runs headless (Qt offscreen) and saves a PNG.
"""

from __future__ import annotations

import argparse
import os
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", default="rtsource", metavar="NAME",
                   help="name of the SourceActivation outlet (default: rtsource)")
    p.add_argument("--volume", metavar="NAME",
                   help="source-volume stream for the brain view (default: <input>-volume "
                        "if present; `rtsource run --publish-volume` publishes it)")
    p.add_argument("--markers", metavar="NAME",
                   help="marker stream to show (default: <input>-markers if present)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to find the streams")
    p.add_argument("--bars", type=int, default=20, help="regions shown as bars (no volume)")
    p.add_argument("--traces", type=int, default=5,
                   help="time courses drawn (the most active regions)")
    p.add_argument("--regions", metavar="NAME,NAME",
                   help="regions whose time courses the brain view draws (comma-separated "
                        "atlas labels; default: the most active ones)")
    p.add_argument("--top", type=int, default=10, help="regions listed by name in the brain view")
    p.add_argument("--threshold", type=float, default=0.5, metavar="FRACTION",
                   help="brain view: voxels below this fraction of the colour scale's maximum "
                        "are transparent (default 0.5; drag the line on the colour bar)")
    p.add_argument("--smooth", type=float, default=0.3, metavar="S",
                   help="brain view: time constant of the moving average of the volumes "
                        "shown (default 0.3 s; 0 shows each volume as it arrives)")
    p.add_argument("--history", type=float, default=10.0, metavar="S",
                   help="seconds of time course shown (default 10)")
    p.add_argument("--screenshot", metavar="FILE.png",
                   help="headless: update for --duration seconds, save the window as a PNG, exit")
    p.add_argument("--duration", type=float, default=5.0, metavar="S",
                   help="seconds of data before --screenshot is taken (default 5)")


def run(args: argparse.Namespace) -> int:
    if args.screenshot:  # no display needed
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if not 0.0 <= args.threshold < 1.0:
        raise ValueError(f"--threshold {args.threshold} must be a fraction in [0, 1) (e.g. 0.5).")
    if args.duration <= 0:
        raise ValueError(f"--duration {args.duration} must be a positive number of seconds.")
    from ..stream import resolve_stream

    info = resolve_stream(name=args.input, timeout=args.timeout)
    marker = _optional(resolve_stream, args.markers, f"{args.input}-markers", args.timeout)
    volume = _optional(resolve_stream, args.volume, f"{args.input}-volume", args.timeout)
    if volume is not None:
        from ..viewer.brain import BrainViewer

        regions = [r.strip() for r in args.regions.split(",") if r.strip()] \
            if args.regions else None
        viewer = BrainViewer(volume, info, marker, regions=regions, n_top=args.top,
                             n_traces=args.traces, history_s=args.history,
                             threshold=args.threshold, smooth_s=args.smooth)
    else:
        from ..viewer import RegionViewer

        print(f"No source-volume stream {args.volume or args.input + '-volume'!r}: showing "
              "regions only (start `rtsource run` with --publish-volume for brain views).",
              file=sys.stderr)
        viewer = RegionViewer(info, n_bars=args.bars, n_traces=args.traces,
                              history_s=args.history, marker_info=marker)
    try:
        if args.screenshot:
            if volume is not None:
                n = viewer.screenshot(args.screenshot, args.duration)
            else:
                n = _region_screenshot(viewer, args.screenshot, args.duration)
            print(f"Saved {args.screenshot} after {args.duration:g} s ({n} samples received).")
            return 0 if n else 1
        viewer.run()
        return 0
    finally:
        viewer.close()


def _optional(resolve, given, default, timeout):
    """Resolve ``given`` (an error when missing) or ``default`` (None when missing)."""
    try:
        return resolve(name=given or default, timeout=timeout if given else 1.0)
    except TimeoutError:
        if given:
            raise
        return None


def _region_screenshot(viewer, path: str, duration_s: float) -> int:
    import time

    deadline = time.monotonic() + duration_s
    while time.monotonic() < deadline:
        viewer.update()
        viewer.app.processEvents()
        time.sleep(0.04)
    viewer.update()
    viewer.app.processEvents()
    if not viewer.win.grab().save(str(path)):
        raise OSError(f"Could not write the screenshot {path!r} (a .png path?).")
    return viewer.n_received
