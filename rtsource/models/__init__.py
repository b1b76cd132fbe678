"""Refinement networks: the 3D-PIUNet U-Net, volume mapping and checkpoints."""

from .checkpoint import (
    FORMAT_VERSION,
    Checkpoint,
    ChecksumMismatchError,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from .piunet import GRID_SIZE, PIUNET_PRESETS, PIUNet, PIUNetSpec, count_parameters
from .volume import VolumeMapper

__all__ = [
    "FORMAT_VERSION",
    "GRID_SIZE",
    "PIUNET_PRESETS",
    "Checkpoint",
    "ChecksumMismatchError",
    "PIUNet",
    "PIUNetSpec",
    "VolumeMapper",
    "count_parameters",
    "load_checkpoint",
    "read_header",
    "save_checkpoint",
]
