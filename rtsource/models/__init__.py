"""Networks as plain ``torch.nn.Module``s with static shapes, and their checkpoints.

A network knows nothing of how it is run: engines (:mod:`rtsource.engines`) run it, the
refinement stage (:mod:`rtsource.online.refine`) is handed an engine.
"""

from .checkpoint import (
    FORMAT_VERSION,
    SHIPPED_CHECKPOINT,
    Checkpoint,
    ChecksumMismatchError,
    checkpoint_path,
    load_checkpoint,
    read_header,
    save_checkpoint,
)
from .piunet import GRID_SIZE, PIUNET_PRESETS, PIUNet, PIUNetSpec, count_parameters, widen
from .temporal import FeatureScaler, TemporalNet, TemporalSpec, node_feature_kernel
from .volume import VolumeMapper

__all__ = [
    "FORMAT_VERSION",
    "GRID_SIZE",
    "PIUNET_PRESETS",
    "SHIPPED_CHECKPOINT",
    "Checkpoint",
    "ChecksumMismatchError",
    "PIUNet",
    "PIUNetSpec",
    "FeatureScaler",
    "TemporalNet",
    "TemporalSpec",
    "node_feature_kernel",
    "VolumeMapper",
    "checkpoint_path",
    "count_parameters",
    "load_checkpoint",
    "read_header",
    "save_checkpoint",
    "widen",
]
