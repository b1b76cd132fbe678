"""The ``rtsource`` command line: thin; each command parses, calls one function, reports.

Each command lives in ``rtsource/commands/<name>.py`` with ``add_arguments(parser)`` and
``run(args) -> int``; modules are imported only when their command runs.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ._threads import limit_threads
from ._version import __version__

# command name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "headmodel": ("headmodel", "build (or verify) the cached template head model for a montage"),
    "localize": ("localize", "localise a recording offline and print the top regions"),
    "demo": ("demo", "offline demo: simulate dipoles, localise, compare with the truth"),
    "simulate-stream": ("simulate_stream", "a live simulated EEG amplifier on LSL"),
    "play": ("play", "replay an MNE-readable recording on LSL in real time"),
    "run": ("run", "the live pipeline: EEG stream in, region activations out"),
    "bench": ("bench", "latency benchmark with a same-run MNE baseline"),
    "train": ("train", "train a network (3D-PIUNet or the temporal network) on simulated data"),
    "adapt": ("adapt", "adapt the temporal network to an unlabelled real recording"),
    "soz": ("soz", "rank the regions most likely to lead epileptiform events (seizure-onset zone)"),
    "evaluate": ("evaluate", "evaluate networks and classical inverses on a held-out head model"),
    "export": ("export", "export a checkpoint to ONNX (and a TensorRT engine where available)"),
    "view": ("view", "live brain view and region activations (pyqtgraph)"),
    "sys-info": ("sys_info", "versions, threads and which inference backends are available"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtsource", description="Real-time EEG source imaging over LSL.")
    parser.add_argument("--version", action="version", version=f"rtsource {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        mod = _load(module)
        if mod is not None:
            mod.add_arguments(p)
    return parser


def _load(module: str):
    try:
        return importlib.import_module(f"rtsource.commands.{module}")
    except ModuleNotFoundError as err:
        if err.name == f"rtsource.commands.{module}":
            return None
        raise


def main(argv: list[str] | None = None) -> int:
    limit_threads()
    from ._util import quiet_liblsl

    quiet_liblsl()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=[logging.WARNING, logging.INFO, logging.DEBUG][min(args.verbose, 2)],
                        format="%(levelname)s %(name)s: %(message)s")
    if not args.command:
        parser.print_help()
        return 0
    mod = _load(args._module)
    if mod is None:
        print(f"rtsource {args.command}: not available in this version.", file=sys.stderr)
        return 2
    try:
        return int(mod.run(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, ImportError) as err:  # OSError: files, folders, timeouts
        print(f"rtsource {args.command}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
