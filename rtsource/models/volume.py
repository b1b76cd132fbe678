"""Mapping between source vectors on the source grid and the 32³ volume the network sees.

The network works on a scaled volume: each sample ``x`` (n_sources, 3) is multiplied by
``s = 1 / max|x|`` (so its largest component is ±1), scattered into a zero volume of shape
(3, 32, 32, 32) at the voxels of the source points, refined, gathered back at the same voxels
and divided by ``s``. :class:`VolumeMapper` does the scatter and gather with precomputed flat
indices, for numpy arrays (CPU pipeline) and torch tensors on any device (GPU pipeline; only
``index_copy_``/``index_select`` on device-resident index buffers, no host synchronisation,
so it can be captured in a CUDA graph).
"""

from __future__ import annotations

from typing import overload

import numpy as np
import torch
from torch import nn

from .piunet import GRID_SIZE

__all__ = ["VolumeMapper"]

ArrayLike = np.ndarray | torch.Tensor


class VolumeMapper(nn.Module):
    """Scatter source vectors into a volume and gather them back.

    Parameters
    ----------
    vox : array of int, shape (n_sources, 3)
        Index (i, j, k) of each source point in the volume (e.g. ``HeadModel.vox``). Every
        index must lie inside ``grid_shape`` and no two sources may share a voxel.
    grid_shape : tuple of int
        Volume shape (32, 32, 32).

    Attributes
    ----------
    n_sources : int
        Number of source points.
    flat_index : torch.Tensor of int64, shape (n_sources,)
        Buffer: flat (C-order) voxel index of each source. Moves with ``.to(device)``.
    brain_mask : torch.Tensor of bool, shape (1, 1, *grid_shape)
        Buffer: True at voxels that hold a source (for losses restricted to the brain).

    Notes
    -----
    :meth:`to_volume` and :meth:`from_volume` accept numpy arrays (computed with numpy) or
    torch tensors (computed with torch on the tensor's device; move the mapper there first
    with ``mapper.to(device)``). ``forward`` is :meth:`to_volume` for tensors.
    """

    flat_index: torch.Tensor
    brain_mask: torch.Tensor

    def __init__(self, vox: ArrayLike, grid_shape: tuple[int, int, int] = (GRID_SIZE,) * 3) -> None:
        super().__init__()
        vox_np = vox.detach().cpu().numpy() if isinstance(vox, torch.Tensor) else np.asarray(vox)
        if vox_np.ndim != 2 or vox_np.shape[1] != 3:
            raise ValueError(f"vox must have shape (n_sources, 3); got {vox_np.shape}.")
        if vox_np.shape[0] == 0:
            raise ValueError("vox is empty: a VolumeMapper needs at least one source point.")
        if not np.issubdtype(vox_np.dtype, np.integer):
            if not np.all(np.equal(np.round(vox_np), vox_np)):
                raise ValueError(f"vox must hold integer voxel indices; got dtype {vox_np.dtype}.")
            vox_np = np.round(vox_np)
        vox_np = vox_np.astype(np.int64)
        grid_shape = tuple(int(g) for g in grid_shape)
        if len(grid_shape) != 3:
            raise ValueError(f"grid_shape must have 3 entries; got {grid_shape}.")
        lo, hi = vox_np.min(axis=0), vox_np.max(axis=0)
        if np.any(lo < 0) or np.any(hi >= np.array(grid_shape)):
            raise ValueError(
                f"vox indices span {lo.tolist()}..{hi.tolist()}, outside the grid "
                f"0..{[g - 1 for g in grid_shape]}."
            )
        flat = np.ravel_multi_index(tuple(vox_np.T), grid_shape)
        uniq, counts = np.unique(flat, return_counts=True)
        if uniq.size != flat.size:
            dup = np.unravel_index(uniq[counts > 1][0], grid_shape)
            raise ValueError(
                f"{flat.size - uniq.size} source point(s) share a voxel with another "
                f"(first shared voxel {tuple(int(d) for d in dup)}); each source needs its own voxel."
            )
        self.grid_shape: tuple[int, int, int] = grid_shape  # type: ignore[assignment]
        self.n_voxels = int(np.prod(grid_shape))
        self.n_sources = int(flat.size)
        self._flat_np = flat.astype(np.intp)
        mask = np.zeros(self.n_voxels, dtype=bool)
        mask[flat] = True
        self.register_buffer(
            "flat_index", torch.from_numpy(flat.astype(np.int64)), persistent=False
        )
        self.register_buffer(
            "brain_mask", torch.from_numpy(mask.reshape(1, 1, *grid_shape)), persistent=False
        )

    # ------------------------------------------------------------------ helpers
    def _check_sources(self, x: ArrayLike) -> None:
        if x.ndim != 3 or x.shape[1] != self.n_sources or x.shape[2] != 3:
            raise ValueError(
                f"Expected source vectors of shape (B, {self.n_sources}, 3); got {tuple(x.shape)}."
            )

    def _check_volume(self, vol: ArrayLike, scale: ArrayLike) -> None:
        if vol.ndim != 5 or tuple(vol.shape[2:]) != self.grid_shape:
            raise ValueError(
                f"Expected volumes of shape (B, C, {', '.join(map(str, self.grid_shape))}); "
                f"got {tuple(vol.shape)}."
            )
        if tuple(scale.shape) != (vol.shape[0],):
            raise ValueError(
                f"scale must have shape (B,) = ({vol.shape[0]},); got {tuple(scale.shape)}."
            )

    # ------------------------------------------------------------------ public API
    @overload
    def to_volume(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...

    @overload
    def to_volume(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def to_volume(self, x: ArrayLike) -> tuple[ArrayLike, ArrayLike]:
        """Scale each sample to max |x| = 1 and scatter it into the volume.

        Parameters
        ----------
        x : numpy.ndarray or torch.Tensor, shape (B, n_sources, 3)
            Source vectors (e.g. the eLORETA estimate), any float dtype.

        Returns
        -------
        volume : same type as ``x``, float32, shape (B, 3, *grid_shape)
            Scaled vectors at the source voxels, zero elsewhere.
        scale : same type as ``x``, float32, shape (B,)
            The factor s = 1 / max|x| applied to each sample (1 for an all-zero sample, so
            the result never holds NaN or inf).
        """
        self._check_sources(x)
        if isinstance(x, torch.Tensor):
            return self._to_volume_torch(x)
        x = np.asarray(x, dtype=np.float32)
        batch = x.shape[0]
        peak = np.abs(x).max(axis=(1, 2))
        scale = (1.0 / np.where(peak > 0, peak, 1.0)).astype(np.float32)
        vol = np.zeros((batch, 3, self.n_voxels), dtype=np.float32)
        vol[:, :, self._flat_np] = (x * scale[:, None, None]).transpose(0, 2, 1)
        return vol.reshape(batch, 3, *self.grid_shape), scale

    def _to_volume_torch(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(torch.float32)
        peak = x.abs().amax(dim=(1, 2))
        scale = torch.where(peak > 0, peak, torch.ones_like(peak)).reciprocal()
        scaled = (x * scale[:, None, None]).transpose(1, 2)  # (B, 3, n_sources)
        vol = x.new_zeros((x.shape[0], 3, self.n_voxels))
        vol.index_copy_(2, self.flat_index, scaled)
        return vol.view(x.shape[0], 3, *self.grid_shape), scale

    @overload
    def from_volume(self, vol: np.ndarray, scale: np.ndarray) -> np.ndarray: ...

    @overload
    def from_volume(self, vol: torch.Tensor, scale: torch.Tensor) -> torch.Tensor: ...

    def from_volume(self, vol: ArrayLike, scale: ArrayLike) -> ArrayLike:
        """Gather the source voxels of a volume and undo the scaling.

        Parameters
        ----------
        vol : numpy.ndarray or torch.Tensor, shape (B, 3, *grid_shape)
            Volumes in the scaled domain (e.g. the network's output).
        scale : same type, shape (B,)
            The factors returned by :meth:`to_volume`.

        Returns
        -------
        same type as ``vol``, float32, shape (B, n_sources, 3)
            Source vectors in the original units.
        """
        self._check_volume(vol, scale)
        batch, chans = vol.shape[0], vol.shape[1]
        if isinstance(vol, torch.Tensor):
            flat = vol.to(torch.float32).reshape(batch, chans, self.n_voxels)
            out = flat.index_select(2, self.flat_index).transpose(1, 2)
            return out / scale.to(out)[:, None, None]
        flat_np = np.asarray(vol, dtype=np.float32).reshape(batch, chans, self.n_voxels)
        out_np = flat_np[:, :, self._flat_np].transpose(0, 2, 1)
        return out_np / np.asarray(scale, dtype=np.float32)[:, None, None]

    def brain_mask_numpy(self) -> np.ndarray:
        """The brain mask as a numpy bool array, shape (1, 1, *grid_shape)."""
        return self.brain_mask.detach().cpu().numpy()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`to_volume` for tensors (so the mapper can sit in a traced module)."""
        return self.to_volume(x)

    def extra_repr(self) -> str:  # noqa: D102
        return f"n_sources={self.n_sources}, grid_shape={self.grid_shape}"
