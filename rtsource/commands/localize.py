"""``rtsource localize FILE``: localise a recording offline (same stages as ``run``)."""

from __future__ import annotations

import argparse
import json
from typing import get_args

import numpy as np

from ..config import BadDataPolicy
from ._common import add_config_args, config_from_args, note_unused_backend


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a whole number >= 1.")
    return n


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="any recording MNE reads (FIF, EDF/BDF, BrainVision, EEGLAB), "
                                "or MNE epochs (*-epo.fif) or evoked (*-ave.fif) files")
    add_config_args(p)
    p.add_argument("--top", type=_positive_int, default=10,
                   help="print the N most active regions")
    p.add_argument("--out", metavar="FILE.npz",
                   help="save regions, region_names, times, positions_mni and provenance (a "
                        "JSON string: head model, inverse, network and runtime) to an .npz")
    p.add_argument("--drop-missing", action="store_true",
                   help="ignore EEG channels that are not in the montage instead of failing")
    p.add_argument("--units", metavar="auto|V|mV|uV", default="auto",
                   help="unit of the file's EEG values (default auto: volts, the unit MNE reads "
                        "files into; values that contradict it are refused with the unit they "
                        "look like)")
    p.add_argument("--bads", metavar="CH,CH",
                   help="channels to leave out (default: the file's bad channels, as MNE)")
    p.add_argument("--keep-bads", action="store_true",
                   help="use the channels the file marks bad")
    p.add_argument("--bad-data", choices=get_args(BadDataPolicy),
                   help="flat or saturated channels: stop with their names (flag, default) or "
                        "leave them out (exclude)")
    p.add_argument("--filters", action="store_true",
                   help="apply the config's causal band-pass and notch (as `rtsource run`); "
                        "default off: filter the recording beforehand")
    p.add_argument("--plot", metavar="FILE.png",
                   help="save a figure: glass brain of |J| at the peak time and the time "
                        "courses of the top regions (PNG, PDF or SVG by extension)")


def _read(path: str):
    """A Raw, Epochs (``*-epo.fif``) or Evoked (``*-ave.fif``, the first condition) as MNE
    reads it."""
    import mne

    name = path.lower()
    if name.endswith(("-epo.fif", "_epo.fif", "-epo.fif.gz", "_epo.fif.gz")):
        return mne.read_epochs(path, preload=True, verbose="error")
    if name.endswith(("-ave.fif", "_ave.fif", "-ave.fif.gz", "_ave.fif.gz")):
        return mne.read_evokeds(path, verbose="error")[0]
    return mne.io.read_raw(path, preload=True, verbose="error")


def _template_for(ch_names: list[str], configured: str) -> str:
    """The configured montage, or MNE's 10-05 template when it holds more of the labels."""
    from ..headmodel.montage import get_montage
    from ..online.preprocess import normalize_labels

    keys = set(normalize_labels(ch_names))
    best, best_n = configured, -1
    for name in (configured, "colin27_1005"):
        n = len(keys & set(normalize_labels(get_montage(name).ch_names)))
        if n > best_n:
            best, best_n = name, n
    return best


def montage_and_bads(args: argparse.Namespace, raw, configured: str
                     ) -> tuple[object, list[str] | str | tuple]:
    """The montage (``--montage``, the file's positions, or the template holding most of its
    channels, said on stdout) and the channels to leave out (``--bads`` added to the file's
    bad channels unless ``--keep-bads``) for a recording read from ``args.file``."""
    montage = args.montage
    if montage is None and raw.get_montage() is None:
        montage = _template_for(raw.copy().pick("eeg").ch_names, configured)
        print(f"{args.file} carries no electrode positions; using montage {montage!r}, the "
              "template that holds most of its channels (set --montage to choose another).")
    if args.bads:
        exclude: list[str] | str | tuple = [b.strip() for b in args.bads.split(",") if b.strip()]
        if not args.keep_bads:
            exclude = list(dict.fromkeys([*raw.info["bads"], *exclude]))
    else:
        exclude = () if args.keep_bads else "bads"
    return montage, exclude


def run(args: argparse.Namespace) -> int:

    from ..online.localize import localize

    cfg = config_from_args(args, stream={"bad_data": args.bad_data})
    note_unused_backend(args, cfg)
    raw = _read(args.file)
    montage, exclude = montage_and_bads(args, raw, cfg.headmodel.montage)
    res = localize(raw, montage=montage, method=cfg.method, atlas=cfg.regions.atlas,
                   config=cfg, on_missing="drop" if args.drop_missing else "raise",
                   exclude=exclude, units=args.units, filters=args.filters, progress=True)
    if res.provenance.get("excluded_channels", "none") != "none":
        print(f"left out (bad): {res.provenance['excluded_channels']}")
    regions = res.regions.reshape(-1, res.regions.shape[-1])  # epochs: all their samples
    signed = res.method == "temporal" or res.provenance.get("region_mode") == "signed"
    mean = np.abs(regions).mean(axis=0) if signed else regions.mean(axis=0)
    order = np.argsort(mean)[::-1][: args.top]
    prov = res.provenance
    runtime = (f" ({prov['temporal_backend']}, {prov['temporal_precision']})"
               if "temporal_backend" in prov else "")
    print(f"{res.method}{runtime} on {regions.shape[0]} samples; top {len(order)} regions "
          f"({res.provenance['atlas']}), mean {'|activation|' if signed else 'activation'}:")
    for i in order:
        print(f"  {res.region_names[i]:<24} {mean[i]:.3e}")
    if args.out:
        np.savez(args.out, regions=res.regions, region_names=np.array(res.region_names),
                 times=res.times, positions_mni=res.positions_mni,
                 provenance=np.array(json.dumps(prov, sort_keys=True)))
        print(f"saved {args.out}")
    if args.plot:
        from ..viewer.plot import plot_result

        plot_result(res, args.plot, n_top=min(args.top, 8))
        print(f"saved {args.plot}")
    return 0
