"""``rtsource adapt RECORDING``: adapt the temporal network to an unlabelled real recording.

Fine-tunes the temporal network (``--method temporal``) on the recording's EEG (simulated
windows with the recording as background, forward consistency on its real windows), holds
the last part out for a before/after report and writes an adapted checkpoint that
``rtsource run``/``localize --method temporal`` load with ``refine.checkpoint``. See
:mod:`rtsource.adapt`."""

from __future__ import annotations

import argparse

from ..config import CONDUCTORS


def _positive(kind: type):
    def parse(text: str):
        try:
            v = kind(text)
        except ValueError:
            v = 0
        if not v > 0:
            raise argparse.ArgumentTypeError(f"{text!r}: give a number > 0.")
        return v
    return parse


def _share(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not 0.0 < v < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r}: give a share between 0 and 1 (e.g. 0.25).")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("recording", help="a continuous EEG recording MNE reads (FIF, EDF/BDF, "
                                     "BrainVision, EEGLAB) with electrode positions (or "
                                     "--montage); a few minutes of clean EEG is best")
    p.add_argument("--checkpoint", default="default", metavar="FILE",
                   help="the temporal network to adapt: 'default' (shipped) or a checkpoint "
                        "from 'rtsource train configs/train-temporal.toml' or 'rtsource adapt'")
    p.add_argument("--out", metavar="FILE",
                   help="adapted checkpoint (default: <recording stem>-adapted.safetensors in "
                        "the working directory; FILE.sha256 is written beside it)")
    p.add_argument("--steps", type=_positive(int), metavar="N",
                   help="fine-tuning steps (default 300: one to a few minutes on two cores)")
    p.add_argument("--minutes", type=_positive(float), metavar="MIN",
                   help="stop fine-tuning after this many minutes (default 10)")
    p.add_argument("--holdout", type=_share, metavar="SHARE",
                   help="share of the recording, from its end, held out of fine-tuning for the "
                        "before/after report (default 0.25)")
    p.add_argument("--window", type=_positive(float), metavar="S",
                   help="window length in seconds (default 1)")
    p.add_argument("--forward-weight", type=float, metavar="W",
                   help="weight of the forward-consistency term on real windows (default 2)")
    p.add_argument("--anchor-weight", type=float, metavar="W",
                   help="weight of the L2-SP term keeping weights near the source's "
                        "(default 0.5)")
    p.add_argument("--lr", type=_positive(float), metavar="LR",
                   help="AdamW learning rate (default 1e-4)")
    p.add_argument("--seed", type=int, metavar="N", help="random seed (default 0)")
    p.add_argument("--threads", type=_positive(int), metavar="N",
                   help="torch threads (default: torch's)")
    p.add_argument("--config", metavar="FILE",
                   help="TOML configuration whose head model and inverse 'rtsource run' uses")
    p.add_argument("--montage", metavar="NAME_OR_FILE",
                   help="electrode positions when the recording carries none (MNE standard "
                        "montage name or electrode file)")
    p.add_argument("--conductor", choices=CONDUCTORS, help="head model (default bem)")
    p.add_argument("--units", metavar="auto|V|mV|uV", default="auto",
                   help="unit of the file's EEG values (default: volts, MNE's unit)")
    p.add_argument("--bads", metavar="CH,CH",
                   help="channels to leave out (added to the file's bad channels)")
    p.add_argument("--filters", action="store_true",
                   help="apply the config's causal band-pass and notch first, as 'rtsource "
                        "run' does live (default off, as 'rtsource localize')")
    p.add_argument("--json", metavar="FILE", help="also write the report (figures, "
                                                  "provenance) as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    import json
    from pathlib import Path

    from ..adapt import AdaptConfig, adapt
    from ..config import load_config

    overrides = {k: v for k, v in {
        "steps": args.steps, "minutes": args.minutes, "holdout": args.holdout,
        "window_s": args.window, "forward_weight": args.forward_weight,
        "anchor_weight": args.anchor_weight, "lr": args.lr, "seed": args.seed,
        "threads": args.threads}.items() if v is not None}
    cfg = AdaptConfig(**overrides)
    run_cfg = load_config(args.config, headmodel={"conductor": args.conductor})
    exclude: list[str] | str = "bads"
    if args.bads:
        import mne

        path = Path(args.recording)
        extra = [b.strip() for b in args.bads.split(",") if b.strip()]
        file_bads = (mne.io.read_raw(path, preload=False, verbose="error").info["bads"]
                     if path.exists() else [])
        exclude = list(dict.fromkeys([*file_bads, *extra]))
    res = adapt(args.recording, args.checkpoint, args.out, cfg=cfg, config=run_cfg,
                montage=args.montage, exclude=exclude, units=args.units, filters=args.filters,
                progress=not args.no_progress)
    p = res.provenance
    print(f"Adapted {p['source_checkpoint']} on {p['recording']}: {p['n_channels']} channels, "
          f"{p['n_windows_train']} training and {p['n_windows_holdout']} held-out window(s) of "
          f"{p['window_s']:g} s; {p['steps']} steps in {p['minutes']:.2f} min "
          f"({p['precision']}).")
    print()
    print(res.table())
    c = res.checks
    tol = p["tolerance"]
    yes = {True: "yes", False: "NO"}
    print(f"held-out forward residual lower: {yes[c['residual_lower']]}; simulated loss "
          f"within {tol:.0%}: {yes[c['sim_loss_within']]}; simulated mean of precision, "
          f"recall, |r| within {tol:.0%}: {yes[c['sim_score_within']]}")
    if not c["met"]:
        print("The target is not met: keep the source network, or adapt on a longer "
              "recording or with other loss weights.")
    print(f"wrote {res.path} (sha256 {res.sha256[:16]}...)")
    print(f"Use it with: rtsource run|localize ... --method temporal --checkpoint {res.path} "
          f"(config: refine.checkpoint; Python: rtsource.localize(raw, method='temporal', "
          f"config={{'refine': {{'checkpoint': '{res.path}'}}}}))")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(res.path),
                                               "sha256": res.sha256, **p}, indent=2,
                                              default=str))
        print(f"wrote {args.json}")
    return 0
