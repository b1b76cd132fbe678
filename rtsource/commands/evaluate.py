"""``rtsource evaluate``: networks and classical inverses on a held-out head model."""

from __future__ import annotations

import argparse
import warnings

from ..config import BACKENDS, CONDUCTORS, INVERSE_METHODS, PRECISIONS, HeadModelConfig


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", metavar="[NAME=]FILE", default=[],
                   help="PIUNet checkpoint to evaluate (repeatable; default: the shipped weights)")
    p.add_argument("--montage", default="GSN-HydroCel-129", metavar="NAME_OR_FILE",
                   help="montage of the test data (default GSN-HydroCel-129, not used in training)")
    p.add_argument("--conductor", choices=CONDUCTORS, default="sphere",
                   help="conductor model of the test data (default sphere)")
    p.add_argument("--conductivity", type=float, nargs=3, default=[0.332, 0.0113, 0.332],
                   metavar=("BRAIN", "SKULL", "SCALP"),
                   help="conductivities of the test head model in S/m (default 0.332 0.0113 0.332)")
    p.add_argument("--bem-ico", type=int, choices=[3, 4], default=4,
                   help="BEM surface resolution when --conductor bem")
    p.add_argument("--inverse-from", choices=["eval", "template"], default="eval",
                   help="kernels from the test head model (eval, the reference's protocol) or "
                        "from the template BEM 0.3/0.006/0.3 (template: conductor mismatch)")
    p.add_argument("--n-samples", type=int, default=50, metavar="N",
                   help="samples per condition (default 50)")
    p.add_argument("--sweeps", default="snr_db,n_sources,extent_mm",
                   help="comma-separated subset of snr_db,n_sources,extent_mm")
    p.add_argument("--baselines", default=",".join(INVERSE_METHODS),
                   help="comma-separated linear inverses to compare (default all four)")
    p.add_argument("--corr-noise", type=float, default=0.0, metavar="RHO",
                   help="fraction of the noise power that is spatially correlated (default 0)")
    p.add_argument("--seed", type=int, default=1234, help="seed of the test sets")
    p.add_argument("--workers", type=int, default=1,
                   help="processes for the metrics (the exact EMD dominates the run time)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for the networks")
    p.add_argument("--backend", choices=[b for b in BACKENDS if b != "auto"], default="eager",
                   help="how the networks run (default eager: plain PyTorch, the reference)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="network precision (default fp32; bf16 on CPUs with AMX/AVX-512-BF16)")
    p.add_argument("--out", default="eval-out", metavar="DIR",
                   help="output folder for CSV, markdown and PNG files (default eval-out)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    import torch

    from ..evaluate import (
        EvalConfig,
        InverseCrimeWarning,
        default_conditions,
        evaluate,
        markdown_table,
        write_report,
    )
    from ..train import default_checkpoint_path

    torch.set_num_threads(args.threads)
    checkpoints = {}
    for item in args.checkpoint or [str(default_checkpoint_path())]:
        name, _, path = item.rpartition("=")
        checkpoints[name or "piunet"] = path
    if len(checkpoints) != len(args.checkpoint or [1]):
        raise ValueError("Two --checkpoint entries share a name; name them NAME=FILE.")
    sweeps = [s.strip() for s in args.sweeps.split(",") if s.strip()]
    conds = default_conditions()
    bad = [s for s in sweeps if s not in conds]
    if bad:
        raise ValueError(f"--sweeps {bad} not valid; choose from {list(conds)}.")
    hm = HeadModelConfig(montage=args.montage, conductor=args.conductor,
                         conductivity=tuple(args.conductivity), bem_ico=args.bem_ico)
    cfg = EvalConfig(headmodel=hm, inverse_from=args.inverse_from, n_samples=args.n_samples,
                     corr_noise=args.corr_noise, seed=args.seed, workers=args.workers,
                     backend=args.backend, precision=args.precision)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", InverseCrimeWarning)
        result = evaluate(checkpoints, cfg, conditions={s: conds[s] for s in sweeps},
                          baselines=tuple(b.strip() for b in args.baselines.split(",") if b.strip()),
                          progress=not args.no_progress)
    for w in caught:
        print(f"WARNING: {w.message}")
    files = write_report(result, args.out)
    print(markdown_table(result))
    print("Wrote " + ", ".join(str(p) for p in files.values()))
    return 0
