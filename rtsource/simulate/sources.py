"""Random extended sources on the source grid (batched, torch, CPU or CUDA).

Each source is a Gaussian blob of current density centred on a grid point: the profile
exp(-d² / 2σ²) over every grid point (d the distance to the centre in mm) normalised to unit
L2 norm (as in the 3D-PIUNet reference), times a random orientation (uniform on the sphere)
and a N(0, 1) amplitude. Amplitudes are in nA·m (any unit works: every training pair is
rescaled by the same factor).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["SourceBatch", "gaussian_sources", "random_sources"]


@dataclass
class SourceBatch:
    """A batch of simulated source configurations.

    Attributes
    ----------
    x : torch.Tensor, (B, n_grid, 3) float32
        Current density vectors at every grid point (nA·m).
    centres : torch.Tensor, (B, K) int64
        Grid index of each source's centre (K = the batch's largest source count).
    extent_mm : torch.Tensor, (B, K) float32
        Gaussian σ of each source in millimetres.
    amplitude : torch.Tensor, (B, K) float32
        Signed amplitude (nA·m at unit L2 profile); 0 for padding slots.
    orientation : torch.Tensor, (B, K, 3) float32
        Unit orientation vectors.
    n_sources : torch.Tensor, (B,) int64
        Number of sources in each sample (slots >= n_sources are padding).
    """

    x: torch.Tensor
    centres: torch.Tensor
    extent_mm: torch.Tensor
    amplitude: torch.Tensor
    orientation: torch.Tensor
    n_sources: torch.Tensor

    @property
    def active(self) -> torch.Tensor:
        """(B, K) bool: which slots hold a source."""
        k = torch.arange(self.centres.shape[1], device=self.centres.device)
        return k[None, :] < self.n_sources[:, None]


def gaussian_sources(pos_mm: torch.Tensor, centres: torch.Tensor, extent_mm: torch.Tensor,
                     amplitude: torch.Tensor, orientation: torch.Tensor) -> torch.Tensor:
    """Sum of Gaussian blobs on the grid.

    Parameters
    ----------
    pos_mm : (n_grid, 3) float tensor
        Grid positions in millimetres.
    centres : (B, K) int64 tensor
        Grid index of each blob's centre.
    extent_mm : (B, K) float tensor
        Gaussian σ in millimetres (must be > 0).
    amplitude : (B, K) float tensor
        Signed amplitude of each blob (0 disables a slot).
    orientation : (B, K, 3) float tensor
        Orientation of each blob (unit vectors).

    Returns
    -------
    (B, n_grid, 3) float32 tensor: Σ_k a_k · g_k(r) · u_k with ‖g_k‖₂ = 1 over the grid.
    """
    c = pos_mm[centres]  # (B, K, 3)
    d2 = ((pos_mm[None, None, :, :] - c[:, :, None, :]) ** 2).sum(-1)  # (B, K, n)
    prof = torch.exp(-d2 / (2.0 * extent_mm[..., None] ** 2))
    prof = prof / prof.norm(dim=-1, keepdim=True)
    weights = prof * amplitude[..., None]  # (B, K, n)
    return torch.einsum("bkn,bkc->bnc", weights, orientation).to(torch.float32)


def random_sources(pos_mm: torch.Tensor, batch_size: int, *, n_sources: tuple[int, int],
                   extent_mm: tuple[float, float], generator: torch.Generator
                   ) -> SourceBatch:
    """Draw random extended sources.

    Parameters
    ----------
    pos_mm : (n_grid, 3) float tensor
        Grid positions in millimetres (its device is used throughout).
    batch_size : int
        Number of samples B.
    n_sources : (int, int)
        Inclusive range of the number of sources per sample (uniform).
    extent_mm : (float, float)
        Range of the Gaussian σ in millimetres (uniform; equal ends give a fixed extent).
    generator : torch.Generator
        Random stream (on the CPU; draws are moved to ``pos_mm``'s device), so a sample
        depends only on the generator's seed, not on the device.

    Returns
    -------
    SourceBatch
    """
    lo, hi = int(n_sources[0]), int(n_sources[1])
    if lo < 1 or hi < lo:
        raise ValueError(f"n_sources = {n_sources} must satisfy 1 <= min <= max.")
    if extent_mm[0] <= 0 or extent_mm[1] < extent_mm[0]:
        raise ValueError(f"extent_mm = {extent_mm} must satisfy 0 < min <= max.")
    dev = pos_mm.device
    n_grid = pos_mm.shape[0]
    g = generator
    n = torch.randint(lo, hi + 1, (batch_size,), generator=g)
    k = hi
    centres = torch.randint(0, n_grid, (batch_size, k), generator=g)
    sigma = extent_mm[0] + (extent_mm[1] - extent_mm[0]) * torch.rand(batch_size, k, generator=g)
    amp = torch.randn(batch_size, k, generator=g)
    ori = torch.randn(batch_size, k, 3, generator=g)
    ori = ori / ori.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    active = torch.arange(k)[None, :] < n[:, None]
    amp = torch.where(active, amp, torch.zeros_like(amp))
    # keep only the slots some sample uses (saves work when hi is large and n is small)
    k_used = int(n.max())
    centres, sigma, amp, ori = (t[:, :k_used] for t in (centres, sigma, amp, ori))
    centres, sigma, amp, ori, n = (t.to(dev) for t in (centres, sigma, amp, ori, n))
    x = gaussian_sources(pos_mm, centres, sigma.to(pos_mm.dtype), amp.to(pos_mm.dtype),
                         ori.to(pos_mm.dtype))
    return SourceBatch(x=x, centres=centres, extent_mm=sigma.float(), amplitude=amp.float(),
                       orientation=ori.float(), n_sources=n)
