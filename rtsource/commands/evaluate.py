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
    group = p.add_argument_group("dynamic sweeps (brain model: region time courses per regime)")
    dynamic_only: dict[str, tuple[str, object]] = {}  # dest -> (flag, default)

    def dyn(*flags: str, **kw: object) -> None:
        """An option only the dynamic sweep reads (refused without --dynamic)."""
        action = group.add_argument(*flags, **kw)
        dynamic_only[action.dest] = (flags[0], action.default)

    group.add_argument("--dynamic", action="store_true",
                       help="run the dynamic sweep instead: every method (eloreta, sloreta, dspm, mne, "
                            "piunet, temporal) on windows composed from the brain model's regimes; region "
                            "precision, recall, localisation error and |r|, cortical and thalamic")
    dyn("--regimes", default="spontaneous,evoked,interictal,ictal",
        help="comma-separated regimes (spontaneous, evoked, interictal, ictal)")
    dyn("--snrs", default="5,10,20", help="comma-separated sensor SNRs in dB")
    dyn("--focus-snr", nargs=2, type=float, metavar=("LO", "HI"),
        help="range of the focus' SNR in dB over the background, measured where "
             "--focus-snr-at says (default 10 20 in source, 0 10 at the scalp; "
             "negative values work: --focus-snr -5 5)")
    dyn("--focus-snr-at", choices=("source", "scalp"), default="source",
        help="measure the focus' SNR in region activity (default) or in the EEG power "
             "of the whole window (scalp: a deep thalamic focus as visible as a "
             "cortical one)")
    dyn("--windows", type=int, default=20, metavar="N",
        help="windows per regime and SNR (default 20)")
    dyn("--window-s", type=float, default=0.5, metavar="S",
        help="window length (default 0.5 s)")
    dyn("--methods", default="eloreta,sloreta,dspm,mne,piunet,temporal",
        help="comma-separated methods (default all six)")
    dyn("--temporal-checkpoint", default="default", metavar="FILE",
        help="temporal network to evaluate (default: the shipped weights)")
    dyn("--noise", choices=["white", "correlated", "real"], default="white",
        help="sensor noise (real: DeepSIF's resting EEG interpolated to the montage)")
    dyn("--library-runs", type=int, default=6, metavar="N",
        help="simulations per regime in the cached library (default 6)")
    dyn("--library-s", type=float, default=20.0, metavar="S",
        help="seconds per library simulation (default 20)")
    dyn("--piunet-every", type=int, default=2, metavar="K",
        help="score every K-th sample of a window (3D-PIUNet runs per sample; "
             "default 2)")
    p.set_defaults(dynamic_only=dynamic_only)


def _run_dynamic(args: argparse.Namespace) -> int:
    import shlex
    import sys

    import torch

    from ..evaluate.dynamic import DynamicEvalConfig, dynamic_markdown, evaluate_dynamic
    from ..evaluate.dynamic import write_dynamic_report as write

    torch.set_num_threads(args.threads)
    hm = HeadModelConfig(montage=args.montage, conductor=args.conductor,
                         conductivity=tuple(args.conductivity), bem_ico=args.bem_ico)
    try:
        snrs = tuple(float(x) for x in args.snrs.split(",") if x.strip())
    except ValueError:
        raise ValueError(f"--snrs {args.snrs!r} must be comma-separated numbers (dB), "
                         "e.g. 5,10,20.") from None
    lo, hi = args.focus_snr or ((0.0, 10.0) if args.focus_snr_at == "scalp" else (10.0, 20.0))
    cfg = DynamicEvalConfig(
        headmodel=hm, inverse_from=args.inverse_from,
        regimes=tuple(r.strip() for r in args.regimes.split(",") if r.strip()),
        snr_db=snrs, source_snr_db=(lo, hi), snr_at=args.focus_snr_at,
        n_windows=args.windows, window_s=args.window_s, noise=args.noise,
        library_runs=args.library_runs, library_s=args.library_s, seed=args.seed,
        piunet_every=args.piunet_every, backend=args.backend, precision=args.precision)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    checkpoint = args.checkpoint[0].rpartition("=")[2] if args.checkpoint else None
    result = evaluate_dynamic(cfg, methods=methods, checkpoint=checkpoint,
                              temporal_checkpoint=args.temporal_checkpoint,
                              progress=not args.no_progress)
    command = "rtsource " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    files = write(result, args.out, command=command)
    print(dynamic_markdown(result))
    print("Wrote " + ", ".join(str(p) for p in files.values()))
    return 0


def run(args: argparse.Namespace) -> int:
    import torch

    if args.dynamic:
        return _run_dynamic(args)
    given = [flag for dest, (flag, default) in getattr(args, "dynamic_only", {}).items()
             if getattr(args, dest) != default]
    if given:
        raise ValueError(f"{', '.join(given)} only apply to the dynamic evaluation: add "
                         "--dynamic, or leave them out for the static one (3D-PIUNet maps).")

    from ..evaluate import (
        EvalConfig,
        InverseCrimeWarning,
        default_conditions,
        evaluate,
        markdown_table,
        targets_markdown,
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
    for name in checkpoints:
        table = targets_markdown(result, name)
        if table:
            print(table)
    print("Wrote " + ", ".join(str(p) for p in files.values()))
    return 0
