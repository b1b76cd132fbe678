"""Reading an input stream's description: which stream, which positions, which units.

Pure functions on parsed LSL metadata (:class:`~rtsource.stream.lslio.ChannelInfo`); the
pipeline calls them once when it opens a stream.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._util import close_matches, logger
from ..config import StreamConfig
from ..headmodel.montage import MontageSpec, get_montage, montage_label
from ..stream.lslio import ChannelInfo, describe_positions, positions_array, unit_to_volts

__all__ = ["InputSpec", "bad_channels", "channel_labels", "check_stream", "choose_montage",
           "data_units", "guess_volts_factor", "input_units", "parse_input"]

#: Median |x| above which samples without a unit are taken as microvolts: no EEG in volts
#: comes near half a volt, and EEG in microvolts (even high-passed) stays above it.
MICROVOLT_GUESS = 0.5
#: Median |x| in volts that EEG can have: from 1 nV (below any amplifier's noise) to 0.5 V.
PLAUSIBLE_VOLTS = (1e-9, MICROVOLT_GUESS)


#: At most this many values enter a unit check's median (evenly strided): the check is about
#: orders of magnitude, and a long recording must not be copied whole to make it.
UNIT_CHECK_VALUES = 1_000_000


def _abs_sample(x: np.ndarray) -> np.ndarray:
    """|x| as float64 over at most :data:`UNIT_CHECK_VALUES` evenly strided values."""
    flat = np.asarray(x).reshape(-1)
    if flat.size > UNIT_CHECK_VALUES:
        flat = flat[::-(-flat.size // UNIT_CHECK_VALUES)]
    return np.abs(flat.astype(np.float64))


def guess_volts_factor(x: np.ndarray) -> tuple[float, float]:
    """Factor to volts for samples without a stated unit, and the median |x| it rests on.

    The rule (one for the live and the offline path): median |x| over the finite samples
    above :data:`MICROVOLT_GUESS` means microvolts (factor 1e-6), else volts (1.0). Over
    more than :data:`UNIT_CHECK_VALUES` values, the median of an evenly strided sample.
    """
    vals = _abs_sample(x)
    finite = vals[np.isfinite(vals)]
    med = float(np.median(finite)) if finite.size else 0.0
    return (1e-6 if med > MICROVOLT_GUESS else 1.0), med


def restate_mne_units(err: ValueError) -> ValueError:
    """:func:`data_units`' error for an MNE object read with ``units="auto"`` (which means
    volts, MNE's unit), worded without the ``units = 'V'`` the user never gave; other errors
    are returned unchanged."""
    stated = "units = 'V' makes "
    msg = str(err)
    if not msg.startswith(stated):
        return err
    return ValueError("The MNE object's EEG should be in volts (MNE's unit, which "
                      "units='auto' assumes for it), but " + msg[len(stated):])


def data_units(units: str | None, x: np.ndarray, setting: str = "units") -> tuple[float, str]:
    """Factor converting ``x`` to volts, and a sentence for the provenance.

    Parameters
    ----------
    units : ``"auto"`` or None (decide with :func:`guess_volts_factor`) or a voltage unit
        (``"V"``, ``"mV"``, ``"uV"``, ``"µV"``, ``"nV"``, ``"microvolts"``...).
    x : the data (any shape).
    setting : the setting's name for messages.

    Raises
    ------
    ValueError
        For a unit that is not a voltage, or a stated unit that the values contradict
        (median |x| in volts outside :data:`PLAUSIBLE_VOLTS`); the message gives the
        factor the values suggest and the setting to change.
    """
    if units is None or str(units).strip().lower() == "auto":
        factor, med = guess_volts_factor(x)
        if factor == 1.0:
            return 1.0, "volts"
        return factor, (f"microvolts, decided from the values (median |x| = {med:.3g}); "
                        "converted to volts")
    factor = unit_to_volts(str(units))
    if factor is None:
        raise ValueError(f"{setting} = {units!r} is not a voltage unit; use 'V', 'mV', 'uV' or "
                         "'auto'.")
    vals = _abs_sample(x)
    vals = vals[np.isfinite(vals) & (vals > 0)]
    if vals.size:
        med = float(np.median(vals)) * factor
        lo, hi = PLAUSIBLE_VOLTS
        if not lo <= med <= hi:
            guess, raw_med = guess_volts_factor(vals)
            hint = ("'uV'" if guess == 1e-6 else "'V'")
            raise ValueError(
                f"{setting} = {units!r} makes the data's median |x| {med:.3g} V, which no EEG "
                f"has (median |x| = {raw_med:.3g} as given). They look like "
                f"{'microvolts' if guess == 1e-6 else 'volts'}: pass {setting}={hint} "
                f"(command line: --units {hint.strip(chr(39))}; a factor of {factor / guess:g} "
                "from what was stated).")
    return factor, f"{units} (stated), converted to volts"
#: Plausible distance (metres) of scalp electrodes from the head-frame origin.
POSITION_RADIUS_M = (0.04, 0.2)


@dataclass(frozen=True)
class InputSpec:
    """Which LSL stream to read: any combination of name, type and source_id."""

    name: str | None = None
    type: str | None = None
    source_id: str | None = None

    def __str__(self) -> str:
        return ", ".join(
            f"{k}={v!r}" for k, v in dataclasses.asdict(self).items() if v is not None
        )


def parse_input(text: str) -> InputSpec:
    """Parse ``--input``: a stream name, or ``key=value`` pairs joined by commas.

    Examples: ``"BioSemi"``, ``"type=EEG"``, ``"source_id=amp-1234"``,
    ``"name=BioSemi,type=EEG"``.

    Raises
    ------
    ValueError
        For an empty text or an unknown key.
    """
    text = text.strip()
    if not text:
        raise ValueError("The input stream is empty; give a name, type=TYPE or source_id=ID.")
    if "=" not in text:
        return InputSpec(name=text)
    keys = {"name": "name", "type": "type", "source_id": "source_id", "sourceid": "source_id"}
    values: dict[str, str] = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        key = key.strip().lower()
        if not sep or key not in keys or not value.strip():
            raise ValueError(
                f"Cannot read input {text!r}: use a stream name, or name=NAME, type=TYPE and/or "
                "source_id=ID separated by commas."
            )
        values[keys[key]] = value.strip()
    return InputSpec(**values)


def choose_montage(chans: Sequence[ChannelInfo], given: MontageSpec | None,
                   configured: str) -> tuple[MontageSpec, str]:
    """Electrode positions: the given montage > the stream's metadata > the configured one.

    Returns the montage and a sentence saying which positions were used (for the status
    and the outlet's provenance). The stream's positions are used when its EEG channels
    carry plausible ones (median radius within :data:`POSITION_RADIUS_M`, unique labels).
    """
    if given is not None:
        return given, f"Electrode positions from the given montage {montage_label(given)}."
    eeg = [c for c in chans if c.is_eeg or c.is_untyped]
    with_pos = [c for c in eeg if c.position is not None]
    if with_pos:
        pos = positions_array(with_pos)
        radius = float(np.median(np.linalg.norm(pos, axis=1)))
        lo, hi = POSITION_RADIUS_M
        if lo <= radius <= hi and len({c.label.lower() for c in with_pos}) == len(with_pos):
            text = describe_positions(list(chans))
            if len(with_pos) < len(eeg):
                missing = [c.label for c in eeg if c.position is None]
                text += f" Channels without a position are left out: {', '.join(missing)}."
                logger.warning("Input channels without a position are left out: %s.",
                               ", ".join(missing))
            return ([c.label for c in with_pos], pos), text
        logger.warning(
            "The stream's electrode positions are implausible (median distance %.3f m from "
            "the head origin, or repeated labels); using the montage %s instead.",
            radius, configured,
        )
        return configured, (
            f"The stream's positions looked implausible (median radius {radius:.3f} m); "
            f"electrode positions from the configured montage {configured}."
        )
    return configured, (
        f"{describe_positions(list(chans))} Electrode positions from the configured montage "
        f"{configured}."
    )


def input_units(chans: Sequence[ChannelInfo], used: Sequence[int], units: str = "auto"
                ) -> tuple[list[float | None], str]:
    """Per-column factors to volts (1 for columns not used, None where a used column has no
    voltage unit) and a sentence for the provenance.

    ``units`` (``stream.units``): ``"auto"`` reads each channel's unit from the stream's
    metadata; a voltage unit (``"uV"``, ...) overrides the metadata for every used column.

    Raises
    ------
    ValueError
        For a ``units`` that is not a voltage unit.
    """
    used_set = {int(i) for i in used}
    if units.strip().lower() != "auto":
        factor = unit_to_volts(units)
        if factor is None:
            raise ValueError(f"Setting stream.units = {units!r} is not a voltage unit; use "
                             "'auto', 'V', 'mV' or 'uV'.")
        return ([factor if i in used_set else 1.0 for i in range(len(chans))],
                f"input units {units} (stream.units; the stream's metadata is ignored)")
    factors: list[float | None] = [
        chans[i].to_volts if i in used_set else 1.0 for i in range(len(chans))
    ]
    units_seen = sorted({chans[i].unit or "none" for i in used_set})
    text = f"input units {', '.join(units_seen)}"
    if any(factors[i] is None for i in used_set):
        text += ("; channels without a voltage unit: decided from the first samples "
                 f"(median |x| > {MICROVOLT_GUESS} means microvolts)")
    return factors, text


def check_stream(name: str, sfreq: float, n_channels: int, cfg: StreamConfig,
                 channel_format: str = "float32") -> tuple[float, int]:
    """The declared rate and channel count of an input stream, checked against the
    configuration (``stream.expected_srate``, ``stream.expected_channels``).

    Raises
    ------
    ValueError
        For an irregular stream (rate 0) or a rate or channel count that differs from the
        configured one; the message names the stream, both values and the setting.
    """
    if n_channels < 1:
        raise ValueError(f"Input stream {name!r} has no channels (channel_count 0); it "
                         "cannot carry EEG. Check the sender's configuration.")
    if channel_format == "string":
        raise ValueError(f"Input stream {name!r} carries strings (channel_format string), "
                         "not samples: is it a marker stream? Give the EEG stream with --input.")
    if not sfreq > 0:
        raise ValueError(
            f"Input stream {name!r} has an irregular sampling rate (nominal_srate 0); the "
            "pipeline needs a regularly sampled EEG stream.")
    if cfg.expected_srate is not None and not math.isclose(sfreq, cfg.expected_srate,
                                                           rel_tol=1e-6):
        raise ValueError(
            f"Input stream {name!r} samples at {sfreq:g} Hz but the configuration expects "
            f"{cfg.expected_srate:g} Hz (stream.expected_srate).")
    if cfg.expected_channels is not None and n_channels != cfg.expected_channels:
        raise ValueError(
            f"Input stream {name!r} has {n_channels} channels but the configuration expects "
            f"{cfg.expected_channels} (stream.expected_channels).")
    return sfreq, n_channels


def channel_labels(name: str, chans: Sequence[ChannelInfo], cfg: StreamConfig,
                   montage: MontageSpec) -> tuple[list[ChannelInfo], str]:
    """The stream's channels with the labels to use, and a sentence for the provenance.

    ``stream.channel_labels`` (``--channel-labels``) gives labels by order: one per
    channel, or one per channel except a trailing sample-index channel; ``["montage"]``
    takes the montage's own channel order (the stream must have as many channels). They
    replace the stream's labels. Without them the stream's labels are used.

    Raises
    ------
    ValueError
        When the stream carries no labels and none are given (plainly, with the fix), or
        when the given labels do not fit the channel count.
    """
    given = cfg.channel_labels
    n = len(chans)
    if given is None:
        if n and all(not c.label for c in chans):
            raise ValueError(
                f"Input stream {name!r} carries no channel labels ({n} channels, all "
                "unlabelled), so its channels cannot be matched to electrode positions. Give "
                "the labels in stream order: --channel-labels Fp1,Fp2,... (or stream."
                "channel_labels = [...] in the config), or --channel-labels montage to take "
                "the montage's order.")
        return list(chans), "channel labels from the stream"
    labels = list(given)
    source = "stream.channel_labels"
    if len(labels) == 1 and labels[0].lower() == "montage":
        labels = list(get_montage(montage).ch_names)
        source = f"the montage {montage_label(montage)}'s channel order"
        if len(labels) not in (n, n - 1):
            raise ValueError(
                f"--channel-labels montage: the montage {montage_label(montage)} has "
                f"{len(labels)} channels but input stream {name!r} has {n}; give the labels "
                "one by one instead.")
    if len(labels) not in (n, n - 1):
        raise ValueError(
            f"{len(labels)} channel labels given ({source}) but input stream {name!r} has {n} "
            "channels; give one label per channel, in stream order.")
    out = [dataclasses.replace(c, label=labels[i]) if i < len(labels) else c
           for i, c in enumerate(chans)]
    return out, f"channel labels from {source}"


def bad_channels(chans: Sequence[ChannelInfo], cfg: StreamConfig) -> tuple[list[str], str]:
    """Channels to leave out: those the stream marks bad (``<bad>true</bad>``, as ``rtsource
    play`` writes MNE's ``info["bads"]``; ``stream.stream_bads = false`` keeps them) and
    ``stream.bads`` (``--bads``).

    Raises
    ------
    ValueError
        For a name in ``stream.bads`` that is not one of the stream's labels.
    """
    labels = {c.label.lower(): c.label for c in chans}
    unknown = [b for b in cfg.bads if b.lower() not in labels]
    if unknown:
        raise ValueError(
            f"stream.bads names {unknown}, which are not channels of the input stream."
            f"{close_matches(unknown[0], list(labels.values()))}")
    from_stream = [c.label for c in chans if c.bad] if cfg.stream_bads else []
    given = [labels[b.lower()] for b in cfg.bads]
    bads = list(dict.fromkeys(from_stream + given))
    parts = []
    if from_stream:
        parts.append(f"{', '.join(from_stream)} (marked bad in the stream's metadata)")
    if given:
        parts.append(f"{', '.join(given)} (stream.bads)")
    return bads, ("bad channels left out: " + "; ".join(parts)) if parts else "none"
