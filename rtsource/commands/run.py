"""``rtsource run``: the live pipeline (EEG stream in, region activations out on LSL)."""

from __future__ import annotations

import argparse
import signal
import sys
import time
from typing import Any, get_args

from ..config import BadDataPolicy, Schedule, TimestampPolicy
from ._common import add_config_args, config_from_args, note_unused_backend


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", metavar="NAME",
                   help="input LSL stream: a name, or type=TYPE / source_id=ID / name=NAME "
                        "(comma-separated); default from the config ([stream] input)")
    add_config_args(p)
    p.add_argument("--output", metavar="NAME", help="name of the region stream (default rtsource)")
    p.add_argument("--bad-data", choices=get_args(BadDataPolicy),
                   help="bad windows: withhold and flag them, or exclude the bad channels")
    p.add_argument("--window", type=float, metavar="S", help="window length in seconds")
    p.add_argument("--hop", type=float, metavar="S", help="hop in seconds")
    p.add_argument("--schedule", choices=get_args(Schedule),
                   help="process samples as they arrive (default) or a whole hop at a time")
    p.add_argument("--resolve-timeout", type=float, metavar="S",
                   help="seconds to wait for the input stream")
    p.add_argument("--duration", type=float, metavar="S",
                   help="stop after this many seconds (default: until Ctrl-C or SIGTERM)")
    p.add_argument("--status-interval", type=float, default=1.0, metavar="S",
                   help="seconds between status lines (default 1)")
    p.add_argument("--wait-for-consumer", type=float, metavar="S",
                   help="wait up to S seconds for a subscriber before processing (the input "
                        "is buffered meanwhile)")
    p.add_argument("--units", metavar="auto|V|mV|uV",
                   help="unit of the EEG channels, overriding the stream's metadata (default "
                        "auto: the metadata, else decided from the values)")
    p.add_argument("--channel-labels", metavar="L1,L2,...|montage",
                   help="channel labels in stream order, for streams without (or with wrong) "
                        "labels; 'montage' takes the montage's channel order")
    p.add_argument("--bads", metavar="CH,CH",
                   help="channels to leave out (besides those the stream marks bad)")
    p.add_argument("--keep-stream-bads", action="store_true",
                   help="use the channels the stream's metadata marks bad")
    p.add_argument("--timestamps", choices=get_args(TimestampPolicy),
                   help="'source' (default): the sender's capture times; 'arrival': re-stamp "
                        "on arrival with the LSL clock (for senders stamping with another clock)")
    p.add_argument("--range-uv", type=float, metavar="UV",
                   help="the amplifier's input range (+-microvolts): samples reaching it are "
                        "saturated (default: unknown; channels stuck at a rail are found anyway)")
    p.add_argument("--quiet", action="store_true", help="no status lines")
    p.add_argument("--publish-volume", type=float, nargs="?", const=10.0, metavar="HZ",
                   help="also publish the source volume (|J| on the source grid) on "
                        "'<output>-volume' at about HZ volumes per second (default 10)")
    p.add_argument("--demo", action="store_true",
                   help="live demo: start a simulated amplifier, run the pipeline on it and "
                        "print the top regions beside the simulated truth and the latency")


def _config(args: argparse.Namespace) -> Any:
    cfg = config_from_args(args, stream={
        "input": args.input, "output": args.output, "bad_data": args.bad_data,
        "window_s": args.window, "hop_s": args.hop, "schedule": args.schedule,
        "resolve_timeout_s": args.resolve_timeout, "units": args.units,
        "channel_labels": args.channel_labels, "bads": args.bads,
        "stream_bads": False if args.keep_stream_bads else None,
        "timestamps": args.timestamps, "saturation_uv": args.range_uv,
        "volume_hz": args.publish_volume})
    note_unused_backend(args, cfg)
    return cfg


def _run_demo(args: argparse.Namespace) -> int:
    from ..demo import live_demo

    cfg = _config(args) if args.config or args.method else None
    summary = live_demo(
        duration_s=args.duration or 60.0, config=cfg,
        report=lambda line: print(line, flush=True),
    )
    return 0 if summary.n_samples > 0 else 1


def run(args: argparse.Namespace) -> int:
    if args.demo:
        return _run_demo(args)
    from ..online.pipeline import Pipeline

    cfg = _config(args)
    pipe = Pipeline(cfg, montage=args.montage, progress=True)

    def _stop(signum: int, frame: object) -> None:
        pipe.request_stop()

    old = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if not args.quiet:
            print(f"Waiting up to {cfg.stream.resolve_timeout_s:g} s for the input stream "
                  f"({pipe.input_spec})...", flush=True)
        pipe.start(wait_for_consumer_s=args.wait_for_consumer)
        st = pipe.status()
        if not args.quiet:
            print(f"Publishing {len(pipe.processor.regions.names)} regions on LSL stream "
                  f"{pipe.output_name!r} (source_id {pipe.outlet.source_id}), status markers on "
                  f"{pipe.marker_name!r}. {pipe.positions_used} Method {st.method}, backend "
                  f"{st.backend}, {st.n_channels} channels, processing delay "
                  f"{float(pipe.provenance['processing_delay_s']) * 1e3:.1f} ms.", flush=True)
            if pipe.volume is not None:
                vo = pipe.volume.outlet
                print(f"Publishing the source volume ({'x'.join(map(str, vo.shape))} voxels, "
                      f"{vo.n_channels} channels) on {vo.name!r} at {vo.srate:g} Hz.",
                      flush=True)
        t_end = None if args.duration is None else time.monotonic() + args.duration
        last_print, last_elapsed = time.monotonic(), -1.0
        while pipe.running and not pipe.stop_requested:
            # the loop refreshes the status about once a second: wait for a refresh, print
            # each refreshed status once, at most every --status-interval seconds
            timeout = 1.5
            if t_end is not None:
                timeout = min(timeout, max(0.0, t_end - time.monotonic()))
            st = pipe.wait_status(timeout)
            now = time.monotonic()
            fresh = st.elapsed_s != last_elapsed
            if (not args.quiet and fresh
                    and now - last_print >= args.status_interval - 0.25):
                print(st.line(), flush=True)
                last_print, last_elapsed = now, st.elapsed_s
            if t_end is not None and now >= t_end:
                break
        try:
            pipe.stop()
        except Exception as err:  # what ended the processing thread: report it, exit 1
            print(f"rtsource run: error: {err}", file=sys.stderr)
            return 1
        st = pipe.status()
        if not args.quiet:
            print(f"Stopped: {st.n_in} samples in, {st.n_out} out, {st.n_flagged} flagged, "
                  f"{st.n_dropped} dropped.", flush=True)
        return 0
    finally:
        pipe.close()
        for s, h in old.items():
            signal.signal(s, h)
