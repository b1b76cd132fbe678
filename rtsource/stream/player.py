"""Replay an MNE-readable recording on an LSL outlet in real time.

``mne.io.read_raw`` picks the reader (FIF, EDF/BDF, BrainVision, EEGLAB...). The
outlet describes every channel the way mne-lsl does: ``label``, ``type`` (MNE channel
type), ``unit`` and, where the file has electrode positions, ``loc/{R0x..Ezz}``
(MNE's 12-value ``loc``: position in metres, head frame).

Samples are the file's values in SI units (volts for EEG), converted to float32 by
default (``dtype="double64"`` sends them unchanged): an inlet receives exactly
``raw.get_data().T.astype(dtype)``.
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
from ._background import BackgroundSender

_LOC_NAMES = ("R0x", "R0y", "R0z", "Exx", "Exy", "Exz", "Eyx", "Eyy", "Eyz", "Ezx", "Ezy", "Ezz")
_DTYPES = {"float32": (pylsl.cf_float32, np.float32), "double64": (pylsl.cf_double64, np.float64)}
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
    """Build an LSL StreamInfo describing an ``mne.io.Raw`` (labels, types, units, loc).

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
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not valid; choose one of {list(_DTYPES)}.")
    n = len(raw.ch_names)
    info = pylsl.StreamInfo(name, stype, n, float(raw.info["sfreq"]), _DTYPES[dtype][0], source_id)
    desc = info.desc()
    desc.append_child_value("manufacturer", "rtsource player")
    types = raw.get_channel_types()
    chans = desc.append_child("channels")
    n_pos = 0
    for ch, ch_type in zip(raw.info["chs"], types, strict=True):
        el = chans.append_child("channel")
        el.append_child_value("label", ch["ch_name"])
        el.append_child_value("type", ch_type)
        el.append_child_value("unit", _unit(ch, ch_type))
        loc = np.asarray(ch["loc"], dtype=np.float64)
        if np.all(np.isfinite(loc[:3])) and np.any(loc[:3] != 0):
            n_pos += 1
            loc_el = el.append_child("loc")
            for key, value in zip(_LOC_NAMES, loc, strict=True):
                loc_el.append_child_value(key, repr(float(value)))
    filters = desc.append_child("filters")
    filters.append_child_value("highpass", repr(float(raw.info["highpass"])))
    filters.append_child_value("lowpass", repr(float(raw.info["lowpass"])))
    logger.debug("Stream %r: %d channels, %d with positions.", name, n, n_pos)
    return info


def default_source_id(path: str | Path, name: str) -> str:
    """Stable source_id for replaying ``path`` under ``name``."""
    return f"rtsource-play-{stable_hash(str(Path(path).resolve()), name)}"


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
    raw : mne.io.Raw | None
        An already loaded recording (``path`` is then only used for naming).

    Returns
    -------
    n_pushed : int
        Samples pushed.
    """
    if not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"speed must be a positive finite number, got {speed}.")
    if dtype not in _DTYPES:
        raise ValueError(f"dtype={dtype!r} is not valid; choose one of {list(_DTYPES)}.")
    if raw is None:
        raw = _read_raw(path)
    name = name or f"rtsource-play-{Path(path).stem}"
    source_id = source_id or default_source_id(path, name)
    sfreq = float(raw.info["sfreq"])
    data: NDArray = np.ascontiguousarray(raw.get_data().T, dtype=_DTYPES[dtype][1])
    n_times = data.shape[0]
    if n_times == 0:
        raise ValueError(f"Recording {str(path)!r} has no samples.")
    if chunk_size is None:
        chunk_size = max(1, round(sfreq * speed / 100.0))
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be at least 1 sample, got {chunk_size}.")
    info = raw_stream_info(raw, name, source_id, dtype)
    stop_event = stop_event or threading.Event()
    outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=360)
    logger.info(
        "Playing %s as LSL stream %r (source_id %s): %d channels, %g Hz, %.1f s, speed %g%s.",
        path,
        name,
        source_id,
        data.shape[1],
        sfreq,
        n_times / sfreq,
        speed,
        ", looping" if loop else "",
    )
    if ready_event is not None:
        ready_event.set()
    if wait_for_consumer_s:
        deadline = pylsl.local_clock() + wait_for_consumer_s
        while not outlet.have_consumers() and pylsl.local_clock() < deadline:
            if stop_event.wait(0.005):
                break
    period = 1.0 / (sfreq * speed)
    offsets = np.arange(chunk_size, dtype=np.float64)
    ts = np.empty(chunk_size, dtype=np.float64)
    t0 = pylsl.local_clock()
    pushed = 0
    pos = 0
    try:
        while not stop_event.is_set():
            n = min(chunk_size, n_times - pos)
            # a sample is pushed once its capture time has come
            delay = t0 + (pushed + n - 1) * period - pylsl.local_clock()
            if delay > 0 and stop_event.wait(delay):
                break
            np.multiply(offsets[:n] + pushed, period, out=ts[:n])
            ts[:n] += t0
            outlet.push_chunk(data[pos : pos + n], ts[:n])
            pushed += n
            pos += n
            if pos >= n_times:
                if not loop:
                    if linger_s > 0:
                        stop_event.wait(linger_s)
                    break
                pos = 0
                logger.debug("Player %r: looping after %d samples.", name, pushed)
    finally:
        del outlet
    logger.info("Player %r stopped after %d samples.", name, pushed)
    return pushed


class Player(BackgroundSender):
    """Replay a recording on LSL from a background thread.

    Parameters are those of :func:`play_file`. The file is read in the constructor
    (so errors surface at once), the outlet is created by :meth:`start`.

    Attributes
    ----------
    name, source_id : str
        The stream's name and source_id.
    raw : mne.io.Raw
        The loaded recording.
    n_pushed : int | None
        Samples pushed, once the thread has finished.
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
    ) -> None:
        if not (speed > 0 and math.isfinite(speed)):
            raise ValueError(f"speed must be a positive finite number, got {speed}.")
        if dtype not in _DTYPES:
            raise ValueError(f"dtype={dtype!r} is not valid; choose one of {list(_DTYPES)}.")
        self.path = Path(path)
        self.raw = _read_raw(self.path)
        self.name = name or f"rtsource-play-{self.path.stem}"
        self.source_id = source_id or default_source_id(self.path, self.name)
        self._kwargs = dict(
            speed=speed,
            loop=loop,
            chunk_size=chunk_size,
            dtype=dtype,
            wait_for_consumer_s=wait_for_consumer_s,
            linger_s=linger_s,
        )
        self.n_pushed: int | None = None
        self._init_background()

    def _send(self, stop_event: threading.Event, ready_event: threading.Event) -> None:
        self.n_pushed = play_file(
            self.path,
            self.name,
            source_id=self.source_id,
            stop_event=stop_event,
            ready_event=ready_event,
            raw=self.raw,
            **self._kwargs,  # type: ignore[arg-type]
        )
