"""Send a generated multichannel signal on LSL in real time.

:class:`LiveSender` is the push loop shared by everything that plays a signal on LSL as
an amplifier would (the file :class:`~rtsource.stream.player.Player`, the simulated
amplifier of :mod:`rtsource.simulate`): sample ``k`` of a run is stamped with its capture
time ``t0 + k / rate`` and pushed, in chunks, once that time has come. A subclass says
what is sent by filling three hooks (:meth:`~LiveSender.generate`,
:meth:`~LiveSender.stream_info` and, for an irregular marker stream next to the data,
:meth:`~LiveSender.marker_info` / :meth:`~LiveSender.markers`); the sender knows nothing
of where the samples come from.

:func:`eeg_stream_info` describes an EEG stream the way mne-lsl does:
``desc/channels/channel/{label,type,unit}``, electrode positions in MNE's
``loc/{R0x..Ezz}`` (metres, head frame) and, last, the sample-index channel
(:data:`~rtsource.stream.lslio.INDEX_LABEL`, type ``misc``) that lets a receiver prove that
nothing was dropped or duplicated.
"""

from __future__ import annotations

import abc
import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pylsl
from numpy.typing import ArrayLike, NDArray

from .._util import logger
from ._background import BackgroundSender
from .lslio import INDEX_LABEL

#: Names of the 12 values of MNE's channel ``loc`` (position in metres, then orientation).
LOC_NAMES = ("R0x", "R0y", "R0z", "Exx", "Exy", "Exz", "Eyx", "Eyy", "Eyz", "Ezx", "Ezy", "Ezz")
#: Channel formats a sender writes: name -> (pylsl channel format, numpy dtype).
CHANNEL_FORMATS: dict[str, tuple[int, type[np.floating]]] = {
    "float32": (pylsl.cf_float32, np.float32),
    "double64": (pylsl.cf_double64, np.float64),
}


def check_dtype(dtype: str) -> str:
    """Return ``dtype`` if it names a channel format of :data:`CHANNEL_FORMATS`.

    Raises
    ------
    ValueError
        Naming the valid formats.
    """
    if dtype not in CHANNEL_FORMATS:
        raise ValueError(f"dtype={dtype!r} is not valid; choose one of {list(CHANNEL_FORMATS)}.")
    return dtype


def append_loc(channel: pylsl.info.XMLElement, loc: ArrayLike) -> None:
    """Append MNE's 12-value ``loc`` (metres, head frame) to a ``channel`` element.

    Values are written with ``repr`` so that they survive the XML at full precision.
    """
    values = np.zeros(len(LOC_NAMES))
    given = np.asarray(loc, dtype=np.float64).ravel()[: len(LOC_NAMES)]
    values[: len(given)] = given
    el = channel.append_child("loc")
    for key, value in zip(LOC_NAMES, values, strict=True):
        el.append_child_value(key, repr(float(value)))


def eeg_stream_info(
    name: str,
    ch_names: Sequence[str],
    sfreq: float,
    source_id: str,
    *,
    ch_pos: ArrayLike | None = None,
    dtype: str = "float32",
    index_channel: bool = True,
    manufacturer: str | None = None,
    stype: str = "EEG",
) -> pylsl.StreamInfo:
    """StreamInfo of an EEG stream: labels, types, units, positions, sample index.

    Parameters
    ----------
    name, source_id : str
        Stream name and (stable) source identifier.
    ch_names : sequence of str
        EEG channel labels (type ``eeg``, unit ``volts``).
    sfreq : float
        Nominal sampling rate (Hz).
    ch_pos : array, shape (n_eeg, 3) | None
        Electrode positions in metres (head frame), written to ``loc/{R0x..Ezz}``
        (orientation values zero). A row with a non-finite value gets no ``loc``.
    dtype : ``"float32"`` | ``"double64"``
        Channel format.
    index_channel : bool
        Append the sample-index channel (label :data:`~rtsource.stream.lslio.INDEX_LABEL`,
        type ``misc``, unit ``none``) after the EEG channels.
    manufacturer : str | None
        Written to ``desc/manufacturer``.
    stype : str
        Stream type.

    Returns
    -------
    info : pylsl.StreamInfo
        With ``n_eeg + index_channel`` channels; callers may append more to ``info.desc()``.
    """
    check_dtype(dtype)
    if not (sfreq > 0 and math.isfinite(sfreq)):
        raise ValueError(f"sfreq must be a positive rate in Hz, got {sfreq}.")
    labels = [str(c) for c in ch_names]
    pos = None
    if ch_pos is not None:
        pos = np.asarray(ch_pos, dtype=np.float64)
        if pos.shape != (len(labels), 3):
            raise ValueError(
                f"ch_pos has shape {pos.shape}; expected ({len(labels)}, 3): one position "
                "in metres per EEG channel."
            )
    n = len(labels) + int(bool(index_channel))
    info = pylsl.StreamInfo(name, stype, n, float(sfreq), CHANNEL_FORMATS[dtype][0], source_id)
    desc = info.desc()
    if manufacturer is not None:
        desc.append_child_value("manufacturer", manufacturer)
    chans = desc.append_child("channels")
    for k, label in enumerate(labels):
        ch = chans.append_child("channel")
        ch.append_child_value("label", label)
        ch.append_child_value("type", "eeg")
        ch.append_child_value("unit", "volts")
        if pos is not None and np.all(np.isfinite(pos[k])):
            append_loc(ch, pos[k])
    if index_channel:
        ch = chans.append_child("channel")
        ch.append_child_value("label", INDEX_LABEL)
        ch.append_child_value("type", "misc")
        ch.append_child_value("unit", "none")
    return info


class LiveSender(BackgroundSender, abc.ABC):
    """Push a generated signal to an LSL outlet in real time.

    Sample ``k`` (counted from the first sample this sender pushed) is stamped
    ``t0 + k / rate`` and pushed, in chunks of ``chunk_size``, once the capture time of
    its chunk's last sample has come. :meth:`run` blocks; :meth:`start` runs it on a
    background thread (:meth:`stop`, :meth:`wait` and the context manager come from
    :class:`~rtsource.stream._background.BackgroundSender`).

    Subclasses implement :meth:`generate` and :meth:`stream_info`, and may add an
    irregular string marker stream with :meth:`marker_info` and :meth:`markers`. A finite
    signal sets :attr:`n_samples`.

    Parameters
    ----------
    name : str
        Stream name (for messages; the StreamInfo of :meth:`stream_info` names the stream).
    rate : float
        Samples per second of LSL time: the stamp spacing and pacing. Usually the stream's
        nominal rate; a multiple of it replays faster.
    n_channels : int
        Channels per sample (must match :meth:`stream_info`).
    source_id : str
        The stream's source_id.
    chunk_size : int | None
        Samples per push (default: about 10 ms, ``round(rate / 100)``).
    dtype : ``"float32"`` | ``"double64"``
        Channel format (must match :meth:`stream_info`); :meth:`generate` writes into
        arrays of this type.

    Attributes
    ----------
    n_pushed : int
        Samples pushed so far (also the index of the next sample).
    t0 : float | None
        LSL time (capture time) of sample 0, once streaming.
    push_log : collections.deque | None
        With ``record_push_times=True`` in :meth:`run`: ``(first_index, n, push_time)``
        per chunk, ``push_time`` being ``pylsl.local_clock()`` right after the push.
    n_samples : int | None
        Length of the signal in samples (None: endless); :meth:`run` stops there.
    error : BaseException | None
        What ended the background thread, if anything (re-raised by :meth:`stop`).
    """

    _what = "LSL sender"
    #: Length of the signal in samples; None for an endless signal.
    n_samples: int | None = None

    def __init__(
        self,
        name: str,
        rate: float,
        n_channels: int,
        source_id: str,
        *,
        chunk_size: int | None = None,
        dtype: str = "float32",
    ) -> None:
        if not (rate > 0 and math.isfinite(rate)):
            raise ValueError(f"rate must be a positive number of samples per second, got {rate}.")
        self.dtype = check_dtype(dtype)
        if int(n_channels) < 1:
            raise ValueError(f"n_channels must be at least 1, got {n_channels}.")
        self.name = name
        self.source_id = source_id
        self.rate = float(rate)
        self.n_channels = int(n_channels)
        self.chunk_size = int(max(1, round(self.rate / 100.0)) if chunk_size is None else chunk_size)
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1 sample, got {chunk_size}.")
        self.n_pushed = 0
        self.t0: float | None = None
        self.push_log: deque[tuple[int, int, float]] | None = None
        self._held: NDArray | None = None  # generated, not pushed (stopped while waiting)
        self._init_background()

    @property
    def n_pending(self) -> int:
        """Samples generated but not pushed yet.

        A chunk is generated before its capture time has come; when the sender is stopped
        while waiting for it, the chunk is kept and the next :meth:`run` pushes it first,
        so the stream never skips a generated sample.
        """
        return 0 if self._held is None else len(self._held)

    # -- hooks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def generate(self, n: int, out: NDArray) -> NDArray:
        """Write the next ``n`` samples into ``out`` and return it.

        Called by :meth:`run` for consecutive samples, starting after the last one
        generated (samples ``n_pushed + n_pending ..``).

        Parameters
        ----------
        n : int
            Number of samples.
        out : array, shape (n, n_channels), of the channel format's dtype
            Destination; every value must be written.
        """

    @abc.abstractmethod
    def stream_info(self) -> pylsl.StreamInfo:
        """StreamInfo of the data stream (``n_channels`` channels of format ``dtype``)."""

    def marker_info(self) -> pylsl.StreamInfo | None:
        """StreamInfo of an irregular string marker stream sent alongside (default none)."""
        return None

    def markers(self, start: int, stop: int) -> Iterable[tuple[str, int]]:
        """Markers due with samples ``start .. stop - 1``: ``(text, sample_index)`` pairs.

        Each is pushed on the marker stream, stamped with the capture time of its sample
        (:meth:`sample_time`), right before the chunk holding that sample. Only called
        when :meth:`marker_info` gives a stream.
        """
        return ()

    def _summary(self) -> str:
        """What is streamed, for the log line when streaming starts."""
        return f"{self.n_channels} channels at {self.rate:g} Hz"

    # -- the push loop --------------------------------------------------------------------
    def sample_time(self, k: int) -> float:
        """Capture time (LSL clock) of sample ``k``: ``t0 + k / rate``."""
        if self.t0 is None:
            raise RuntimeError(f"{self._what} {self.name!r} has not started streaming yet.")
        return self.t0 + k * (1.0 / self.rate)

    def run(
        self,
        duration_s: float | None = None,
        *,
        stop_event: threading.Event | None = None,
        ready_event: threading.Event | None = None,
        wait_for_consumer_s: float | None = None,
        record_push_times: bool = False,
        on_marker: Callable[[str, int], None] | None = None,
        linger_s: float = 0.5,
    ) -> int:
        """Stream in real time until ``duration_s`` elapsed, the signal ends or a stop.

        Parameters
        ----------
        duration_s : float | None
            Seconds (of LSL time, at ``rate``) to stream (None: until stopped or until
            :attr:`n_samples`).
        stop_event : threading.Event | None
            Set it to stop (checked between pushes; default: the event :meth:`stop` sets).
        ready_event : threading.Event | None
            Set once the outlets exist.
        wait_for_consumer_s : float | None
            Wait up to this long for an inlet on the data stream before the first sample.
        record_push_times : bool
            Fill :attr:`push_log` with ``(first_index, n, push_time)`` per chunk.
        on_marker : callable | None
            Called as ``on_marker(text, sample_index)`` after each marker is pushed.
        linger_s : float
            Keep the outlets alive this long after the last push, unless stopped (so inlets
            can pull the last samples: liblsl drops what is unread once an outlet is gone).

        Returns
        -------
        n_pushed : int
            Samples pushed so far by this sender.

        Notes
        -----
        A second run continues the sample count (starting with the samples of
        :attr:`n_pending`): ``t0`` is then set so that the first sample of the new run is
        stamped with the time it starts.
        """
        stop_event = stop_event or self._stop
        info = self.stream_info()
        fmt, np_dtype = CHANNEL_FORMATS[self.dtype]
        if info.channel_count() != self.n_channels or info.channel_format() != fmt:
            raise ValueError(
                f"{self._what} {self.name!r}: stream_info() describes {info.channel_count()} "
                f"channels of format {info.channel_format()}, but the sender sends "
                f"{self.n_channels} channels of {self.dtype!r} (format {fmt})."
            )
        minfo = self.marker_info()
        outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
        marker_outlet = None if minfo is None else pylsl.StreamOutlet(minfo)
        if record_push_times:
            self.push_log = deque()
        if ready_event is not None:
            ready_event.set()
        logger.info(
            "%s %r (source_id %s): streaming %s%s.",
            self._what,
            self.name,
            self.source_id,
            self._summary(),
            "" if minfo is None else f"; markers on {minfo.name()!r}",
        )
        try:
            if wait_for_consumer_s:
                deadline = pylsl.local_clock() + wait_for_consumer_s
                while not outlet.have_consumers() and pylsl.local_clock() < deadline:
                    if stop_event.wait(0.005):
                        break
            k0 = self.n_pushed
            end = None if duration_s is None else k0 + max(0, round(duration_s * self.rate))
            if self.n_samples is not None:
                end = self.n_samples if end is None else min(end, self.n_samples)
            period = 1.0 / self.rate
            chunk = self.chunk_size
            buf = np.empty((chunk, self.n_channels), dtype=np_dtype)
            ts = np.empty(chunk)
            offsets = np.arange(chunk, dtype=np.float64)
            self.t0 = t0 = pylsl.local_clock() - k0 * period
            while not stop_event.is_set():
                k = self.n_pushed
                n = chunk if end is None else min(chunk, end - k)
                if n <= 0:
                    break
                m = 0
                if self._held is not None:  # generated by an earlier run, not pushed
                    m = min(n, len(self._held))
                    buf[:m] = self._held[:m]
                    self._held = self._held[m:] if m < len(self._held) else None
                if m < n:
                    self.generate(n - m, buf[m:n])
                np.multiply(offsets[:n] + k, period, out=ts[:n])
                ts[:n] += t0
                # a sample is pushed once its capture time has come
                delay = ts[n - 1] - pylsl.local_clock()
                if delay > 0 and stop_event.wait(delay):
                    held = self._held
                    self._held = buf[:n].copy()
                    if held is not None:
                        self._held = np.concatenate([self._held, held])
                    break
                if marker_outlet is not None:
                    for text, index in self.markers(k, k + n):
                        marker_outlet.push_sample([text], t0 + index * period)
                        if on_marker is not None:
                            on_marker(text, index)
                outlet.push_chunk(buf[:n], ts[:n])
                if self.push_log is not None:
                    self.push_log.append((k, n, pylsl.local_clock()))
                self.n_pushed += n
            if linger_s > 0 and not stop_event.is_set():
                stop_event.wait(linger_s)
        finally:
            del outlet, marker_outlet
        logger.info("%s %r stopped after %d samples.", self._what, self.name, self.n_pushed)
        return self.n_pushed

    # -- background thread (start/stop/wait from BackgroundSender) ------------------------
    def _send(self, stop_event: threading.Event, ready_event: threading.Event,
              **kwargs: Any) -> None:
        self.run(stop_event=stop_event, ready_event=ready_event, **kwargs)
