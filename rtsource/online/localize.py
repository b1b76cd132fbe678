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

from .._util import close_matches, logger, stable_hash, unit_to_volts
from ..config import Config, from_dict, load_config
from ..headmodel.grid import SourceGrid
from ..headmodel.montage import MontageSpec
from .inputs import MICROVOLT_GUESS, data_units, restate_mne_units
from .mne_out import mne_context
from .processing import SourceProcessor
from .quality import SignalCheck

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
    method : the method used (``"eloreta"``, ..., ``"piunet"``, ``"temporal"``).
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
    method : ``"eloreta"``, ``"sloreta"``, ``"dspm"``, ``"mne"``, ``"piunet"`` (eLORETA
        refined by 3D-PIUNet; Morik et al., IEEE TMI 2025) or ``"temporal"`` (eLORETA node
        vectors through the causal conv-recurrent network: BN246 cortical and thalamic time
        courses at the network's rate, 250 Hz; ``times`` are then the kept samples' and
        ``sources`` stay eLORETA's). None: the config's.
    atlas : ``"bn246"`` (default), ``"aal3"``, ``"hcpex"`` or a labelled NIfTI path.
    config : a Config, TOML path or dict of sections; ``method``/``atlas``/``montage``
        override it.
    ch_types : channel types (None: all EEG).
    on_missing : ``"raise"`` or ``"drop"`` EEG channels that are not in the montage.
    exclude : channels left out (bad channels), as MNE's ``info["bads"]``; recorded in
        the provenance.
    units : ``"auto"`` (default: volts, unless the values can only be microvolts, median
        |x| > 0.5, which are converted with a warning) or the data's unit (``"V"``,
        ``"mV"``, ``"uV"``); a stated unit the values contradict raises.
    filters : apply the config's ``[stream]`` band-pass and notch (the live path's causal
        filters, from the first sample's steady state) to each array. Default False: data
        given offline are usually filtered already (MNE Raw/Epochs/Evoked); filtering a
        short window from a fresh state distorts it. A warning says when the data are
        too short for the high-pass to settle.
    progress : progress bars while a head model or kernel is built the first time.

    Raises
    ------
    ValueError
        For an invalid method, atlas, unit or setting (the message names it), excluded
        channels that are not in ``ch_names``, or channels missing from the montage with
        ``on_missing="raise"``.

    Notes
    -----
    Every array passes the live path's signal check (:class:`~.quality.SignalCheck`: flat
    runs, channels stuck at a rail, the device range ``stream.saturation_uv``). Bad
    channels raise a ValueError naming them and the times, unless
    ``config["stream"]["bad_data"] == "exclude"``, which leaves them out with a warning.

    Examples
    --------
    >>> loc = Localizer(ch_names, 500.0, montage="biosemi64", method="eloreta")
    >>> for x in windows:          # (n_channels, n_times) arrays in volts
    ...     res = loc.apply(x)     # one matrix product per window, no re-preparation
    """

    def __init__(self, ch_names: Sequence[str], sfreq: float,
                 montage: MontageSpec | None = None, method: str | None = None,
                 atlas: str | None = None, *, config: Config | str | Path | dict | None = None,
                 ch_types: Sequence[str] | None = None, on_missing: str = "raise",
                 exclude: Sequence[str] = (), units: str = "auto", filters: bool = False,
                 progress: bool = False) -> None:
        if not isinstance(filters, bool):
            raise ValueError(f"filters = {filters!r} must be True or False.")
        self.cfg = _config(config, method, atlas, filters)
        self.filters = filters
        if isinstance(ch_names, str):
            raise ValueError(f"ch_names = {ch_names!r} must be a list of channel labels, one per "
                             "row of the data.")
        self.ch_names = list(ch_names)
        counts = Counter(c.lower() for c in self.ch_names)  # montages match labels by case
        dups = sorted({c for c in self.ch_names if counts[c.lower()] > 1})
        if dups:
            raise ValueError(f"Channel labels {dups} occur more than once in ch_names; every "
                             "row of the data needs its own label.")
        if isinstance(exclude, str):
            raise ValueError(f"exclude = {exclude!r} must be a list of channel labels.")
        lower = {c.lower(): c for c in self.ch_names}
        unknown = [c for c in exclude if c.lower() not in lower]
        if unknown:
            raise ValueError(f"exclude names {unknown}, which are not in ch_names; give labels "
                             f"of the data's rows.{close_matches(unknown[0], self.ch_names)}")
        self.exclude = [lower[c.lower()] for c in exclude]
        if not (isinstance(units, str) and (units.strip().lower() == "auto"
                                            or unit_to_volts(units) is not None)):
            raise ValueError(f"units = {units!r} is not valid; give 'auto' or a voltage unit "
                             "('V', 'mV', 'uV').")
        self.units = units
        self.sfreq = float(sfreq)
        self._types = list(ch_types) if ch_types is not None else ["eeg"] * len(self.ch_names)
        self._montage = montage if montage is not None else self.cfg.headmodel.montage
        self._on_missing = on_missing
        self._progress = progress
        self._procs: dict[frozenset[str], SourceProcessor] = {}
        self.processor = self._processor(frozenset(self.exclude))
        if self.exclude:
            logger.info("Channels left out (bad): %s.", ", ".join(self.exclude))

    def _processor(self, excluded: frozenset[str]) -> SourceProcessor:
        """The chain without the ``excluded`` channels (built once per set)."""
        proc = self._procs.get(excluded)
        if proc is None:
            types = ["bad" if c in excluded else t
                     for c, t in zip(self.ch_names, self._types, strict=True)]
            proc = SourceProcessor(self.cfg, self.ch_names, self.sfreq, ch_types=types,
                                   montage=self._montage, on_missing=self._on_missing,
                                   progress=self._progress)
            self._procs[excluded] = proc
        return proc

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
        """Localise ``data`` with the prepared stages (each array or epoch on its own).

        Parameters
        ----------
        data : (n_channels, n_times) or (n_epochs, n_channels, n_times) real array, rows
            in the order of ``ch_names``, in volts (or the ``units`` given).
        t0 : time of the first sample in seconds (for ``times``).

        Returns
        -------
        LocalizeResult

        Raises
        ------
        ValueError
            For a wrong shape (a transposed array is named as such), NaN/Inf samples,
            units the values contradict, or flat or saturated channels (named, with
            times; see the class notes).
        """
        arr = np.asarray(data)
        self.check_shape(arr, self.ch_names)
        epochs_axis = arr.ndim == 3
        if arr.shape[-1] == 0:
            raise ValueError(f"data has no samples (shape {arr.shape}); give at least one.")
        if np.iscomplexobj(arr):
            raise ValueError("data are complex; give real-valued EEG in volts.")
        arrays = arr if epochs_axis else arr[None]
        proc = self.processor
        used = proc.mapper.mapping.stream_index
        for i, a in enumerate(arrays):
            _check_finite(a[used], [self.ch_names[c] for c in used], i if epochs_axis else None)
        factor, units_text = data_units(self.units, arrays[:, used], "units")
        if factor != 1.0:
            arrays = arrays * factor
            if self.units.strip().lower() == "auto":
                logger.warning("The data look like microvolts, not volts (median |x| > %g); "
                               "they are converted (x 1e-6). Pass units='uV' to say so, or "
                               "units='V' if they really are volts.", MICROVOLT_GUESS)
        proc, quality = self._checked(arrays, proc, t0)
        n_in = arrays.shape[-1]
        if self.filters:
            self._warn_short(n_in)
        # the temporal network runs at its own rate: one sample in `decimate`, chosen as the
        # live scheduler does ((k + 1) % decimate == 0)
        n_dec = proc.decimate
        keep = None if n_dec == 1 else np.arange(n_dec - 1, n_in, n_dec)
        n_t = n_in if keep is None else len(keep)
        sources = np.empty((len(arrays), n_t, proc.headmodel.n_sources, 3), np.float32)
        regions = np.empty((len(arrays), n_t, proc.regions.n_regions), np.float32)
        for i, a in enumerate(arrays):
            proc.reset()
            s, r = proc.process(np.ascontiguousarray(a.T, dtype=np.float32), keep=keep)
            sources[i], regions[i] = s, r
        if not epochs_axis:
            sources, regions = sources[0], regions[0]
        excluded = sorted(set(self.ch_names) - {self.ch_names[c] for c in
                                                 proc.mapper.mapping.stream_index}
                          & (set(self.exclude) | set(quality.get("excluded", []))))
        prov = {**proc.provenance(), "units": units_text,
                "filters_applied": (proc.provenance()["filters"] if self.filters else
                                    "none (offline default; filters=True applies the config's)"),
                "excluded_channels": ", ".join(excluded) or "none",
                "signal_check": quality["text"]}
        return LocalizeResult(
            sources=sources, positions_mni=proc.headmodel.src_pos_mni, regions=regions,
            region_names=list(proc.regions.names),
            times=t0 + (np.arange(n_t) if keep is None else keep) / self.sfreq,
            method=self.method, provenance=prov, grid=self.grid,
            sfreq=self.sfreq / n_dec)

    @property
    def grid(self) -> SourceGrid:
        """The source grid of the prepared head model as a volume."""
        if getattr(self, "_grid", None) is None:
            self._grid = SourceGrid.from_headmodel(self.processor.headmodel)
        return self._grid

    def _checked(self, arrays: np.ndarray, proc: SourceProcessor, t0: float
                 ) -> tuple[SourceProcessor, dict[str, Any]]:
        """The live path's signal check on every array; bad channels raise or (policy
        ``exclude``) are left out."""
        used = proc.mapper.mapping.stream_index
        names = [self.ch_names[c] for c in used]
        check = SignalCheck(names, self.sfreq, flat_uv=self.cfg.stream.flat_uv,
                            flat_s=self.cfg.stream.flat_s, clip_s=self.cfg.stream.clip_s,
                            range_uv=self.cfg.stream.saturation_uv)
        bad: dict[str, str] = {}
        refs: set[str] = set()
        for i, a in enumerate(arrays):
            check.reset()
            rep = check(np.ascontiguousarray(a[used].T))
            refs.update(check.reference_channels)
            where = f" (epoch {i})" if len(arrays) > 1 else ""
            for ch in rep.flat:
                bad.setdefault(ch, f"{ch} flat{where}")
            for ch, idx in rep.saturated.items():
                bad.setdefault(ch, f"{ch} saturated{where} at {t0 + idx[0] / self.sfreq:.3f}-"
                               f"{t0 + idx[-1] / self.sfreq:.3f} s")
        text = "ok" if not bad else "bad: " + "; ".join(bad.values())
        if refs:
            logger.info("Channels %s are exactly zero: taken as the recording reference and "
                        "kept.", ", ".join(sorted(refs)))
            text += f"; reference (all zero, kept): {', '.join(sorted(refs))}"
        if not bad:
            return proc, {"text": text}
        if self.cfg.stream.bad_data != "exclude":
            raise ValueError(
                f"Bad channels (the live path's rule; stream.flat_s, stream.clip_s, "
                f"stream.saturation_uv): {'; '.join(bad.values())}. Leave them out with "
                f"exclude={sorted(bad)!r} (rtsource localize: --bads {','.join(sorted(bad))}), "
                "or set config={'stream': {'bad_data': 'exclude'}} (--bad-data exclude) to "
                "leave such channels out automatically.")
        logger.warning("Leaving out bad channels (stream.bad_data = 'exclude'): %s.",
                       "; ".join(bad.values()))
        return (self._processor(frozenset(self.exclude) | frozenset(bad)),
                {"text": text + " (left out)", "excluded": list(bad)})

    def _warn_short(self, n_t: int) -> None:
        hp = self.cfg.stream.highpass_hz
        if hp is None:
            return
        settle_s = 3.0 / hp  # a few time constants of the high-pass
        if n_t / self.sfreq < settle_s:
            logger.warning(
                "filters=True on %.3g s of data: the %g Hz high-pass needs about %.3g s to "
                "settle, so the output carries the filter's start-up. Filter the whole "
                "recording first (e.g. MNE's raw.filter) and pass filters=False.",
                n_t / self.sfreq, hp, settle_s)


def _config(config: Config | str | Path | dict | None, method: str | None,
            atlas: str | None, filters: bool = True) -> Config:
    if isinstance(config, dict):  # sections as in a TOML file
        cfg = from_dict(Config, config)
    else:
        cfg = config if isinstance(config, Config) else load_config(config)
    cfg = cfg.with_method(method)
    if atlas is not None:
        cfg = dataclasses.replace(cfg, regions=dataclasses.replace(cfg.regions, atlas=atlas))
    if not filters:
        cfg = dataclasses.replace(cfg, stream=dataclasses.replace(
            cfg.stream, highpass_hz=None, lowpass_hz=None, notch_hz=None))
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
    config: Config | str | Path | dict | None = None,
    ch_types: Sequence[str] | None = None,
    on_missing: str = "raise",
    exclude: Sequence[str] | str = "bads",
    units: str = "auto",
    filters: bool = False,
    progress: bool = False,
) -> LocalizeResult:
    """Localise EEG offline with exactly the stages ``rtsource run`` uses, minus LSL.

    The stages are prepared once per layout (channels, rate, montage, settings) and kept
    in a bounded cache (:data:`CACHE_SIZE` layouts; :func:`clear_cache`), so later calls
    on the same layout cost one apply. To control preparation yourself, use
    :class:`Localizer`.

    Parameters
    ----------
    data : (n_channels, n_times) or (n_epochs, n_channels, n_times) array in volts (or
        ``units``), or an MNE Raw, Epochs or Evoked (EEG channels are picked; positions
        come from the object's montage unless ``montage`` is given).
    ch_names : channel labels (arrays only).
    sfreq : sampling rate in Hz (arrays only).
    montage : standard montage name, electrode file, DigMontage or (labels, positions).
    method : "eloreta", "sloreta", "dspm", "mne", "piunet" (eLORETA refined by
        3D-PIUNet) or "temporal" (BN246 cortical and thalamic time courses from the temporal
        network, at its rate). None: the config's (default eloreta).
    atlas : "bn246" (default), "aal3", "hcpex" or a labelled NIfTI path.
    config : a Config, TOML path or dict of sections; ``method``/``atlas``/``montage``
        override it.
    ch_types : channel types (arrays only; None: all EEG).
    on_missing : "raise" or "drop" EEG channels that are not in the montage.
    exclude : ``"bads"`` (default: an MNE object's ``info["bads"]`` are left out, as MNE
        does), ``()`` to keep every channel, or a list of labels to leave out.
    units : "auto" (arrays: volts unless the values can only be microvolts, converted
        with a warning; MNE objects: volts, MNE's unit) or the data's unit ("V", "mV",
        "uV"); a stated unit the values contradict raises, naming the factor.
    filters : apply the config's ``[stream]`` causal band-pass and notch, as the live path
        does (default False: offline data are filtered by the user, e.g. MNE's
        ``raw.filter``). The provenance says what was applied.
    progress : progress bars while a head model or kernel is built the first time.

    Returns
    -------
    LocalizeResult

    Raises
    ------
    ValueError
        For invalid settings (named), a wrong shape, NaN/Inf samples, units the values
        contradict, flat or saturated channels (named, with times: leave them out with
        ``exclude``), or channels missing from the montage.
    """
    t0 = 0.0
    context = None
    if isinstance(exclude, str) and exclude != "bads":
        raise ValueError(f"exclude = {exclude!r} must be 'bads', () or a list of labels.")
    if hasattr(data, "info") and hasattr(data, "get_data"):
        inst = data.copy().pick("eeg")
        dig = None
        if montage is None:
            dig = inst.get_montage()
            if dig is None:
                raise ValueError("The MNE object has no electrode positions; pass montage=... "
                                 "(e.g. 'colin27_1005', MNE's 10-05 template, or an "
                                 "electrode file; rtsource localize: --montage).")
            montage = dig
        excluded = list(inst.info["bads"]) if exclude == "bads" else list(exclude)
        if dig is not None:  # the object's own positions: some channels may lack one
            inst = _drop_unpositioned(inst, dig, excluded, on_missing)
            montage = inst.get_montage()
        ch_names, sfreq = inst.ch_names, inst.info["sfreq"]
        arrays = inst.get_data()
        t0 = float(inst.times[0])
        ch_types = None
        excluded = [c for c in excluded if c in inst.ch_names]
        mne_volts = units == "auto"
        units = "V" if mne_volts else units  # MNE stores volts
        if filters:
            _warn_refilter(inst.info, config)
        context = mne_context(data)
    else:
        mne_volts = False
        arrays = np.asarray(data)
        if ch_names is None or sfreq is None:
            raise ValueError("With an array, pass ch_names=[...] and sfreq=... as well.")
        if isinstance(ch_names, str) or arrays.ndim not in (2, 3) or (
                arrays.shape[-2] != len(ch_names)):
            Localizer.check_shape(arrays, ch_names)
        excluded = [] if exclude == "bads" else list(exclude)
    cfg = _config(config, method, atlas, filters)
    if montage is None:
        montage = cfg.headmodel.montage
    key = stable_hash(dataclasses.asdict(cfg), list(ch_names), float(sfreq),
                      list(ch_types) if ch_types is not None else None,
                      _montage_key(montage), on_missing, sorted(excluded), units, filters)
    loc = _CACHE.get(key)
    if loc is None:
        loc = Localizer(ch_names, float(sfreq), montage, config=cfg, ch_types=ch_types,
                        on_missing=on_missing, exclude=excluded, units=units, filters=filters,
                        progress=progress)
        _CACHE[key] = loc
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
    else:
        _CACHE.move_to_end(key)
    try:
        res = loc.apply(arrays, t0=t0)
    except ValueError as err:
        if mne_volts:  # the user never said 'V': MNE did
            raise restate_mne_units(err) from None
        raise
    res.mne_context = context  # events and times of an MNE input (regions_to_mne)
    return res


def _drop_unpositioned(inst: Any, dig: Any, excluded: list[str], on_missing: str) -> Any:
    """EEG channels of an MNE object without a position in its own montage ``dig``
    (BioSemi's EXG channels typed EEG, say): left out when excluded or with
    ``on_missing="drop"``, else a ValueError naming them."""
    pos = dig.get_positions()["ch_pos"]
    have = {k for k, v in pos.items() if np.all(np.isfinite(v)) and np.any(v != 0)}
    missing = [c for c in inst.ch_names if c not in have]
    if not missing:
        return inst
    bad = [c for c in missing if c not in excluded]
    if bad and on_missing != "drop":
        raise ValueError(
            f"EEG channels {bad} have no electrode position in the montage. Leave them out "
            f"(exclude=[...] or info['bads']; rtsource localize: --bads "
            f"{','.join(bad)}), give them their type (raw.set_channel_types, e.g. 'misc' "
            "for EXG/EOG), or pass on_missing='drop' (--drop-missing).")
    if bad:
        logger.warning("EEG channels without a position are left out: %s.", ", ".join(bad))
    return inst.copy().drop_channels(missing)


def _warn_refilter(info: Any, config: Any) -> None:
    """Warn when ``filters=True`` filters an MNE object a second time."""
    hp, lp = float(info.get("highpass") or 0.0), float(info.get("lowpass") or 0.0)
    if hp > 0 or (lp and lp < info["sfreq"] / 2 - 1e-6):
        logger.warning("filters=True filters data that are already filtered (info['highpass'] "
                       "= %g Hz, info['lowpass'] = %g Hz) a second time; pass filters=False "
                       "to use them as they are.", hp, lp)
