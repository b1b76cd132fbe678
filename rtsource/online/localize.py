"""Offline source localisation on the same stages as ``rtsource run``, prepared once.

In MNE's prepare/apply spirit (``prepare_inverse_operator`` then ``apply_inverse_raw``):
:class:`Localizer` builds every stage once for one channel layout (head model, kernel,
filters, [network on its engine], regions) and :meth:`Localizer.apply` maps many arrays,
epochs or evoked responses through them. :func:`localize` is the one-call form; it keeps
the prepared :class:`Localizer` of the last few layouts in a bounded, process-wide cache,
so repeated calls on the same layout cost one apply.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .._util import stable_hash
from ..config import Config, from_dict, load_config
from ..headmodel.grid import SourceGrid
from ..headmodel.montage import MontageSpec
from .mne_out import mne_context
from .processing import SourceProcessor

if TYPE_CHECKING:
    import mne

__all__ = ["LocalizeResult", "Localizer", "clear_cache", "localize"]

#: Prepared layouts kept by :func:`localize` (each holds a kernel of a few MB).
CACHE_SIZE = 8
_CACHE: OrderedDict[str, Localizer] = OrderedDict()


@dataclass
class LocalizeResult:
    """What :func:`localize` and :meth:`Localizer.apply` return.

    sources : (n_times, n_sources, 3) float32 current density vectors (head frame, A·m).
    positions_mni : (n_sources, 3) MNI152 millimetres.
    regions : (n_times, n_regions) float32 region activations.
    region_names : atlas labels, same order as the LSL outlet's channels.
    times : (n_times,) seconds.
    method : the method used (``"eloreta"``, ..., ``"piunet"``).
    provenance : dict describing every stage.

    For Epochs (or a 3-D array), ``sources`` and ``regions`` gain a leading epoch axis
    (each epoch is processed from a fresh filter state).
    """

    sources: np.ndarray
    positions_mni: np.ndarray
    regions: np.ndarray
    region_names: list[str]
    times: np.ndarray
    method: str
    provenance: dict[str, str] = field(default_factory=dict)
    #: the source grid as a volume (:class:`~rtsource.headmodel.grid.SourceGrid`)
    grid: SourceGrid | None = None
    #: sampling rate in Hz
    sfreq: float | None = None
    #: what an MNE input carried that :meth:`regions_to_mne` keeps (events, times...)
    mne_context: dict[str, Any] | None = None

    def source_spaces(self) -> mne.SourceSpaces:
        """The source grid as an ``mne.SourceSpaces`` (one volume, fsaverage MRI frame);
        see :func:`rtsource.online.mne_out.source_spaces`."""
        from .mne_out import source_spaces

        return source_spaces(self)

    def to_stc(self, *, vector: bool = False, subject: str = "fsaverage"
               ) -> mne.VolSourceEstimate | mne.VolVectorSourceEstimate | list:
        """The sources as an MNE volume source estimate (a list for epochs); see
        :func:`rtsource.online.mne_out.to_stc`."""
        from .mne_out import to_stc

        return to_stc(self, vector=vector, subject=subject)

    def regions_to_mne(self) -> mne.io.RawArray | mne.EpochsArray | mne.EvokedArray:
        """Region time courses as an MNE Raw/Epochs/Evoked (``misc`` channels); see
        :func:`rtsource.online.mne_out.regions_to_mne`."""
        from .mne_out import regions_to_mne

        return regions_to_mne(self)


def _check_finite(data: np.ndarray, ch_names: Sequence[str], epoch: int | None = None
                  ) -> None:
    bad = ~np.isfinite(data)
    if bad.any():
        chans = np.where(bad.any(axis=1))[0]
        parts = []
        for c in chans[:8]:
            idx = np.where(bad[c])[0]
            shown = ", ".join(str(i) for i in idx[:5]) + (" ..." if len(idx) > 5 else "")
            parts.append(f"{ch_names[c]} (samples {shown})")
        where = f" in epoch {epoch}" if epoch is not None else ""
        raise ValueError(
            f"Data contain NaN or Inf{where} in {len(chans)} channel(s): {'; '.join(parts)}"
            f"{' ...' if len(chans) > 8 else ''}. Interpolate or drop these channels first.")


class Localizer:
    """Every stage prepared once for one channel layout; :meth:`apply` to many data.

    Parameters
    ----------
    ch_names : sequence of str
        Channel labels, in the order of the data's rows.
    sfreq : float
        Sampling rate in Hz.
    montage : standard montage name, electrode file, DigMontage or (labels, positions in
        metres); default ``config.headmodel.montage``.
    method : ``"eloreta"``, ``"sloreta"``, ``"dspm"``, ``"mne"`` or ``"piunet"`` (eLORETA
        refined by 3D-PIUNet; Morik et al., IEEE TMI 2025). None: the config's.
    atlas : ``"bn246"`` (default), ``"aal3"``, ``"hcpex"`` or a labelled NIfTI path.
    config : a Config or TOML path; ``method``/``atlas``/``montage`` override it. Its
        filter settings apply here as in the live pipeline (set them to None to disable).
    ch_types : channel types (None: all EEG).
    on_missing : ``"raise"`` or ``"drop"`` EEG channels that are not in the montage.
    progress : progress bars while a head model or kernel is built the first time.

    Raises
    ------
    ValueError
        For an invalid method, atlas or setting (the message names it), or channels missing
        from the montage with ``on_missing="raise"``.

    Examples
    --------
    >>> loc = Localizer(ch_names, 500.0, montage="biosemi64", method="eloreta")
    >>> for x in windows:          # (n_channels, n_times) arrays in volts
    ...     res = loc.apply(x)     # one matrix product per window, no re-preparation
    """

    def __init__(self, ch_names: Sequence[str], sfreq: float,
                 montage: MontageSpec | None = None, method: str | None = None,
                 atlas: str | None = None, *, config: Config | str | Path | None = None,
                 ch_types: Sequence[str] | None = None, on_missing: str = "raise",
                 progress: bool = False) -> None:
        self.cfg = _config(config, method, atlas)
        if isinstance(ch_names, str):
            raise ValueError(f"ch_names = {ch_names!r} must be a list of channel labels, one per "
                             "row of the data.")
        self.ch_names = list(ch_names)
        counts = Counter(c.lower() for c in self.ch_names)  # montages match labels by case
        dups = sorted({c for c in self.ch_names if counts[c.lower()] > 1})
        if dups:
            raise ValueError(f"Channel labels {dups} occur more than once in ch_names; every "
                             "row of the data needs its own label.")
        self.sfreq = float(sfreq)
        self.processor = SourceProcessor(
            self.cfg, self.ch_names, self.sfreq, ch_types=ch_types,
            montage=montage if montage is not None else self.cfg.headmodel.montage,
            on_missing=on_missing,
            progress=progress)

    @property
    def method(self) -> str:
        return self.cfg.method

    @staticmethod
    def check_shape(arr: np.ndarray, ch_names: Sequence[str]) -> None:
        """Raise a ValueError unless ``arr`` is (n_channels, n_times) or (n_epochs,
        n_channels, n_times) for ``ch_names`` (a transposed array is named as such)."""
        if isinstance(ch_names, str):
            raise ValueError(f"ch_names = {ch_names!r} must be a list of channel labels, one "
                             "per row of the data.")
        n = len(ch_names)
        if arr.ndim not in (2, 3) or arr.shape[-2] != n:
            hint = (" It looks transposed: pass data.T." if arr.ndim == 2 and arr.shape[1] == n
                    else "")
            raise ValueError(f"data must have shape (n_channels, n_times) = ({n}, n_times) "
                             f"(or (n_epochs, {n}, n_times)) for {n} channel names; got "
                             f"{arr.shape}.{hint}")

    def apply(self, data: np.ndarray, t0: float = 0.0) -> LocalizeResult:
        """Localise ``data`` with the prepared stages (filters start from a fresh state).

        Parameters
        ----------
        data : (n_channels, n_times) or (n_epochs, n_channels, n_times) float array in
            volts, rows in the order of ``ch_names``.
        t0 : time of the first sample in seconds (for ``times``).

        Returns
        -------
        LocalizeResult

        Raises
        ------
        ValueError
            For a wrong shape (a transposed array is named as such) or NaN/Inf samples.
        """
        arr = np.asarray(data)
        self.check_shape(arr, self.ch_names)
        epochs_axis = arr.ndim == 3
        if arr.shape[-1] == 0:
            raise ValueError(f"data has no samples (shape {arr.shape}); give at least one.")
        if np.iscomplexobj(arr):
            raise ValueError("data are complex; give real-valued EEG in volts.")
        arrays = arr if epochs_axis else arr[None]
        for i, a in enumerate(arrays):
            _check_finite(a, self.ch_names, i if epochs_axis else None)
        proc = self.processor
        n_t = arrays.shape[-1]
        sources = np.empty((len(arrays), n_t, proc.headmodel.n_sources, 3), np.float32)
        regions = np.empty((len(arrays), n_t, proc.regions.n_regions), np.float32)
        for i, a in enumerate(arrays):
            proc.reset()
            s, r = proc.process(np.ascontiguousarray(a.T, dtype=np.float32))
            sources[i], regions[i] = s, r
        if not epochs_axis:
            sources, regions = sources[0], regions[0]
        return LocalizeResult(
            sources=sources, positions_mni=proc.headmodel.src_pos_mni, regions=regions,
            region_names=list(proc.regions.names), times=t0 + np.arange(n_t) / self.sfreq,
            method=self.method, provenance=proc.provenance(), grid=self.grid,
            sfreq=self.sfreq)

    @property
    def grid(self) -> SourceGrid:
        """The source grid of the prepared head model as a volume."""
        if getattr(self, "_grid", None) is None:
            self._grid = SourceGrid.from_headmodel(self.processor.headmodel)
        return self._grid


def _config(config: Config | str | Path | dict | None, method: str | None,
            atlas: str | None) -> Config:
    if isinstance(config, dict):  # sections as in a TOML file
        cfg = from_dict(Config, config)
    else:
        cfg = config if isinstance(config, Config) else load_config(config)
    cfg = cfg.with_method(method)
    if atlas is not None:
        cfg = dataclasses.replace(cfg, regions=dataclasses.replace(cfg.regions, atlas=atlas))
    return cfg


def _montage_key(montage: Any) -> Any:
    """Something hashable that changes when the electrode positions do."""
    if montage is None or isinstance(montage, str | Path):
        return str(montage)
    if hasattr(montage, "get_positions"):  # DigMontage
        pos = montage.get_positions()
        ch = pos["ch_pos"]
        h = hashlib.sha256()
        for name, xyz in ch.items():
            h.update(name.encode())
            h.update(np.asarray(xyz, np.float64).tobytes())
        h.update(str(pos.get("coord_frame")).encode())
        return h.hexdigest()
    labels, positions = montage
    return stable_hash(list(labels), np.asarray(positions, np.float64).tobytes().hex())


def clear_cache() -> None:
    """Forget the layouts :func:`localize` prepared (they are rebuilt, from the disk cache
    of head models and kernels, on the next call)."""
    _CACHE.clear()


def localize(
    data: Any,
    ch_names: Sequence[str] | None = None,
    sfreq: float | None = None,
    montage: MontageSpec | None = None,
    method: str | None = None,
    atlas: str | None = None,
    *,
    config: Config | str | Path | None = None,
    ch_types: Sequence[str] | None = None,
    on_missing: str = "raise",
    progress: bool = False,
) -> LocalizeResult:
    """Localise EEG offline with exactly the stages ``rtsource run`` uses, minus LSL.

    The stages are prepared once per layout (channels, rate, montage, settings) and kept
    in a bounded cache (:data:`CACHE_SIZE` layouts; :func:`clear_cache`), so later calls
    on the same layout cost one apply. To control preparation yourself, use
    :class:`Localizer`.

    Parameters
    ----------
    data : (n_channels, n_times) or (n_epochs, n_channels, n_times) array in volts, or an
        MNE Raw, Epochs or Evoked (EEG channels are picked; positions come from the object's
        montage unless ``montage`` is given).
    ch_names : channel labels (arrays only).
    sfreq : sampling rate in Hz (arrays only).
    montage : standard montage name, electrode file, DigMontage or (labels, positions).
    method : "eloreta", "sloreta", "dspm", "mne" or "piunet" (eLORETA refined by
        3D-PIUNet). None: the config's (default eloreta).
    atlas : "bn246" (default), "aal3", "hcpex" or a labelled NIfTI path.
    config : a Config or TOML path; ``method``/``atlas``/``montage`` override it. Its
        filter settings apply here as in the live pipeline (set them to None to disable).
    ch_types : channel types (arrays only; None: all EEG).
    on_missing : "raise" or "drop" EEG channels that are not in the montage.
    progress : progress bars while a head model or kernel is built the first time.

    Returns
    -------
    LocalizeResult

    Raises
    ------
    ValueError
        For invalid settings (named), a wrong shape, NaN/Inf samples, or channels missing
        from the montage.
    """
    cfg = _config(config, method, atlas)
    t0 = 0.0
    context = None
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
        arrays = inst.get_data() if isinstance(inst, mne.BaseEpochs) else inst.get_data()
        t0 = float(inst.times[0])
        ch_types = None
        context = mne_context(data)
    else:
        arrays = np.asarray(data)
        if ch_names is None or sfreq is None:
            raise ValueError("With an array, pass ch_names=[...] and sfreq=... as well.")
        if isinstance(ch_names, str) or arrays.ndim not in (2, 3) or (
                arrays.shape[-2] != len(ch_names)):
            Localizer.check_shape(arrays, ch_names)
    if montage is None:
        montage = cfg.headmodel.montage
    key = stable_hash(dataclasses.asdict(cfg), list(ch_names), float(sfreq),
                      list(ch_types) if ch_types is not None else None,
                      _montage_key(montage), on_missing)
    loc = _CACHE.get(key)
    if loc is None:
        loc = Localizer(ch_names, float(sfreq), montage, config=cfg, ch_types=ch_types,
                        on_missing=on_missing, progress=progress)
        _CACHE[key] = loc
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    res = loc.apply(arrays, t0=t0)
    res.mne_context = context  # events and times of an MNE input (regions_to_mne)
    return res
