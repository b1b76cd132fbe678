"""LSL I/O only: resolving, inlet and ring buffer, outlets and markers, senders.

No physics and no head models live here (those are in :mod:`rtsource.online` and below).
The ring buffer (:class:`RingBuffer`) is the one pure piece; LSL endpoints:
:func:`resolve_stream`, :class:`EEGInlet`, :class:`RegionOutlet`, :class:`MarkerOutlet`,
:class:`LiveSender` (the real-time push loop of a generated signal) with
:func:`eeg_stream_info`, :func:`play_file` / :class:`Player` (a recording on a
:class:`LiveSender`), and the sample-index channel convention
(:data:`INDEX_LABEL`, :data:`INDEX_MODULO`).
"""

from .lslio import (
    INDEX_LABEL,
    INDEX_MODULO,
    ChannelInfo,
    EEGInlet,
    StreamLostError,
    StreamNotFoundError,
    describe_positions,
    is_eeg_stream,
    parse_channels,
    positions_array,
    resolve_stream,
    stream_summary,
    unit_to_volts,
)
from .outlet import MarkerOutlet, RegionOutlet, read_desc, region_source_id
from .player import Player, play_file, raw_stream_info
from .ring import RingBuffer, RingOverflowError
from .sender import LiveSender, eeg_stream_info

__all__ = [
    "INDEX_LABEL",
    "INDEX_MODULO",
    "ChannelInfo",
    "EEGInlet",
    "LiveSender",
    "MarkerOutlet",
    "Player",
    "RegionOutlet",
    "RingBuffer",
    "RingOverflowError",
    "StreamLostError",
    "StreamNotFoundError",
    "describe_positions",
    "eeg_stream_info",
    "is_eeg_stream",
    "parse_channels",
    "play_file",
    "positions_array",
    "raw_stream_info",
    "read_desc",
    "region_source_id",
    "resolve_stream",
    "stream_summary",
    "unit_to_volts",
]
