"""Replay an MNE-readable recording on an LSL outlet in real time.

``mne.io.read_raw`` picks the reader (FIF, EDF/BDF, BrainVision, EEGLAB...). The
outlet describes every channel the way mne-lsl does: ``label``, ``type`` (MNE channel
type), ``unit`` and, where the file has electrode positions, ``loc/{R0x..Ezz}``
(MNE's 12-value ``loc``: position in metres, head frame).

Samples are the file's values in SI units (volts for EEG), converted to float32 by
default (``dtype="double64"`` sends them unchanged): an inlet receives exactly
``raw.get_data().T.astype(dtype)``. The push loop is :class:`~.sender.LiveSender`'s,
the same as the simulated amplifier's.
"""

from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray

from .._util import logger, stable_hash
from .sender import CHANNEL_FORMATS, LiveSender, append_loc, check_dtype

_VOLT_TYPES = frozenset(
    {"eeg", "eog", "ecg", "emg", "seeg", "ecog", "dbs", "bio", "resp", "gsr", "temperature"}
)


def _read_raw(path: str | Path) -> Any:
    import mne

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Recording {str(path)!r} does not exist.")
    try:
        return mne.io.read_raw(path, preload=True, verbose="error")
    except ValueError as err:
        raise ValueError(
            f"MNE cannot read {str(path)!r} ({err}). Supported: FIF, EDF/BDF, BrainVision "
            "(.vhdr), EEGLAB (.set) and the other formats of mne.io.read_raw."
        ) from err


def _unit(ch: dict, ch_type: str) -> str:
    code = int(ch["unit"])
    if ch_type == "stim" or code == -1:
        return "none"
    return {107: "volts", 112: "tesla", 201: "tesla/m"}.get(code, "unknown")


def raw_stream_info(
    raw: Any, name: str, source_id: str, dtype: str = "float32", stype: str = "EEG"
) -> pylsl.StreamInfo:
    """Build an LSL StreamInfo describing an ``mne.io.Raw`` (labels, types, units, loc,
    and ``<bad>true</bad>`` for the channels in ``info["bads"]``).

    Parameters
    ----------
    raw : mne.io.Raw
    name, source_id : str
        Stream name and source identifier.
    dtype : ``"float32"`` | ``"double64"``
        Channel format.
    stype : str
        Stream type.
    """
    check_dtype(dtype)
    n = len(raw.ch_names)
    fmt = CHANNEL_FORMATS[dtype][0]
    info = pylsl.StreamInfo(name, stype, n, float(raw.info["sfreq"]), fmt, source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", "rtsource player")
    types = raw.get_channel_types()
    chans = desc.append_child("channels")
    n_pos = 0
    bads = set(raw.info["bads"])
    for ch, ch_type in zip(raw.info["chs"], types, strict=True):
        el = chans.append_child("channel")
        el.append_child_value("label", ch["ch_name"])
        el.append_child_value("type", ch_type)
        el.append_child_value("unit", _unit(ch, ch_type))
        if ch["ch_name"] in bads:  # MNE's info["bads"]: `rtsource run` leaves them out
            el.append_child_value("bad", "true")
        loc = np.asarray(ch["loc"], dtype=np.float64)
        if np.all(np.isfinite(loc[:3])) and np.any(loc[:3] != 0):
            n_pos += 1
            append_loc(el, loc)
    filters = desc.append_child("filters")
    filters.append_child_value("highpass", repr(float(raw.info["highpass"])))
    filters.append_child_value("lowpass", repr(float(raw.info["lowpass"])))
    logger.debug("Stream %r: %d channels, %d with positions.", name, n, n_pos)
    return info


def default_source_id(path: str | Path, name: str) -> str:
    """Stable source_id for replaying ``path`` under ``name``."""
    return f"rtsource-play-{stable_hash(str(Path(path).resolve()), name)}"


class Player(LiveSender):
    """Replay a recording on LSL in real time: blocking with :meth:`run`, or from a
    background thread with :meth:`start` (and :meth:`stop`, :meth:`wait`, ``with``).

    The file is read in the constructor (so errors surface at once); the outlet is
    created when streaming starts.

    Parameters
    ----------
    path : path-like
        Any file ``mne.io.read_raw`` reads.
    name : str | None
        Stream name (default ``"rtsource-play-<file stem>"``).
    speed : float
        Playback speed: 2 plays twice as fast. ``nominal_srate`` stays the file's rate
        (the signal's content); timestamps advance by ``1 / (sfreq * speed)`` per sample.
    loop : bool
        Start again at the beginning at the end of the file (timestamps keep increasing).
    chunk_size : int | None
        Samples per push (default: about 10 ms of wall time).
    source_id : str | None
        Stream source_id (default :func:`default_source_id`).
    dtype : ``"float32"`` | ``"double64"``
        Channel format; the file's values (volts) are cast to it.
    wait_for_consumer_s : float | None
        With :meth:`start`: wait up to this many seconds for an inlet before the first
        push, so that it receives the recording from its first sample.
    linger_s : float
        With :meth:`start`: when a non-looping replay ends, keep the outlet alive this long
        (or until stopped) so that inlets can pull the last samples: liblsl reports a lost
        stream, and drops what an inlet has not pulled yet, once the outlet is gone.
    raw : mne.io.Raw | None
        An already loaded recording (``path`` is then only used for naming).

    Attributes
    ----------
    name, source_id : str
        The stream's name and source_id.
    raw : mne.io.Raw
        The loaded recording.
    n_pushed : int
        Samples pushed so far (counting every loop).
    error : BaseException | None
        The exception that ended the thread, if any (re-raised by :meth:`stop`).

    Examples
    --------
    >>> with Player("rec_raw.fif", name="test", speed=2.0, loop=True) as player:
    ...     info = resolve_stream(name=player.name)
    """

    _what = "Player"

    def __init__(
        self,
        path: str | Path,
        name: str | None = None,
        speed: float = 1.0,
        loop: bool = False,
        chunk_size: int | None = None,
        *,
        source_id: str | None = None,
        dtype: str = "float32",
        wait_for_consumer_s: float | None = None,
        linger_s: float = 1.0,
        raw: Any = None,
    ) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive finite number, got {speed}.")
        check_dtype(dtype)
        self.path = Path(path)
        self.raw = _read_raw(self.path) if raw is None else raw
        name = name or f"rtsource-play-{self.path.stem}"
        self.sfreq = float(self.raw.info["sfreq"])
        self.speed = float(speed)
        self.loop = bool(loop)
        self._data: NDArray = np.ascontiguousarray(
            self.raw.get_data().T, dtype=CHANNEL_FORMATS[dtype][1]
        )
        self.n_times = self._data.shape[0]
        if self.n_times == 0:
            raise ValueError(f"Recording {str(self.path)!r} has no samples.")
        self.n_samples = None if self.loop else self.n_times
        self._pos = 0  # next sample of the file
        super().__init__(
            name,
            self.sfreq * self.speed,
            self._data.shape[1],
            source_id or default_source_id(self.path, name),
            chunk_size=chunk_size,
            dtype=dtype,
        )
        self._run_defaults = {"wait_for_consumer_s": wait_for_consumer_s, "linger_s": linger_s}

    def generate(self, n: int, out: NDArray) -> NDArray:
        """Copy the next ``n`` samples of the file into ``out`` (from the start when
        looping past its end)."""
        done = 0
        while done < n:
            m = min(n - done, self.n_times - self._pos)
            out[done : done + m] = self._data[self._pos : self._pos + m]
            done += m
            self._pos += m
            if self._pos >= self.n_times:
                if not self.loop and done < n:
                    raise ValueError(f"Player {self.name!r}: the recording has no more samples.")
                self._pos = 0
                if self.loop:
                    logger.debug("Player %r: looping after %d samples.", self.name,
                                 self.n_pushed + done)
        return out

    def stream_info(self) -> pylsl.StreamInfo:
        """StreamInfo describing the recording (see :func:`raw_stream_info`)."""
        return raw_stream_info(self.raw, self.name, self.source_id, self.dtype)

    def _summary(self) -> str:
        return (
            f"{self.path}, {self.n_channels} channels, {self.sfreq:g} Hz, "
            f"{self.n_times / self.sfreq:.1f} s, speed {self.speed:g}"
            f"{', looping' if self.loop else ''}"
        )

    def _send(self, stop_event: threading.Event, ready_event: threading.Event,
              **kwargs: Any) -> None:
        self.run(stop_event=stop_event, ready_event=ready_event,
                 **{**self._run_defaults, **kwargs})


def play_file(
    path: str | Path,
    name: str | None = None,
    speed: float = 1.0,
    loop: bool = False,
    chunk_size: int | None = None,
    *,
    source_id: str | None = None,
    dtype: str = "float32",
    stop_event: threading.Event | None = None,
    ready_event: threading.Event | None = None,
    wait_for_consumer_s: float | None = None,
    linger_s: float = 1.0,
    raw: Any = None,
) -> int:
    """Replay a recording on an LSL outlet in real time (blocking).

    Parameters
    ----------
    path, name, speed, loop, chunk_size, source_id, dtype, raw
        As for :class:`Player`.
    stop_event : threading.Event | None
        Set it to stop; checked between pushes.
    ready_event : threading.Event | None
        Set once the outlet exists (and is discoverable).
    wait_for_consumer_s : float | None
        Wait up to this many seconds for an inlet before the first push, so that it
        receives the recording from its first sample.
    linger_s : float
        When a non-looping replay ends, keep the outlet alive this long (or until
        ``stop_event``) so that inlets can pull the last samples: liblsl reports a lost
        stream, and drops what an inlet has not pulled yet, once the outlet is gone.

    Returns
    -------
    n_pushed : int
        Samples pushed.
    """
    player = Player(path, name, speed, loop, chunk_size, source_id=source_id, dtype=dtype,
                    raw=raw)
    return player.run(stop_event=stop_event, ready_event=ready_event,
                      wait_for_consumer_s=wait_for_consumer_s, linger_s=linger_s)
