"""Preprocessing stages on (n_samples, n_channels) float32 chunks as pulled from LSL.

Each stage precomputes in its constructor and has a cheap call:

* :class:`ChannelMapper`: pick and reorder the stream's EEG channels into the head
  model's channel order (labels matched case-insensitively, with 10-20 aliases).
* :class:`CausalFilter`: Butterworth band-pass and notch as second-order sections whose
  state carries across chunks (chunked output equals whole-signal output).
* :func:`average_reference`: in-place common average reference.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import DTypeLike, NDArray
from scipy import signal

from .._util import close_matches, logger
from ..config import StreamConfig
from ..stream.lslio import EEG_TYPES, NON_EEG_TYPES  # noqa: F401 (re-exported)

#: Old 10-20 names and their 10-10 equivalents (both directions are tried).
DEFAULT_ALIASES: dict[str, str] = {
    "T3": "T7",
    "T4": "T8",
    "T5": "P7",
    "T6": "P8",
}

_PREFIX = re.compile(r"^(eeg)[\s_\-:]+", re.IGNORECASE)
_SUFFIX = re.compile(r"[\s_\-]+(ref|le|ar|avg|a1a2|a1|a2|m1m2|m1|m2)$", re.IGNORECASE)
_ANY_SUFFIX = re.compile(r"^(.+?)[\s_]*-[\s_]*([A-Za-z0-9]+)$")


def _clean(label: str) -> str:
    """Surrounding space and EDF's padding dots removed (``"Fc5."`` -> ``"Fc5"``)."""
    return label.strip().rstrip(".").strip()


def normalize_label(label: str) -> str:
    """Canonical lower-case key for one channel label.

    Strips surrounding space, trailing dots (EDF files pad labels with them: ``"Fc5."``,
    ``"Cz.."``), an ``"EEG "`` prefix and a reference suffix such as ``"-REF"``, ``"-LE"``,
    ``"-A1"`` or ``"-M2"`` (as EDF exports write ``"EEG Fp1-REF"``). A label that would
    become empty is kept as it is. :func:`normalize_labels` also strips a reference suffix
    that two thirds of the labels share (``"EEG Fp1-CPz"``, ``"Fp1-Cz"``); an electrode
    suffix on one label alone (``"Fz-Cz"``, bipolar) is kept.
    """
    text = _clean(label)
    stripped = _SUFFIX.sub("", _PREFIX.sub("", text)).strip()
    return (stripped or text).lower()


def common_reference_suffix(labels: Sequence[str]) -> str | None:
    """The ``"-X"`` suffix shared by at least two thirds of ``labels`` (and at least two),
    taken as the recording reference (``"EEG Fp1-CPz"``, ``"EEG C3-CPz"``...), or None.

    Bipolar derivations (``"Fp1-F7"``, ``"F7-T7"``...) have varied suffixes: None.
    """
    suffixes: dict[str, int] = {}
    for lab in labels:
        m = _ANY_SUFFIX.match(_PREFIX.sub("", _clean(lab)))
        if m:
            key = m.group(2).lower()
            suffixes[key] = suffixes.get(key, 0) + 1
    if not suffixes:
        return None
    key, count = max(suffixes.items(), key=lambda kv: kv[1])
    return key if count >= 2 and count >= 2 * len(labels) / 3 else None


def normalize_labels(labels: Sequence[str]) -> list[str]:
    """Canonical keys for a stream's or file's labels (:func:`normalize_label`, plus the
    shared reference suffix of :func:`common_reference_suffix` removed)."""
    ref = common_reference_suffix(labels)
    out = []
    for lab in labels:
        text = _PREFIX.sub("", _clean(lab))
        if ref is not None:
            m = _ANY_SUFFIX.match(text)
            if m and m.group(2).lower() == ref:
                text = m.group(1)
        out.append(normalize_label(text) if text else normalize_label(lab))
    return out


@dataclass(frozen=True)
class ChannelMapping:
    """Result of matching stream channels to head-model channels.

    Attributes
    ----------
    stream_index : array of int, shape (n_used,)
        Stream columns used, in head-model order.
    model_index : array of int, shape (n_used,)
        Head-model channel index of each used column.
    used_labels : list of str
        Head-model labels of the used channels (the channels the kernel must cover).
    missing_model : list of str
        Head-model channels absent from the stream.
    unmapped_eeg : list of str
        Stream channels typed EEG that match no head-model channel.
    skipped : list of (str, str | None)
        Stream channels not used because of their type: (label, type), type None when
        untyped and unmatched.
    aliased : dict of str to str
        Stream label -> head-model label for matches made through an alias.
    duplicates : list of str
        Stream channels that matched a head-model channel already taken.
    """

    stream_index: NDArray[np.intp]
    model_index: NDArray[np.intp]
    used_labels: list[str]
    missing_model: list[str]
    unmapped_eeg: list[str]
    skipped: list[tuple[str, str | None]]
    aliased: dict[str, str] = field(default_factory=dict)
    duplicates: list[str] = field(default_factory=list)


class ChannelMapper:
    """Select and order the stream's EEG channels for the head model.

    Parameters
    ----------
    stream_labels : sequence of str
        Labels of the stream's channels, in stream order.
    stream_types : sequence of (str | None)
        Types of the stream's channels (any case; None or "" when untyped). Channels
        typed EEG are used when their label matches; untyped channels are used only
        when their label matches; every other type (misc, stim, trigger, aux...) is
        skipped.
    model_labels : sequence of str
        Channel labels of the head model (montage), in model order.
    aliases : mapping of str to str | None
        Extra label aliases merged into :data:`DEFAULT_ALIASES` (tried both ways).

    Attributes
    ----------
    mapping : ChannelMapping
        What was matched, skipped and missing.
    n_used : int
        Number of output channels.

    Raises
    ------
    ValueError
        When no stream channel matches the head model.

    Notes
    -----
    The output keeps the head model's channel order restricted to the channels present
    (``mapping.used_labels``). When head-model channels are missing, a warning names
    them: compute the inverse kernel for ``used_labels`` only.
    """

    def __init__(
        self,
        stream_labels: Sequence[str],
        stream_types: Sequence[str | None],
        model_labels: Sequence[str],
        aliases: Mapping[str, str] | None = None,
    ) -> None:
        if len(stream_labels) != len(stream_types):
            raise ValueError(
                f"stream_labels has {len(stream_labels)} entries but stream_types has "
                f"{len(stream_types)}; give one type (or None) per channel."
            )
        alias_map = dict(DEFAULT_ALIASES)
        alias_map.update(aliases or {})
        both: dict[str, str] = {}
        for a, b in alias_map.items():
            both[normalize_label(a)] = normalize_label(b)
            both.setdefault(normalize_label(b), normalize_label(a))

        model_keys: dict[str, int] = {}
        for j, lab in enumerate(model_labels):
            key = normalize_label(lab)
            if key in model_keys:
                raise ValueError(f"Head-model label {lab!r} appears twice (case-insensitively).")
            model_keys[key] = j

        taken: dict[int, int] = {}  # model index -> stream index
        aliased: dict[str, str] = {}
        unmapped: list[str] = []
        skipped: list[tuple[str, str | None]] = []
        duplicates: list[str] = []
        eeg_like = [lab for lab, typ in zip(stream_labels, stream_types, strict=True)
                    if (typ or "").strip().lower() in ("", *EEG_TYPES)]
        keys = dict(zip(eeg_like, normalize_labels(eeg_like), strict=True))
        for i, (lab, typ) in enumerate(zip(stream_labels, stream_types, strict=True)):
            t = (typ or "").strip().lower() or None
            if t is not None and t not in EEG_TYPES:
                skipped.append((lab, t))
                continue
            key = keys.get(lab, normalize_label(lab)) if lab else ""
            j = model_keys.get(key)
            if j is None and key in both:
                j = model_keys.get(both[key])
                if j is not None:
                    aliased[lab] = model_labels[j]
            if j is None:
                if t is None:
                    skipped.append((lab, None))
                else:
                    unmapped.append(lab)
                continue
            if j in taken:
                duplicates.append(lab)
                continue
            taken[j] = i

        order = sorted(taken)
        if not order:
            raise ValueError(
                "None of the stream's channels matches the head model. Stream channels "
                f"(label/type): {[(lab, t) for lab, t in zip(stream_labels, stream_types, strict=True)][:32]}; "
                f"head-model channels: {list(model_labels)[:32]}"
                f"{' ...' if len(model_labels) > 32 else ''}. Check the montage "
                "(--montage) or the stream's channel labels."
            )
        self.mapping = ChannelMapping(
            stream_index=np.array([taken[j] for j in order], dtype=np.intp),
            model_index=np.array(order, dtype=np.intp),
            used_labels=[model_labels[j] for j in order],
            missing_model=[lab for j, lab in enumerate(model_labels) if j not in taken],
            unmapped_eeg=unmapped,
            skipped=skipped,
            aliased=aliased,
            duplicates=duplicates,
        )
        self.n_stream = len(stream_labels)
        self.n_used = len(order)
        self._identity = self.n_used == self.n_stream and bool(
            np.all(self.mapping.stream_index == np.arange(self.n_stream))
        )
        m = self.mapping
        if m.missing_model:
            logger.warning(
                "%d of %d head-model channels are missing from the input: %s. The inverse "
                "kernel must be computed for the %d channels present.",
                len(m.missing_model),
                len(model_labels),
                ", ".join(m.missing_model),
                self.n_used,
            )
        if m.unmapped_eeg:
            hints = "".join(
                close_matches(lab, list(model_labels), n=1) for lab in m.unmapped_eeg[:5]
            )
            logger.warning(
                "%d EEG channels of the input match no head-model channel and are ignored: %s.%s",
                len(m.unmapped_eeg),
                ", ".join(m.unmapped_eeg),
                hints,
            )
        if m.duplicates:
            logger.warning(
                "Stream channels %s duplicate head-model channels already matched; ignored.",
                ", ".join(m.duplicates),
            )
        if m.aliased:
            logger.info("Channels matched through aliases: %s.", m.aliased)
        if m.skipped:
            logger.info("Skipped non-EEG stream channels: %s.", m.skipped)

    def describe(self) -> str:
        """One paragraph for the status stream: used, missing, unmapped, skipped."""
        m = self.mapping
        parts = [f"Using {self.n_used} of {self.n_stream} stream channels."]
        if m.missing_model:
            parts.append(f"Missing head-model channels: {', '.join(m.missing_model)}.")
        if m.unmapped_eeg:
            parts.append(f"Unmatched EEG channels: {', '.join(m.unmapped_eeg)}.")
        if m.skipped:
            parts.append(
                "Skipped channels: "
                + ", ".join(f"{lab} ({t or 'untyped'})" for lab, t in m.skipped)
                + "."
            )
        if m.aliased:
            parts.append("Aliases: " + ", ".join(f"{a}->{b}" for a, b in m.aliased.items()) + ".")
        return " ".join(parts)

    def __call__(self, x: NDArray, out: NDArray | None = None) -> NDArray:
        """Pick the used channels in head-model order.

        Parameters
        ----------
        x : array, shape (n_samples, n_stream_channels)
        out : array, shape (n_samples, n_used) | None
            Destination (allocated when None).

        Returns
        -------
        y : array, shape (n_samples, n_used)
            ``x`` itself when the mapping is the identity and ``out`` is None.
        """
        if x.ndim != 2 or x.shape[1] != self.n_stream:
            raise ValueError(
                f"Expected samples of shape (n_samples, {self.n_stream}), got {x.shape}."
            )
        if self._identity and out is None:
            return x
        return np.take(x, self.mapping.stream_index, axis=1, out=out)


# -- filtering ------------------------------------------------------------------------
def design_sos(
    sfreq: float,
    highpass: float | None,
    lowpass: float | None,
    notch: float | Iterable[float] | None,
    order: int = 4,
    notch_q: float = 30.0,
) -> NDArray[np.float64]:
    """Second-order sections of a Butterworth band-pass and IIR notch filters.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    highpass, lowpass : float | None
        Band edges (Hz); None leaves that side open.
    notch : float | sequence of float | None
        Line-noise frequencies to remove (Hz), e.g. 50 or (50, 100).
    order : int
        Butterworth order (per side).
    notch_q : float
        Quality factor of each notch.

    Returns
    -------
    sos : array, shape (n_sections, 6)
        Empty (0, 6) when no filter is requested.
    """
    if sfreq <= 0:
        raise ValueError(
            f"sfreq must be positive, got {sfreq} (irregular streams cannot be filtered)."
        )
    nyq = sfreq / 2.0
    for nm, f in (("highpass", highpass), ("lowpass", lowpass)):
        if f is not None and not 0 < f < nyq:
            raise ValueError(
                f"{nm}={f} Hz is not valid at sfreq={sfreq} Hz; it must lie between 0 and "
                f"the Nyquist frequency {nyq} Hz (or be None to disable it)."
            )
    if highpass is not None and lowpass is not None and highpass >= lowpass:
        raise ValueError(f"highpass={highpass} Hz must be below lowpass={lowpass} Hz.")
    sections = []
    if highpass is not None and lowpass is not None:
        sections.append(
            signal.butter(order, [highpass, lowpass], "bandpass", fs=sfreq, output="sos")
        )
    elif highpass is not None:
        sections.append(signal.butter(order, highpass, "highpass", fs=sfreq, output="sos"))
    elif lowpass is not None:
        sections.append(signal.butter(order, lowpass, "lowpass", fs=sfreq, output="sos"))
    if notch is not None:
        freqs = [float(notch)] if np.isscalar(notch) else [float(f) for f in notch]  # type: ignore[arg-type]
        for f in freqs:
            if not 0 < f < nyq:
                raise ValueError(
                    f"notch={f} Hz is not valid at sfreq={sfreq} Hz; it must lie between 0 "
                    f"and the Nyquist frequency {nyq} Hz (or be None to disable it)."
                )
            b, a = signal.iirnotch(f, notch_q, fs=sfreq)
            sections.append(signal.tf2sos(b, a))
    if not sections:
        return np.zeros((0, 6))
    return np.vstack(sections).astype(np.float64)


class CausalFilter:
    """Causal IIR filter (Butterworth band-pass + notch) with state across chunks.

    Filtering a signal chunk by chunk gives the same result as filtering it whole.

    Parameters
    ----------
    sfreq : float
        Sampling rate (Hz).
    n_channels : int
        Number of channels (columns) of every chunk.
    highpass, lowpass : float | None
        Band edges in Hz (None disables that side).
    notch : float | sequence of float | None
        Notch frequencies in Hz.
    order : int
        Butterworth order.
    notch_q : float
        Notch quality factor.
    init : ``"first_sample"`` | ``"zeros"``
        Initial state. ``"first_sample"`` (default) starts in the steady state for the
        first sample's value, so a large DC offset (common on DC-coupled amplifiers)
        causes no start-up transient; ``"zeros"`` starts from rest.
    dtype : dtype
        Output dtype (default float32). The arithmetic is float64.

    Attributes
    ----------
    sos : array, shape (n_sections, 6)
    delay_s : float
        Group delay at the pass-band centre (seconds), for the metadata.
    """

    def __init__(
        self,
        sfreq: float,
        n_channels: int,
        highpass: float | None = 1.0,
        lowpass: float | None = 45.0,
        notch: float | Iterable[float] | None = None,
        order: int = 4,
        notch_q: float = 30.0,
        init: str = "first_sample",
        dtype: DTypeLike = np.float32,
    ) -> None:
        if init not in ("first_sample", "zeros"):
            raise ValueError(f"init={init!r} is not valid; choose 'first_sample' or 'zeros'.")
        self.sfreq = float(sfreq)
        self.n_channels = int(n_channels)
        self.highpass = highpass
        self.lowpass = lowpass
        self.notch = notch
        self.init = init
        self.dtype = np.dtype(dtype)
        self.sos = design_sos(sfreq, highpass, lowpass, notch, order, notch_q)
        if len(self.sos):
            self._zi_unit = signal.sosfilt_zi(self.sos)  # (n_sections, 2) for unit step
        self.delay_s = self._group_delay()
        self.reset()

    @classmethod
    def from_config(cls, cfg: StreamConfig, sfreq: float, n_channels: int) -> CausalFilter:
        """Filter for ``cfg.highpass_hz``, ``cfg.lowpass_hz`` and ``cfg.notch_hz``.

        A low-pass edge or notch at or above the Nyquist frequency of ``sfreq`` is
        disabled with a warning (the stream cannot carry those frequencies anyway).
        """
        nyq = sfreq / 2.0
        lowpass, notch = cfg.lowpass_hz, cfg.notch_hz
        if lowpass is not None and lowpass >= nyq:
            logger.warning(
                "lowpass_hz=%g is at or above the Nyquist frequency (%g Hz) of the %g Hz "
                "stream; the low-pass is disabled.",
                lowpass,
                nyq,
                sfreq,
            )
            lowpass = None
        if notch is not None and notch >= nyq:
            logger.warning(
                "notch_hz=%g is at or above the Nyquist frequency (%g Hz) of the %g Hz "
                "stream; the notch is disabled.",
                notch,
                nyq,
                sfreq,
            )
            notch = None
        return cls(sfreq, n_channels, highpass=cfg.highpass_hz, lowpass=lowpass, notch=notch)

    def _group_delay(self) -> float:
        if not len(self.sos):
            return 0.0
        lo = self.highpass or 0.5
        hi = self.lowpass or min(self.sfreq / 4, 40.0)
        f0 = float(np.sqrt(lo * hi))
        # Sum over second-order sections: the full transfer function is ill-conditioned at
        # high sampling rates, each biquad is not.
        gd = sum(float(signal.group_delay((sec[:3], sec[3:]), w=[f0], fs=self.sfreq)[1][0])
                 for sec in self.sos)
        return gd / self.sfreq

    def reset(self) -> None:
        """Forget the filter state (the next chunk starts afresh)."""
        self._zi: NDArray[np.float64] | None = None

    @property
    def first_output_empty(self) -> bool:
        """True when the first output after a (re)start carries no signal: a high-pass
        started in the first sample's steady state outputs zero (to rounding) there."""
        return self.init == "first_sample" and self.highpass is not None and bool(len(self.sos))

    def __call__(self, x: NDArray, out: NDArray | None = None) -> NDArray:
        """Filter one chunk.

        Parameters
        ----------
        x : array, shape (n_samples, n_channels)
        out : array, shape (n_samples, n_channels) | None
            Destination (may be ``x`` itself); allocated in :attr:`dtype` when None.

        Returns
        -------
        y : array, shape (n_samples, n_channels)
        """
        if x.ndim != 2 or x.shape[1] != self.n_channels:
            raise ValueError(
                f"Expected a chunk of shape (n_samples, {self.n_channels}), got {x.shape}."
            )
        if out is None:
            out = np.empty(x.shape, dtype=self.dtype)
        if not len(self.sos) or x.shape[0] == 0:
            if out is not x:
                out[...] = x
            return out
        if self._zi is None:
            if self.init == "first_sample":
                self._zi = self._zi_unit[:, :, None] * x[0].astype(np.float64)[None, None, :]
            else:
                self._zi = np.zeros((len(self.sos), 2, self.n_channels))
        y, self._zi = signal.sosfilt(self.sos, x, axis=0, zi=self._zi)
        out[...] = y
        return out


def average_reference(x: NDArray, good: NDArray[np.bool_] | None = None) -> NDArray:
    """Subtract the common average from every channel, in place.

    Parameters
    ----------
    x : array, shape (n_samples, n_channels)
        Modified in place.
    good : array of bool, shape (n_channels,) | None
        Channels that form the average (all when None); the average is subtracted from
        every channel.

    Returns
    -------
    x : array, shape (n_samples, n_channels)
        The same array.
    """
    if good is None:
        mean = x.mean(axis=1, keepdims=True, dtype=np.float64)
    else:
        if not np.any(good):
            raise ValueError("average_reference: no good channel left to form the average.")
        mean = x[:, good].mean(axis=1, keepdims=True, dtype=np.float64)
    x -= mean.astype(x.dtype, copy=False)
    return x
