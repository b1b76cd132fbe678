"""Coordinate frames: fsaverage MRI (= MNI305) and MNI152.

The MNI305 -> MNI152 affine is the one FreeSurfer publishes ("CoordinateSystems", the
matrix M with MNI152 = M · MNI305, millimetres). The two spaces differ by a few millimetres;
never ignore it when looking up atlas labels (atlases here are in MNI152).
"""

from __future__ import annotations

import numpy as np

MNI305_TO_MNI152 = np.array(
    [
        [1.0022, 0.0071, -0.0177, 0.0528],
        [-0.0146, 0.9990, 0.0027, -1.5519],
        [0.0129, 0.0094, 1.0027, -1.2012],
        [0.0, 0.0, 0.0, 1.0],
    ]
)
MNI152_TO_MNI305 = np.linalg.inv(MNI305_TO_MNI152)


def apply_affine(affine: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """Apply a 4×4 affine to (n, 3) points."""
    pts = np.asarray(pts, float)
    return pts @ affine[:3, :3].T + affine[:3, 3]


def mri_to_mni152(pos_m: np.ndarray) -> np.ndarray:
    """fsaverage MRI (MNI305) positions in metres -> MNI152 millimetres."""
    return apply_affine(MNI305_TO_MNI152, np.asarray(pos_m) * 1000.0)


def mni152_to_mri(pos_mm: np.ndarray) -> np.ndarray:
    """MNI152 millimetres -> fsaverage MRI (MNI305) metres."""
    return apply_affine(MNI152_TO_MNI305, pos_mm) / 1000.0
