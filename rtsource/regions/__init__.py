"""Atlas regions: BN246 (default), AAL3, HCPex or a user NIfTI; partial-volume weights."""

from .atlases import BUNDLED, Atlas, load_atlas
from .weights import RegionMap, RegionReducer, region_map

__all__ = ["BUNDLED", "Atlas", "RegionMap", "RegionReducer", "load_atlas", "region_map"]
