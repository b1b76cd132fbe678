"""The source grid as a volume: lattice box, voxel <-> millimetre affines, MNE source space.

Every source point of a :class:`~.model.HeadModel` sits on a regular lattice
(``HeadModel.vox``, ``spacing_mm`` apart). :class:`SourceGrid` describes the smallest box of
that lattice holding every point, so that a map of source values (one per point) becomes a
3-D image:

* ``shape`` (nx, ny, nz): the box; ``flat_index`` (n_sources,): each source's index in the
  box flattened in C order (``i * ny * nz + j * nz + k``), so ``vol.ravel()[flat_index] =
  values`` and ``vol.reshape(shape)``;
* ``affine_mri`` (4, 4): voxel (i, j, k, 1) -> fsaverage MRI (= MNI305) millimetres
  (axis-aligned: a diagonal of ``spacing_mm`` plus the origin);
* ``affine_mni152`` (4, 4): voxel -> MNI152 millimetres (FreeSurfer's MNI305 -> MNI152
  affine after ``affine_mri``).

:meth:`SourceGrid.source_spaces` builds the matching ``mne.SourceSpaces`` (one volume source
space on the fsaverage MRI frame) so that MNE's volume functions (``stc.as_volume``,
``stc.plot``) work on rtsource results without any FreeSurfer subject on disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .coords import MNI305_TO_MNI152

if TYPE_CHECKING:
    import mne

    from .model import HeadModel

__all__ = ["SourceGrid"]


@dataclass(frozen=True, eq=False)
class SourceGrid:
    """A source grid as a box-shaped volume (see the module docstring).

    Parameters
    ----------
    ijk : (n_sources, 3) int
        Lattice index of each source point inside the box (every index in ``[0, shape)``).
    shape : (nx, ny, nz)
        The box.
    affine_mri : (4, 4) float
        Voxel -> fsaverage MRI (MNI305) millimetres.

    Raises
    ------
    ValueError
        When an index lies outside the box or two points share a voxel.
    """

    ijk: np.ndarray
    shape: tuple[int, int, int]
    affine_mri: np.ndarray

    def __post_init__(self) -> None:
        ijk = np.asarray(self.ijk)
        if ijk.ndim != 2 or ijk.shape[1] != 3:
            raise ValueError(f"ijk must have shape (n_sources, 3), got {ijk.shape}.")
        if (ijk < 0).any() or (ijk >= np.array(self.shape)).any():
            raise ValueError(f"Voxel indices must lie inside the box {self.shape}.")
        if len(np.unique(self.flat_index)) != len(ijk):
            raise ValueError("Two source points share a voxel; the grid is not a lattice.")

    @classmethod
    def from_headmodel(cls, hm: HeadModel) -> SourceGrid:
        """The grid of ``hm`` (its lattice ``vox``, its MRI positions and spacing).

        Raises
        ------
        ValueError
            When the positions are not on the lattice ``vox`` describes (more than a tenth
            of the spacing off).
        """
        return cls.from_lattice(hm.vox, hm.src_pos_mri * 1000.0, hm.spacing_mm)

    @classmethod
    def from_lattice(cls, vox: np.ndarray, pos_mri_mm: np.ndarray,
                     spacing_mm: float) -> SourceGrid:
        """A grid from lattice indices (any offset) and the points' MRI positions (mm)."""
        vox = np.asarray(vox, np.int64)
        lo = vox.min(0)
        ijk = vox - lo
        shape = tuple(int(n) for n in ijk.max(0) + 1)
        origin = np.mean(np.asarray(pos_mri_mm, float) - ijk * spacing_mm, axis=0)
        affine = np.eye(4)
        affine[:3, :3] *= float(spacing_mm)
        affine[:3, 3] = origin
        err = np.abs(ijk @ affine[:3, :3].T + origin - pos_mri_mm).max()
        if err > 0.1 * spacing_mm:
            raise ValueError(f"Source positions are up to {err:.2f} mm off the lattice of "
                             f"{spacing_mm:g} mm; they are not a regular grid.")
        return cls(ijk=ijk, shape=shape, affine_mri=affine)  # type: ignore[arg-type]

    # -- geometry -------------------------------------------------------------------------
    @property
    def n_sources(self) -> int:
        return int(self.ijk.shape[0])

    @property
    def spacing_mm(self) -> float:
        return float(self.affine_mri[0, 0])

    @cached_property
    def flat_index(self) -> np.ndarray:
        """(n_sources,) int64: each source's index in the C-order flattened box."""
        return np.ravel_multi_index(tuple(np.asarray(self.ijk).T), self.shape).astype(np.int64)

    @property
    def affine_mni152(self) -> np.ndarray:
        """(4, 4) voxel -> MNI152 millimetres."""
        return MNI305_TO_MNI152 @ self.affine_mri

    @property
    def pos_mri_mm(self) -> np.ndarray:
        """(n_sources, 3) fsaverage MRI (MNI305) millimetres of the points."""
        return self.ijk @ self.affine_mri[:3, :3].T + self.affine_mri[:3, 3]

    def to_volume(self, values: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """Scatter per-source values into the box.

        Parameters
        ----------
        values : (..., n_sources) array.
        fill : value of the voxels that hold no source.

        Returns
        -------
        (..., nx, ny, nz) array of ``values``' dtype.

        Raises
        ------
        ValueError
            When the last axis is not ``n_sources`` long.
        """
        values = np.asarray(values)
        if values.shape[-1] != self.n_sources:
            raise ValueError(f"values must have shape (..., {self.n_sources}) (one per source "
                             f"point), got {values.shape}.")
        lead = values.shape[:-1]
        vol = np.full((*lead, int(np.prod(self.shape))), fill, values.dtype)
        vol[..., self.flat_index] = values
        return vol.reshape(*lead, *self.shape)

    def describe(self) -> dict[str, str]:
        """The layout as text for stream metadata (shape, affines, flat indices as JSON)."""
        import json

        return {
            "shape": json.dumps(list(self.shape)),
            "order": "C (index = i*ny*nz + j*nz + k)",
            "spacing_mm": repr(self.spacing_mm),
            "affine_mni152": json.dumps(np.round(self.affine_mni152, 6).tolist()),
            "affine_mri": json.dumps(np.round(self.affine_mri, 6).tolist()),
            "mri_frame": "fsaverage MRI (surface RAS) = MNI305, millimetres",
            "n_sources": str(self.n_sources),
            "source_index": json.dumps(self.flat_index.tolist()),
        }

    # -- MNE ------------------------------------------------------------------------------
    def source_spaces(self) -> mne.SourceSpaces:
        """This grid as an ``mne.SourceSpaces`` with one volume source space.

        Coordinates are the fsaverage MRI frame (metres, MNE's convention); the voxel grid
        is the box (MNE orders voxels with x fastest, so vertex numbers differ from
        :attr:`flat_index`; :attr:`mne_vertno` gives them per source). The MRI voxel grid is
        the source grid itself (no T1 is needed): ``stc.as_volume(src)`` and
        ``stc.plot(src, bg_img=...)`` work; ``mri_resolution=True`` does not (no
        interpolator).
        """
        import mne
        from mne.io.constants import FIFF

        nx, ny, nz = self.shape
        i, j, k = np.meshgrid(np.arange(nx), np.arange(ny), np.arange(nz), indexing="ij")
        # MNE's voxel order: x fastest (Fortran order of (nx, ny, nz))
        all_ijk = np.c_[i.ravel("F"), j.ravel("F"), k.ravel("F")]
        rr = (all_ijk @ self.affine_mri[:3, :3].T + self.affine_mri[:3, 3]) / 1000.0
        inuse = np.zeros(len(rr), np.int32)
        vertno = np.sort(self.mne_vertno)
        inuse[vertno] = 1
        nn = np.zeros_like(rr)
        nn[:, 2] = 1.0
        vox_mri = self.affine_mri.copy()
        vox_mri[:3] /= 1000.0
        src_mri_t = mne.transforms.Transform("mri_voxel", "mri", vox_mri)
        sp = {
            "type": "vol", "id": FIFF.FIFFV_MNE_SURF_UNKNOWN, "coord_frame": FIFF.FIFFV_COORD_MRI,
            "np": len(rr), "rr": rr, "nn": nn, "inuse": inuse, "nuse": len(vertno),
            "vertno": vertno, "shape": (nx, ny, nz), "src_mri_t": src_mri_t,
            "vox_mri_t": src_mri_t.copy(),
            "mri_ras_t": mne.transforms.Transform("mri", "ras", np.eye(4)),
            "mri_width": nx, "mri_height": ny, "mri_depth": nz, "interpolator": None,
            "mri_file": None, "seg_name": "rtsource source grid",
            "subject_his_id": "fsaverage", "ntri": 0, "nuse_tri": 0, "tris": None,
            "use_tris": None, "dist": None, "dist_limit": None, "nearest": None,
            "nearest_dist": None, "patch_inds": None, "pinfo": None, "neighbor_vert": None,
        }
        return mne.SourceSpaces([sp], info={"working_dir": "", "command_line": "rtsource"})

    @cached_property
    def mne_vertno(self) -> np.ndarray:
        """(n_sources,) int64: each source's vertex number in :meth:`source_spaces`."""
        nx, ny, _ = self.shape
        i, j, k = np.asarray(self.ijk).T
        return (i + nx * (j + ny * k)).astype(np.int64)
