"""LSL inlet side: find an EEG stream, read its channel metadata, pull chunks.

Amplifier apps differ (see DESIGN.md, "LSL inputs seen in the wild"); everything here
accepts the variants found in practice:

* stream ``type`` ``"EEG"`` or ``"eeg"`` (matched case-insensitively);
* samples in float32, double64 or an integer format (converted to float32 on pull);
* electrode positions in XDF's ``desc/channels/channel/location/{X,Y,Z}`` (millimetres)
  or MNE/mne-lsl's ``desc/channels/channel/loc/{R0x,R0y,R0z}`` (metres, head frame), or
  absent;
* extra channels typed ``misc``, ``stim``, ``trigger``... or untyped.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pylsl
from numpy.typing import DTypeLike, NDArray
from pylsl.util import LostError as _PylslLostError
from pylsl.util import TimeoutError as _PylslTimeoutError

from .._util import close_matches, logger, unit_to_volts

#: Channel types (lower case) treated as EEG. Anything else that is non-empty is skipped
#: by preprocessing; untyped channels are used only if their label matches the head model.
EEG_TYPES: frozenset[str] = frozenset({"eeg"})
#: Channel types commonly seen on EEG streams that are not EEG (for documentation and
#: reporting; any non-EEG type is skipped whether listed here or not).
NON_EEG_TYPES: frozenset[str] = frozenset(
    {
        "misc",
        "stim",
        "trigger",
        "trig",
        "marker",
        "markers",
        "aux",
        "accel",
        "acc",
        "accelerometer",
        "gyro",
        "gyroscope",
        "counter",
        "index",
        "eog",
        "ecg",
        "ekg",
        "emg",
        "resp",
        "gsr",
        "eda",
        "temp",
        "temperature",
        "ppg",
        "spo2",
        "bio",
        "exg",
        "status",
        "impedance",
        "battery",
    }
)

#: The sample-index channel: a ``misc`` channel carrying each sample's number modulo
#: :data:`INDEX_MODULO` (exact in float32), so that a receiver can prove that nothing was
#: dropped or duplicated (mne-lsl's test convention). Senders add it, the pipeline checks it.
INDEX_LABEL = "sample_index"
INDEX_MODULO = 2**24

#: LSL channel formats EEGInlet can read, by pylsl format code.
_NUMERIC_FORMATS: dict[int, str] = {
    pylsl.cf_float32: "float32",
    pylsl.cf_double64: "double64",
    pylsl.cf_int8: "int8",
    pylsl.cf_int16: "int16",
    pylsl.cf_int32: "int32",
    pylsl.cf_int64: "int64",
}
_FORMAT_DTYPES: dict[int, Any] = {
    pylsl.cf_float32: np.float32,
    pylsl.cf_double64: np.float64,
    pylsl.cf_int8: np.int8,
    pylsl.cf_int16: np.int16,
    pylsl.cf_int32: np.int32,
    pylsl.cf_int64: np.int64,
}
_FORMAT_NAMES: dict[int, str] = {**_NUMERIC_FORMATS, pylsl.cf_string: "string", 0: "undefined"}

#: Unit strings (lower case) -> factor converting the value to volts.


class StreamNotFoundError(TimeoutError):
    """No LSL stream matched within the timeout.

    Attributes
    ----------
    visible : list of str
        One-line descriptions of the streams that *were* visible.
    """

    def __init__(self, message: str, visible: list[str]) -> None:
        super().__init__(message)
        self.visible = visible


class StreamLostError(ConnectionError):
    """The LSL stream an :class:`EEGInlet` reads from disappeared.

    Call :meth:`EEGInlet.wait_for_return` to wait for a stream with the same
    ``source_id`` and reconnect.
    """


# -- channel metadata -----------------------------------------------------------------
@dataclass(frozen=True)
class ChannelInfo:
    """Metadata of one channel of an LSL stream.

    Attributes
    ----------
    index : int
        Column of the channel in the pulled samples.
    label : str
        Channel label as sent ("" when the stream has none).
    type : str | None
        Channel type in lower case (``"eeg"``, ``"misc"``...), None when untyped.
    unit : str | None
        Unit string as sent (``"microvolts"``, ``"V"``, mne-lsl's ``"-6"``...).
    to_volts : float | None
        Factor converting values to volts, None when the unit is absent or not a voltage.
    position : tuple of 3 float | None
        Electrode position in metres (head frame as sent), None when absent.
    position_source : ``"loc"`` | ``"location"`` | None
        Where the position came from: MNE's ``loc/R0*`` (metres) or XDF's
        ``location/{X,Y,Z}`` (millimetres, converted).
    bad : bool
        The sender marked the channel bad (``<bad>true</bad>`` in its ``channel``
        element, as ``rtsource play`` writes MNE's ``info["bads"]``).
    """

    index: int
    label: str
    type: str | None
    unit: str | None
    to_volts: float | None
    position: tuple[float, float, float] | None
    position_source: str | None
    bad: bool = False

    @property
    def is_eeg(self) -> bool:
        """True when the channel is explicitly typed EEG."""
        return self.type in EEG_TYPES

    @property
    def is_untyped(self) -> bool:
        """True when the stream gives no type for this channel."""
        return self.type is None


def _text(elem: Any, name: str) -> str | None:
    value = elem.child_value(name).strip()
    return value or None


def _floats(elem: Any, names: tuple[str, str, str]) -> tuple[float, float, float] | None:
    """Three finite floats from children ``names`` of ``elem`` (None if any is missing)."""
    if elem.empty():
        return None
    out = []
    for name in names:
        text = elem.child_value(name).strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            return None
        if not math.isfinite(value):
            return None
        out.append(value)
    if all(v == 0.0 for v in out):  # MNE writes zeros for "unknown"
        return None
    return (out[0], out[1], out[2])


def parse_channels(info: pylsl.StreamInfo) -> list[ChannelInfo]:
    """Read the channel metadata of a stream.

    Parameters
    ----------
    info : pylsl.StreamInfo
        A *full* stream info (from ``StreamInlet.info()``, or an outlet's own info):
        resolved infos have an empty ``desc``.

    Returns
    -------
    channels : list of ChannelInfo
        One entry per channel, in stream order (``channel_count`` entries; channels
        missing from ``desc`` get an empty label and no type).

    Notes
    -----
    Positions are taken from ``loc/{R0x,R0y,R0z}`` (MNE/mne-lsl, metres) when present,
    else from ``location/{X,Y,Z}`` (XDF, millimetres by convention, divided by 1000). If
    every XDF position of the stream is shorter than 1 (which cannot be millimetres on
    a head), the values are taken as metres and a warning says so.
    """
    n_channels = info.channel_count()
    raw: list[dict[str, Any]] = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty() and len(raw) < n_channels:
        raw.append(
            {
                "label": ch.child_value("label").strip(),
                "type": (_text(ch, "type") or "").lower() or None,
                "unit": _text(ch, "unit"),
                "loc": _floats(ch.child("loc"), ("R0x", "R0y", "R0z")),
                "location": _floats(ch.child("location"), ("X", "Y", "Z")),
                "bad": (_text(ch, "bad") or "").lower() in ("true", "1", "yes"),
            }
        )
        ch = ch.next_sibling("channel")
    if raw and len(raw) != n_channels:
        logger.warning(
            "Stream %r describes %d channels but has channel_count %d; the others are unlabelled.",
            info.name(),
            len(raw),
            n_channels,
        )
    while len(raw) < n_channels:
        raw.append({"label": "", "type": None, "unit": None, "loc": None, "location": None,
                    "bad": False})

    xdf = [r["location"] for r in raw if r["location"] is not None]
    xdf_scale = 1e-3
    if xdf and max(math.sqrt(sum(v * v for v in p)) for p in xdf) < 1.0:
        xdf_scale = 1.0
        logger.warning(
            "Stream %r gives XDF channel locations shorter than 1 mm from the origin; "
            "taking them as metres instead of the XDF convention (millimetres).",
            info.name(),
        )
    channels = []
    for k, r in enumerate(raw):
        if r["loc"] is not None:
            pos, src = r["loc"], "loc"
        elif r["location"] is not None:
            pos = tuple(v * xdf_scale for v in r["location"])
            src = "location"
        else:
            pos, src = None, None
        channels.append(
            ChannelInfo(
                index=k,
                label=r["label"],
                type=r["type"],
                unit=r["unit"],
                to_volts=unit_to_volts(r["unit"]),
                position=pos,  # type: ignore[arg-type]
                position_source=src,
                bad=r["bad"],
            )
        )
    return channels


def positions_array(channels: list[ChannelInfo]) -> NDArray[np.float64]:
    """Positions as an array of shape (n_channels, 3) in metres, NaN where absent."""
    out = np.full((len(channels), 3), np.nan)
    for k, ch in enumerate(channels):
        if ch.position is not None:
            out[k] = ch.position
    return out


def describe_positions(channels: list[ChannelInfo]) -> str:
    """One sentence saying which positions a stream carries (for the status stream)."""
    eeg = [c for c in channels if c.is_eeg or c.is_untyped]
    n = len(eeg)
    n_loc = sum(c.position_source == "loc" for c in eeg)
    n_xdf = sum(c.position_source == "location" for c in eeg)
    if n_loc == n_xdf == 0:
        return f"The stream carries no electrode positions for its {n} EEG channels."
    parts = []
    if n_loc:
        parts.append(f"{n_loc} from MNE loc/R0x,R0y,R0z (metres)")
    if n_xdf:
        parts.append(f"{n_xdf} from XDF location/X,Y,Z (millimetres)")
    return f"Electrode positions for {n_loc + n_xdf} of {n} EEG channels: {', '.join(parts)}."


def is_eeg_stream(info: pylsl.StreamInfo) -> bool:
    """True when the stream's type is EEG in any letter case."""
    return info.type().strip().lower() in EEG_TYPES


def format_name(info: pylsl.StreamInfo) -> str:
    """The stream's channel format as a name (``"float32"``, ``"int32"``...)."""
    return _FORMAT_NAMES.get(info.channel_format(), str(info.channel_format()))


def stream_summary(info: pylsl.StreamInfo) -> str:
    """One line describing a stream: name, type, source_id, channels, rate, format."""
    rate = info.nominal_srate()
    rate_txt = f"{rate:g} Hz" if rate > 0 else "irregular rate"
    return (
        f"name={info.name()!r}, type={info.type()!r}, source_id={info.source_id()!r}, "
        f"{info.channel_count()} channels, {rate_txt}, {format_name(info)}, "
        f"host={info.hostname()!r}"
    )


# -- resolving ------------------------------------------------------------------------
_UPPER = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _xpath_literal(value: str, what: str) -> str:
    if "'" not in value:
        return f"'{value}'"
    if '"' not in value:
        return f'"{value}"'
    raise ValueError(f"{what}={value!r} contains both quote characters; it cannot be resolved.")


#: Seconds spent listening for further matches once one stream matched.
MATCH_LISTEN_S = 0.5


def resolve_stream(
    name: str | None = None,
    type: str | None = None,  # noqa: A002 - mirrors LSL's property name
    source_id: str | None = None,
    timeout: float = 10.0,
    listing_wait: float = 1.0,
) -> pylsl.StreamInfo:
    """Find one LSL stream by name, type and/or source_id.

    Parameters
    ----------
    name : str | None
        Exact stream name.
    type : str | None
        Stream type, matched case-insensitively (``"EEG"`` finds ``"eeg"`` too).
    source_id : str | None
        Exact source identifier.
    timeout : float
        Seconds to wait for a match.
    listing_wait : float
        Seconds spent listing the visible streams when nothing matched.

    Returns
    -------
    info : pylsl.StreamInfo
        The resolved (partial) stream info; open an :class:`EEGInlet` with it to get the
        full metadata. When several streams match, the first is used and a warning
        lists all of them.

    Raises
    ------
    StreamNotFoundError
        (a :class:`TimeoutError`) when nothing matched within ``timeout``; the message
        lists the streams that are visible.
    """
    if name is None and type is None and source_id is None:
        raise ValueError("resolve_stream needs at least one of name, type or source_id.")
    preds = []
    if name is not None:
        preds.append(f"name={_xpath_literal(name, 'name')}")
    if type is not None:
        preds.append(
            f"translate(type,'{_UPPER}','{_UPPER.lower()}')={_xpath_literal(type.lower(), 'type')}"
        )
    if source_id is not None:
        preds.append(f"source_id={_xpath_literal(source_id, 'source_id')}")
    predicate = " and ".join(preds)
    wanted = ", ".join(
        f"{k}={v!r}"
        for k, v in (("name", name), ("type", type), ("source_id", source_id))
        if v is not None
    )
    logger.debug("Resolving LSL stream with %s (timeout %.1f s).", wanted, timeout)
    found = pylsl.resolve_bypred(predicate, 1, float(timeout))
    if found:
        # LSL answers arrive one by one: listen a little longer so that a second matching
        # stream is always seen (and named), not only when it happened to answer first
        more = pylsl.resolve_bypred(predicate, 2, MATCH_LISTEN_S)
        seen = {i.uid() for i in found}
        found += [i for i in more if i.uid() not in seen]
        if len(found) > 1:
            logger.warning(
                "%d LSL streams match %s; using the first.\n  %s",
                len(found),
                wanted,
                "\n  ".join(stream_summary(i) for i in found),
            )
        return found[0]
    infos = pylsl.resolve_streams(wait_time=listing_wait)
    visible = [stream_summary(i) for i in infos]
    hint = close_matches(name, [i.name() for i in infos]) if name else ""
    listing = "\n  ".join(visible) if visible else "(none)"
    raise StreamNotFoundError(
        f"No LSL stream with {wanted} appeared within {timeout:g} s.{hint} "
        f"Streams visible now:\n  {listing}",
        visible,
    )


# -- inlet ----------------------------------------------------------------------------
class EEGInlet:
    """Pull EEG chunks from an LSL stream into preallocated numpy arrays.

    Parameters
    ----------
    info : pylsl.StreamInfo
        Resolved stream info (see :func:`resolve_stream`).
    max_chunk : int
        Most samples returned by one :meth:`pull`.
    max_buffered_s : float
        Seconds of data liblsl buffers for this inlet before dropping the oldest.
    clock_correction : bool
        Add liblsl's ``time_correction()`` offset to every timestamp (refreshed every
        ``correction_interval_s``). The timestamps then give the sample's capture time
        (the sender's clock at capture), expressed in this machine's LSL clock
        (``pylsl.local_clock``), which is the clock an outlet published from this
        machine must use. Without it, timestamps are the sender's raw clock values.
    dtype : dtype
        Dtype of the returned samples (default float32). Integer streams are cast
        (exact up to 2**24 in float32; use float64 for wider integers).
    open_timeout : float
        Seconds allowed for fetching the full metadata, subscribing and the first clock
        offset estimate.
    recover : bool
        Passed to liblsl. False (default): a lost stream raises
        :class:`StreamLostError` from :meth:`pull` so the caller can report it and call
        :meth:`wait_for_return`. True: liblsl reconnects silently and :meth:`pull`
        just returns nothing meanwhile (watch :attr:`seconds_since_data`).
    correction_interval_s : float
        How often the clock offset is refreshed (liblsl updates it in the background).

    Attributes
    ----------
    info : pylsl.StreamInfo
        Full stream info (with ``desc``).
    channels : list of ChannelInfo
        Parsed channel metadata.
    sfreq : float
        Nominal sampling rate (0 for irregular streams).
    n_received : int
        Samples pulled so far (over reconnections).
    n_backwards : int
        Samples whose (sender) timestamp was earlier than the previous sample's.
    n_reconnects : int
        Successful :meth:`wait_for_return` reconnections.
    lost : bool
        True between a detected loss and a successful reconnection.
    clock_offset : float
        Current time-correction offset in seconds (0 without clock correction).
    """

    def __init__(
        self,
        info: pylsl.StreamInfo,
        *,
        max_chunk: int = 1024,
        max_buffered_s: float = 30.0,
        clock_correction: bool = True,
        dtype: DTypeLike = np.float32,
        open_timeout: float = 5.0,
        recover: bool = False,
        correction_interval_s: float = 1.0,
    ) -> None:
        if int(max_chunk) < 1:
            raise ValueError(f"max_chunk must be at least 1, got {max_chunk}.")
        self.max_chunk = int(max_chunk)
        self.max_buffered_s = float(max_buffered_s)
        self.clock_correction = bool(clock_correction)
        self.dtype = np.dtype(dtype)
        self.open_timeout = float(open_timeout)
        self.recover = bool(recover)
        self.correction_interval_s = float(correction_interval_s)
        self.n_received = 0
        self.n_backwards = 0
        self.n_reconnects = 0
        self.lost = False
        self._inlet: pylsl.StreamInlet | None = None
        self._last_warn = -math.inf
        self._connect(info)

    # -- connection -------------------------------------------------------------------
    def _connect(self, info: pylsl.StreamInfo) -> None:
        fmt = info.channel_format()
        if fmt not in _NUMERIC_FORMATS:
            raise ValueError(
                f"LSL stream {info.name()!r} has channel format {_FORMAT_NAMES.get(fmt, fmt)!r}; "
                f"EEGInlet reads numeric formats only ({', '.join(_NUMERIC_FORMATS.values())})."
            )
        buflen = max(1, math.ceil(self.max_buffered_s))
        inlet = pylsl.StreamInlet(info, max_buflen=buflen, max_chunklen=0, recover=self.recover)
        try:
            full = inlet.info(timeout=self.open_timeout)
            inlet.open_stream(timeout=self.open_timeout)
            offset = (
                inlet.time_correction(timeout=self.open_timeout) if self.clock_correction else 0.0
            )
        except _PylslTimeoutError as err:
            raise TimeoutError(
                f"LSL stream {info.name()!r} (source_id={info.source_id()!r}) was resolved "
                f"but did not answer within open_timeout={self.open_timeout:g} s."
            ) from err
        except _PylslLostError as err:
            raise StreamLostError(
                f"LSL stream {info.name()!r} (source_id={info.source_id()!r}) disappeared "
                "while the inlet was opening."
            ) from err
        self._inlet = inlet
        self.info = full
        self.name = full.name()
        self.source_id = full.source_id()
        self.sfreq = float(full.nominal_srate())
        self.n_channels = int(full.channel_count())
        self.channel_format = _NUMERIC_FORMATS[fmt]
        self.channels = parse_channels(full)
        if not is_eeg_stream(full):
            logger.warning(
                "LSL stream %r has type %r, not EEG; reading it anyway.", self.name, full.type()
            )
        self.clock_offset = float(offset)
        self._next_correction = time.monotonic() + self.correction_interval_s
        native = np.dtype(_FORMAT_DTYPES[fmt])
        self._raw = np.zeros((self.max_chunk, self.n_channels), dtype=native)
        self._out = (
            self._raw
            if native == self.dtype
            else np.zeros((self.max_chunk, self.n_channels), dtype=self.dtype)
        )
        self._ts = np.zeros(self.max_chunk, dtype=np.float64)
        self._last_raw_ts: float | None = None
        self._last_data = time.monotonic()
        self.lost = False
        logger.info("Connected to LSL stream %s.", stream_summary(full))

    def close(self) -> None:
        """Unsubscribe and release the liblsl inlet (idempotent)."""
        if self._inlet is not None:
            try:
                self._inlet.close_stream()
            finally:
                self._inlet = None

    def __enter__(self) -> EEGInlet:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "lost" if self.lost else ("closed" if self._inlet is None else "open")
        return f"<EEGInlet {self.name!r} {self.n_channels} ch @ {self.sfreq:g} Hz, {state}>"

    @property
    def labels(self) -> list[str]:
        """Channel labels in stream order."""
        return [c.label for c in self.channels]

    @property
    def types(self) -> list[str | None]:
        """Channel types (lower case, None when untyped) in stream order."""
        return [c.type for c in self.channels]

    @property
    def seconds_since_data(self) -> float:
        """Seconds since the last pull that returned samples (or since connecting)."""
        return time.monotonic() - self._last_data

    def _mark_lost(self, err: BaseException) -> StreamLostError:
        self.lost = True
        self.close()
        msg = (
            f"LSL stream {self.name!r} (source_id={self.source_id!r}) was lost after "
            f"{self.n_received} samples."
        )
        msg += (
            " Call wait_for_return() to wait for a stream with the same source_id."
            if self.source_id
            else " It has no source_id, so its return cannot be recognised."
        )
        logger.warning(msg)
        return StreamLostError(msg)

    def wait_for_return(self, timeout: float) -> bool:
        """Wait for a stream with the same ``source_id`` and reconnect to it.

        Parameters
        ----------
        timeout : float
            Seconds to wait.

        Returns
        -------
        returned : bool
            True when reconnected (:attr:`lost` is then False), False on timeout.

        Raises
        ------
        ValueError
            When the stream has no source_id, or the returning stream's channel count,
            format or labels differ (the processing chain must then be rebuilt).
        """
        if not self.source_id:
            raise ValueError(
                f"LSL stream {self.name!r} has an empty source_id, so a returning stream "
                "cannot be recognised; resolve it again by name instead."
            )
        self.close()
        found = pylsl.resolve_bypred(
            f"source_id={_xpath_literal(self.source_id, 'source_id')}", 1, float(timeout)
        )
        if not found:
            return False
        new = found[0]
        old = (self.n_channels, self.channel_format, self.labels)
        fmt = _NUMERIC_FORMATS.get(new.channel_format(), format_name(new))
        if (new.channel_count(), fmt) != old[:2]:
            raise ValueError(
                f"The stream with source_id={self.source_id!r} came back with "
                f"{new.channel_count()} channels in {fmt} (was {old[0]} in {old[1]}); "
                "rebuild the processing chain for it."
            )
        self._connect(new)
        if self.labels != old[2]:
            self.close()
            self.lost = True
            raise ValueError(
                f"The stream with source_id={self.source_id!r} came back with different "
                f"channel labels ({self.labels[:8]}... vs {old[2][:8]}...); rebuild the "
                "processing chain for it."
            )
        self.n_reconnects += 1
        return True

    # -- pulling ----------------------------------------------------------------------
    def samples_available(self) -> int:
        """Samples received and waiting in the inlet's buffer (0 when closed or lost)."""
        if self.lost or self._inlet is None:
            return 0
        try:
            return int(self._inlet.samples_available())
        except Exception:  # a stream lost between the check and the call
            return 0

    def pull(self, timeout: float = 0.0) -> tuple[NDArray, NDArray[np.float64]]:
        """Pull the samples that are available (at most ``max_chunk``).

        Parameters
        ----------
        timeout : float
            Seconds to wait for the first sample; 0 returns at once.

        Returns
        -------
        data : array, shape (n_samples, n_channels)
            Samples in :attr:`dtype` (a view of a preallocated buffer, valid until the
            next pull; ``n_samples`` may be 0).
        timestamps : array, shape (n_samples,)
            Capture time of each sample in seconds (see ``clock_correction``; a view,
            valid until the next pull).

        Raises
        ------
        StreamLostError
            When the stream is (or was) lost; see :meth:`wait_for_return`.
        """
        if self.lost or self._inlet is None:
            raise StreamLostError(
                f"LSL stream {self.name!r} (source_id={self.source_id!r}) is "
                f"{'lost' if self.lost else 'closed'}; no data can be pulled."
            )
        try:
            raw, ts_raw = self._inlet.pull_chunk(
                timeout=float(timeout),
                max_samples=self.max_chunk,
                dest_obj=self._raw,
                min_samples=1 if timeout > 0 else None,
                as_numpy=True,
            )
        except _PylslLostError as err:
            raise self._mark_lost(err) from err
        n = len(ts_raw)
        if n == 0:
            return self._out[:0], self._ts[:0]
        self._check_backwards(ts_raw)
        if self.clock_correction:
            now = time.monotonic()
            if now >= self._next_correction:
                self._next_correction = now + self.correction_interval_s
                try:
                    self.clock_offset = float(self._inlet.time_correction(timeout=0.05))
                except _PylslTimeoutError:
                    pass  # keep the previous estimate
                except _PylslLostError as err:
                    raise self._mark_lost(err) from err
        np.add(ts_raw, self.clock_offset, out=self._ts[:n])
        if self._out is not self._raw:
            np.copyto(self._out[:n], raw, casting="unsafe")
        self.n_received += n
        self._last_data = time.monotonic()
        return self._out[:n], self._ts[:n]

    def _check_backwards(self, ts_raw: NDArray[np.float64]) -> None:
        count = 0
        jump = 0.0
        if self._last_raw_ts is not None and ts_raw[0] < self._last_raw_ts:
            count += 1
            jump = self._last_raw_ts - float(ts_raw[0])
        if len(ts_raw) > 1:
            diffs = np.diff(ts_raw)
            neg = diffs < 0
            if neg.any():
                count += int(np.count_nonzero(neg))
                jump = max(jump, float(-diffs[neg].min()))
        self._last_raw_ts = float(ts_raw[-1])
        if count:
            self.n_backwards += count
            now = time.monotonic()
            if now - self._last_warn > 1.0:  # at most one warning a second
                self._last_warn = now
                logger.warning(
                    "LSL stream %r: timestamps jumped backwards (%d times in this chunk, by "
                    "up to %.6f s; %d so far). The sender's clock or its chunk stamping is "
                    "irregular.",
                    self.name,
                    count,
                    jump,
                    self.n_backwards,
                )

    def pull_into(self, ring: Any, timeout: float = 0.0) -> int:
        """Pull a chunk and write it into a :class:`~rtsource.stream.ring.RingBuffer`.

        Returns the number of samples pulled.
        """
        data, ts = self.pull(timeout)
        if len(ts):
            ring.write(data, ts)
        return len(ts)
