"""Offline source localisation on the same stages as ``rtsource run``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..config import Config, load_config
from ..headmodel.montage import MontageSpec
from .processing import SourceProcessor


@dataclass
class LocalizeResult:
    """What :func:`localize` returns.

    sources : (n_times, n_sources, 3) float32 current density vectors (head frame).
    positions_mni : (n_sources, 3) MNI152 millimetres.
    regions : (n_times, n_regions) float32 region activations.
    region_names : atlas labels, same order as the LSL outlet's channels.
    times : (n_times,) seconds.
    method : inverse method used.
    provenance : dict describing every stage.

    For Epochs, every array gains a leading epoch axis (each epoch is processed from a
    fresh filter state).
    """

    sources: np.ndarray
    positions_mni: np.ndarray
    regions: np.ndarray
    region_names: list[str]
    times: np.ndarray
    method: str
    provenance: dict[str, str] = field(default_factory=dict)


def _check_finite(data: np.ndarray, ch_names: Sequence[str]) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        chans = np.where(bad.any(axis=1))[0]
        parts = []
        for c in chans[:8]:
            idx = np.where(bad[c])[0]
            shown = ", ".join(str(i) for i in idx[:5]) + (" ..." if len(idx) > 5 else "")
            parts.append(f"{ch_names[c]} (samples {shown})")
        raise ValueError(
            f"Data contain NaN or Inf in {len(chans)} channel(s): {'; '.join(parts)}"
            f"{' ...' if len(chans) > 8 else ''}. Interpolate or drop these channels first.")


def localize(
    data,
    ch_names: Sequence[str] | None = None,
    sfreq: float | None = None,
    montage: MontageSpec | None = None,
    method: str = "eloreta",
    atlas: str | None = None,
    *,
    config: Config | str | Path | None = None,
    ch_types: Sequence[str] | None = None,
    on_missing: str = "raise",
    progress: bool = False,
) -> LocalizeResult:
    """Localise EEG offline with exactly the stages ``rtsource run`` uses, minus LSL.

    Parameters
    ----------
    data : (n_channels, n_times) array in volts, or an MNE Raw, Epochs or Evoked (EEG
        channels are picked; positions come from the object's montage unless ``montage``
        is given).
    ch_names : channel labels (arrays only).
    sfreq : sampling rate in Hz (arrays only).
    montage : standard montage name, electrode file, DigMontage or (labels, positions).
    method : "eloreta", "sloreta", "dspm", "mne" or "piunet".
    atlas : "bn246" (default), "aal3", "hcpex" or a labelled NIfTI path.
    config : a Config or TOML path; ``method``/``atlas``/``montage`` override it. Its
        filter settings apply here as in the live pipeline (set them to None to disable).
    on_missing : "raise" or "drop" EEG channels that are not in the montage.
    """
    cfg = config if isinstance(config, Config) else load_config(config)
    valid = ("eloreta", "sloreta", "dspm", "mne", "piunet")
    if method not in valid:
        raise ValueError(f"method={method!r} is not valid; choose one of {list(valid)}.")
    cfg = dataclasses.replace(
        cfg, inverse=dataclasses.replace(cfg.inverse, method=method),
        regions=dataclasses.replace(cfg.regions, atlas=atlas or cfg.regions.atlas))

    epochs_axis = False
    t0 = 0.0
    if hasattr(data, "info") and hasattr(data, "get_data"):
        import mne

        inst = data.copy().pick("eeg")
        if montage is None:
            dig = inst.get_montage()
            if dig is None:
                raise ValueError("The MNE object has no electrode positions; pass montage=... "
                                 "(e.g. 'standard_1005' or an electrode file).")
            montage = dig
        ch_names, sfreq = inst.ch_names, inst.info["sfreq"]
        if isinstance(inst, mne.BaseEpochs):
            arrays = inst.get_data()  # (n_epochs, n_ch, n_times)
            epochs_axis = True
        else:
            arrays = inst.get_data()[None]
        t0 = float(inst.times[0])
    else:
        arr = np.asarray(data)
        if ch_names is None or sfreq is None:
            raise ValueError("With an array, pass ch_names=[...] and sfreq=... as well.")
        n = len(ch_names)
        if arr.ndim != 2 or arr.shape[0] != n:
            hint = (" It looks transposed: pass data.T." if arr.ndim == 2 and arr.shape[1] == n
                    else "")
            raise ValueError(f"data must have shape (n_channels, n_times) = ({n}, n_times) for "
                             f"{n} channel names; got {arr.shape}.{hint}")
        arrays = arr[None]
        if montage is None:
            montage = cfg.headmodel.montage
    for a in arrays:
        _check_finite(a, ch_names)

    proc = SourceProcessor(cfg, ch_names, sfreq, ch_types=ch_types, montage=montage,
                           on_missing=on_missing, progress=progress)
    srcs, regs = [], []
    for a in arrays:
        proc.reset()
        s, r = proc.process(np.ascontiguousarray(a.T, dtype=np.float32))
        srcs.append(s.copy())
        regs.append(r.copy())
    sources, regions = np.stack(srcs), np.stack(regs)
    if not epochs_axis:
        sources, regions = sources[0], regions[0]
    times = t0 + np.arange(arrays.shape[-1]) / float(sfreq)
    return LocalizeResult(sources=sources, positions_mni=proc.headmodel.src_pos_mni,
                          regions=regions, region_names=list(proc.regions.names), times=times,
                          method=method, provenance=proc.provenance())
