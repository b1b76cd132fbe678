"""Argument helpers shared by several commands."""

from __future__ import annotations

import argparse
import sys

from ..config import ATLASES, BACKENDS, CONDUCTORS, METHODS


def add_config_args(p: argparse.ArgumentParser, montage: bool = True,
                    network: bool = True) -> None:
    p.add_argument("--config", metavar="FILE", help="TOML configuration (see configs/)")
    if montage:
        p.add_argument("--montage", metavar="NAME_OR_FILE",
                       help="MNE standard montage name or electrode-position file")
    p.add_argument("--conductor", choices=CONDUCTORS, help="head model (default bem)")
    p.add_argument("--spacing", type=float, metavar="MM", help="source grid spacing (default 7)")
    p.add_argument("--method", choices=METHODS,
                   help="method: a linear inverse, piunet (eLORETA refined by 3D-PIUNet) or "
                        "temporal (BN246 cortical and thalamic time courses from the temporal "
                        "network); default eloreta")
    if network:
        p.add_argument("--checkpoint", metavar="FILE",
                       help="network weights for piunet or temporal (a file written by "
                            "'rtsource train' or 'rtsource adapt'; default: the shipped ones)")
        p.add_argument("--backend", choices=BACKENDS,
                       help="runtime of the network (methods piunet and temporal; the temporal "
                            "network runs on the CPU: auto/onnx = ONNX Runtime, cpu/eager = "
                            "PyTorch)")
    p.add_argument("--atlas", metavar="|".join(ATLASES) + "|PATH", help="atlas (default bn246)")


def note_unused_backend(args: argparse.Namespace, cfg) -> None:
    """Tell the user (stderr) that ``--backend`` has no effect without a network."""
    if getattr(args, "backend", None) and cfg.refine.refiner is None:
        print(f"note: --backend {args.backend} applies to a network (--method piunet or "
              "temporal) only.", file=sys.stderr)


def config_from_args(args: argparse.Namespace, **sections: dict):
    """The config file (or defaults) with the common flags and ``sections`` on top
    (None values leave a setting as it is)."""
    from ..config import load_config

    return load_config(
        getattr(args, "config", None),
        method=getattr(args, "method", None),
        headmodel={"montage": getattr(args, "montage", None),
                   "conductor": getattr(args, "conductor", None),
                   "spacing_mm": getattr(args, "spacing", None)},
        regions={"atlas": getattr(args, "atlas", None)},
        refine={"backend": getattr(args, "backend", None),
                "checkpoint": getattr(args, "checkpoint", None)},
        **sections,
    )
