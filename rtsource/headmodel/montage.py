"""Electrode montages: MNE standard names, files MNE reads, or arrays of positions."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import mne
import numpy as np

from .._util import logger

MontageSpec = str | Path | mne.channels.DigMontage | tuple[Sequence[str], np.ndarray]


def get_montage(spec: MontageSpec) -> mne.channels.DigMontage:
    """Resolve a montage specification.

    Parameters
    ----------
    spec : str | Path | DigMontage | (labels, positions)
        An MNE standard montage name (``biosemi128``, ``GSN-HydroCel-129``,
        ``colin27_1005``, ...; MNE's former names such as ``standard_1020`` too), a path to an electrode file MNE reads
        (.elc, .sfp, .loc, .locs, .eloc, .csd, .elp, .bvef, .txt, .hpts, ...), a DigMontage, or a tuple
        of labels and an (n, 3) array of positions in metres in the fsaverage-aligned
        head frame.
    """
    if isinstance(spec, mne.channels.DigMontage):
        return spec
    if isinstance(spec, tuple):
        labels, pos = spec
        pos = np.asarray(pos, float)
        if pos.ndim != 2 or pos.shape[1] != 3 or pos.shape[0] != len(labels):
            raise ValueError(
                f"Montage positions must have shape (n_labels, 3) = ({len(labels)}, 3) in "
                f"metres; got {pos.shape}."
            )
        if np.abs(pos).max() > 1.0:
            raise ValueError(
                "Montage positions look like millimetres (values above 1 m); pass metres."
            )
        return mne.channels.make_dig_montage(
            ch_pos=dict(zip(labels, pos, strict=True)), coord_frame="head"
        )
    spec_str = str(spec)
    builtin = mne.channels.get_builtin_montages()
    lower = {b.lower(): b for b in builtin}
    if spec_str.lower() in lower:
        return mne.channels.make_standard_montage(lower[spec_str.lower()])
    renamed = {k.lower(): v for k, v in renamed_montages().items()}
    if spec_str.lower() in renamed and renamed[spec_str.lower()] in builtin:
        new = renamed[spec_str.lower()]
        logger.info("Montage %r is MNE's former name of %r (renamed in MNE 1.13); using %r.",
                    spec_str, new, new)
        return mne.channels.make_standard_montage(new)
    path = Path(spec_str).expanduser()
    if path.exists():
        try:
            return mne.channels.read_custom_montage(path)
        except Exception as err:
            raise ValueError(
                f"Could not read electrode positions from {str(path)!r}: {err}. Supported "
                "files are those mne.channels.read_custom_montage reads."
            ) from err
    raise ValueError(
        f"Unknown montage {spec_str!r}: it is neither an MNE standard montage nor an existing "
        f"file.{_suggest(spec_str, builtin)} Standard montages: {', '.join(builtin)}."
    )


#: MNE's former names of its template montages (MNE 1.13 renamed them; the old names are
#: still accepted by MNE 1.13 with a FutureWarning and by rtsource after MNE drops them).
RENAMED_MONTAGES: dict[str, str] = {
    "standard_1005": "colin27_1005",
    "standard_1020": "colin27_1020",
    "standard_alphabetic": "colin27_alphabetic",
    "standard_postfixed": "colin27_postfixed",
    "standard_prefixed": "colin27_prefixed",
    "standard_primed": "colin27_primed",
}


def renamed_montages() -> dict[str, str]:
    """Former montage name -> current name: MNE's own table where it has one, else
    :data:`RENAMED_MONTAGES`."""
    from mne.channels import montage as _mne_montage

    return {**RENAMED_MONTAGES,
            **getattr(_mne_montage, "_DEPRECATED_STANDARD_MONTAGES", {})}


def _suggest(name: str, builtin: list[str]) -> str:
    """Close matches, a former name's replacement first (never a montage whose positions
    differ, such as fsaverage_1020 for standard_1020, ahead of the real one)."""
    renamed = renamed_montages()
    old = difflib.get_close_matches(name, list(renamed), n=1, cutoff=0.6)
    items = [f"{renamed[old[0]]!r} (formerly {old[0]!r})"] if old else []
    items += [repr(m) for m in difflib.get_close_matches(name, builtin, n=4, cutoff=0.6)
              if not old or m != renamed[old[0]]]
    return f" Did you mean {', '.join(items)}?" if items else ""


def montage_label(spec: MontageSpec) -> str:
    """A short human-readable name for provenance metadata."""
    if isinstance(spec, tuple):
        return f"custom({len(spec[0])} channels)"
    if isinstance(spec, mne.channels.DigMontage):
        return f"DigMontage({len(spec.ch_names)} channels)"
    return str(spec)


def montage_info(montage: mne.channels.DigMontage, sfreq: float = 1000.0) -> mne.Info:
    """An EEG-only Info for ``montage`` with positions in the head frame."""
    info = mne.create_info(list(montage.ch_names), sfreq, "eeg")
    info.set_montage(montage, on_missing="raise", verbose=False)
    return info
