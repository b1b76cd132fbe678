"""Template head model: montages, source grid (↔ 32³ volume), forward solutions, cache."""

from .build import bem_solution, build_headmodel
from .coords import mni152_to_mri, mri_to_mni152
from .model import GRID_SHAPE, HeadModel
from .montage import get_montage, montage_info

__all__ = ["GRID_SHAPE", "HeadModel", "bem_solution", "build_headmodel", "get_montage",
           "mni152_to_mri", "montage_info", "mri_to_mni152"]
