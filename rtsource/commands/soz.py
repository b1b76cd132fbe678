"""``rtsource soz FILE``: rank the regions most likely to lead epileptiform events.

Detects interictal spikes and ictal discharges on the EEG (band-passed global field power),
localises the whole recording once (default: the temporal network, cortical regions and
thalamic nuclei) and ranks the brain model's 226 regions by their early activity around the
events (:mod:`rtsource.soz`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..config import CONDUCTORS, METHODS
from .localize import _positive_int


def _ratio(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = 0.0
    if not v > 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a peak-to-trough ratio above 1 "
                                         "(default 2).")
    return v


def _band(text: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        lo = hi = 0.0
    if not 0 < lo < hi:
        raise argparse.ArgumentTypeError(f"{text!r}: give LOW,HIGH in Hz with 0 < LOW < HIGH, "
                                         "e.g. 1,30.")
    return lo, hi


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", help="a continuous recording MNE reads (FIF, EDF/BDF, BrainVision, "
                                "EEGLAB), at least 3 s long")
    p.add_argument("--method", choices=METHODS, default="temporal",
                   help="localisation: temporal (default; the causal network, cortical and "
                        "thalamic time courses) or a linear method for comparison (eloreta...)")
    p.add_argument("--checkpoint", metavar="FILE",
                   help="temporal network weights (default: the shipped ones)")
    p.add_argument("--config", metavar="FILE", help="TOML configuration (see configs/)")
    p.add_argument("--montage", metavar="NAME_OR_FILE",
                   help="MNE standard montage name or electrode-position file (default: the "
                        "file's positions, else the template holding most of its channels)")
    p.add_argument("--conductor", choices=CONDUCTORS, help="head model (default bem)")
    p.add_argument("--spacing", type=float, metavar="MM", help="source grid spacing (default 7)")
    p.add_argument("--top", type=_positive_int, default=10, metavar="N",
                   help="print the N leading regions (default 10)")
    p.add_argument("--threshold", type=_ratio, default=2.0, metavar="RATIO",
                   help="detection threshold: a GFP peak must reach RATIO x its troughs within "
                        "0.2 s on either side (default 2; lower finds weaker events and more "
                        "background)")
    p.add_argument("--band", type=_band, default=(1.0, 30.0), metavar="LOW,HIGH",
                   help="detector band-pass in Hz (zero phase; default 1,30)")
    p.add_argument("--out", metavar="DIR",
                   help="write soz_regions.csv (every region ranked), soz_events.csv and "
                        "soz.png to DIR")
    p.add_argument("--plot", metavar="FILE.png",
                   help="save the figure (region map and the top regions' averaged time "
                        "courses; PNG, PDF or SVG by extension)")
    p.add_argument("--units", metavar="auto|V|mV|uV", default="auto",
                   help="unit of the file's EEG values (default: volts, MNE's unit)")
    p.add_argument("--bads", metavar="CH,CH",
                   help="channels to leave out, added to the file's bad channels (which are "
                        "left out by default, as MNE does)")
    p.add_argument("--keep-bads", action="store_true",
                   help="use the channels the file marks bad")
    p.add_argument("--drop-missing", action="store_true",
                   help="ignore EEG channels that are not in the montage instead of failing")
    p.add_argument("--filters", action="store_true",
                   help="apply the config's causal band-pass and notch before localising "
                        "(default off: filter the recording beforehand)")


def _read_raw(path: str):
    """The recording as an MNE Raw, or a clear error."""
    import mne

    if not Path(path).exists():
        raise FileNotFoundError(f"{path!r} does not exist.")
    name = path.lower()
    if name.endswith(("-epo.fif", "_epo.fif", "-ave.fif", "_ave.fif", "-epo.fif.gz",
                      "-ave.fif.gz")):
        raise ValueError(f"{path!r} holds epochs or an evoked response; seizure-onset ranking "
                         "needs a continuous recording (a Raw file).")
    try:
        raw = mne.io.read_raw(path, preload=True, verbose="error")
    except Exception as err:  # MNE raises many kinds for unreadable files
        raise ValueError(f"Cannot read {path!r} as an EEG recording ({type(err).__name__}: "
                         f"{err}). Give a file MNE reads: FIF, EDF/BDF, BrainVision (.vhdr), "
                         "EEGLAB (.set)...") from err
    if not len(mne.pick_types(raw.info, eeg=True, exclude=())):
        raise ValueError(f"{path!r} has no EEG channels (channel types: "
                         f"{sorted(set(raw.get_channel_types()))}).")
    return raw


def run(args: argparse.Namespace) -> int:
    from ..config import load_config
    from ..soz import DetectorConfig, NoEventsError, localize_soz
    from .localize import montage_and_bads

    cfg = load_config(args.config, method=args.method,
                      headmodel={"montage": args.montage, "conductor": args.conductor,
                                 "spacing_mm": args.spacing})
    raw = _read_raw(args.file)
    montage, exclude = montage_and_bads(args, raw, cfg.headmodel.montage)
    n_eeg = len(raw.copy().pick("eeg").ch_names)
    print(f"{args.file}: {n_eeg} EEG channels, {raw.n_times / raw.info['sfreq']:.1f} s at "
          f"{raw.info['sfreq']:g} Hz")
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        det = DetectorConfig(threshold=args.threshold, band_hz=args.band)
    for w in caught:
        print(f"rtsource soz: warning: {w.message} (--threshold)", file=sys.stderr)
    try:
        res = localize_soz(raw, montage=montage, method=args.method,
                           checkpoint=args.checkpoint, config=cfg, detector=det,
                           exclude=exclude, units=args.units,
                           on_missing="drop" if args.drop_missing else "raise",
                           filters=args.filters, progress=True)
    except NoEventsError as err:
        print(f"rtsource soz: {err}", file=sys.stderr)
        return 1
    ev = res.events
    print(f"Detected {ev.describe()} (GFP peak/trough >= {det.threshold:g}, band "
          f"{det.band_hz[0]:g}-{min(det.band_hz[1], 0.45 * ev.sfreq):g} Hz); {res.n_events} "
          "with a whole window in the recording used.")
    weights = ""
    if res.method == "temporal":
        weights = (f" (weights {res.provenance.get('temporal_weights')}, sha256 "
                   f"{str(res.provenance.get('temporal_sha256'))[:12]})")
    print(f"Method {res.method}{weights}: the {min(args.top, len(res.regions))} regions most "
          "likely to lead the events:")
    print(res.table(args.top))
    print("score: mean over events of the region's early activity (onset to just after the "
          "GFP peak) over the event's strongest region's (1 = strongest in every event); "
          "onset: when the region's event-averaged activity reaches half its peak, ms after "
          "the EEG onset (negative: before; - : no clear response).")
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        res.to_csv(out / "soz_regions.csv")
        res.events_csv(out / "soz_events.csv")
        res.plot(out / "soz.png", top=min(args.top, 8))
        print(f"saved {out / 'soz_regions.csv'}, {out / 'soz_events.csv'}, {out / 'soz.png'}")
    if args.plot:
        res.plot(args.plot, top=min(args.top, 8))
        print(f"saved {args.plot}")
    return 0
