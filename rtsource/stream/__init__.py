"""Streaming I/O and preprocessing: LSL inlet, ring buffer, filters, outlets, player.

Pure stages (no threads, no LSL): :class:`RingBuffer`, :class:`Windower`,
:class:`ChannelMapper`, :class:`CausalFilter`, :func:`average_reference`,
:class:`BadDataCheck`. LSL endpoints: :func:`resolve_stream`, :class:`EEGInlet`,
:class:`RegionOutlet`, :class:`MarkerOutlet`, :func:`play_file` / :class:`Player`.
"""

from .lslio import (
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
from .preprocess import (
    DEFAULT_ALIASES,
    BadDataCheck,
    BadDataReport,
    CausalFilter,
    ChannelMapper,
    ChannelMapping,
    average_reference,
    design_sos,
    normalize_label,
)
from .ring import RingBuffer, RingOverflowError, Windower

__all__ = [
    "DEFAULT_ALIASES",
    "BadDataCheck",
    "BadDataReport",
    "CausalFilter",
    "ChannelInfo",
    "ChannelMapper",
    "ChannelMapping",
    "EEGInlet",
    "MarkerOutlet",
    "Player",
    "RegionOutlet",
    "RingBuffer",
    "RingOverflowError",
    "StreamLostError",
    "StreamNotFoundError",
    "Windower",
    "average_reference",
    "describe_positions",
    "design_sos",
    "is_eeg_stream",
    "normalize_label",
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
