"""Sensor noise at a given SNR: white plus spatially correlated (batched, torch).

The noise standard deviation follows the 3D-PIUNet reference: σ_n = std(Gx) / √(10^(SNR/10)),
with std taken over the channels of each sample. A fraction ρ of the noise power is spatially
correlated across electrodes with covariance exp(-d_ij / ℓ) (d the electrode distance); the
rest is white. Both parts have unit variance per channel before scaling, so ρ does not change
the SNR.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["add_sensor_noise", "correlated_noise_factor", "noise_std"]


def correlated_noise_factor(ch_pos_m: np.ndarray, length_mm: float) -> np.ndarray:
    """Lower Cholesky factor of the electrode correlation exp(-d / ℓ).

    Parameters
    ----------
    ch_pos_m : (n_channels, 3) float
        Electrode positions in metres.
    length_mm : float
        Correlation length ℓ in millimetres (> 0).

    Returns
    -------
    (n_channels, n_channels) float32 lower-triangular L with L Lᵀ = exp(-d / ℓ) (unit diagonal).
    """
    if length_mm <= 0:
        raise ValueError(f"length_mm = {length_mm} must be positive.")
    pos = np.asarray(ch_pos_m, float) * 1000.0
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    cov = np.exp(-d / float(length_mm))
    cov[np.diag_indices_from(cov)] += 1e-6  # numerically positive definite
    return np.linalg.cholesky(cov).astype(np.float32)


def noise_std(eeg: torch.Tensor, snr_db: torch.Tensor) -> torch.Tensor:
    """σ_n = std(Gx) / √(10^(SNR/10)) per sample.

    Parameters
    ----------
    eeg : (B, n_channels) noiseless EEG.
    snr_db : (B,) SNR in dB.

    Returns
    -------
    (B,) noise standard deviation in the EEG's unit.
    """
    return eeg.std(dim=1) / torch.sqrt(10.0 ** (snr_db / 10.0))


def add_sensor_noise(eeg: torch.Tensor, snr_db: torch.Tensor, corr_fraction: torch.Tensor,
                     chol: torch.Tensor | None, generator: torch.Generator) -> torch.Tensor:
    """Add white + spatially correlated noise at the requested SNR.

    Parameters
    ----------
    eeg : (B, n_channels) float tensor
        Noiseless EEG (any unit; the noise has the same unit).
    snr_db : (B,) float tensor
        SNR per sample in dB (``inf`` adds no noise).
    corr_fraction : (B,) float tensor
        Fraction ρ ∈ [0, 1] of the noise power that is spatially correlated.
    chol : (n_channels, n_channels) tensor or None
        Cholesky factor from :func:`correlated_noise_factor` (None: white noise only).
    generator : torch.Generator
        CPU random stream (draws are moved to ``eeg``'s device).

    Returns
    -------
    (B, n_channels) noisy EEG.
    """
    b, n_ch = eeg.shape
    white = torch.randn(b, n_ch, generator=generator).to(eeg)
    noise = white
    if chol is not None:
        corr = torch.randn(b, n_ch, generator=generator).to(eeg) @ chol.to(eeg).T
        rho = corr_fraction.to(eeg)[:, None]
        noise = torch.sqrt(1.0 - rho) * white + torch.sqrt(rho) * corr
    sigma = noise_std(eeg, snr_db.to(eeg))
    sigma = torch.where(torch.isfinite(sigma), sigma, torch.zeros_like(sigma))
    return eeg + sigma[:, None] * noise
