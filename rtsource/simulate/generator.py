"""On-the-fly training pairs for 3D-PIUNet (batched, torch, CPU or CUDA).

One batch: a montage layout and conductor model from the :class:`ForwardBank`; random
extended sources x; EEG y = G x plus white and correlated noise at a random SNR; the eLORETA
estimate z = K y; the input volume is z scaled by s = 1 / max|z| and scattered into the 32³
volume, the target volume is x scaled by the same s (as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..models.volume import VolumeMapper
from .bank import ForwardBank, ForwardEntry
from .config import SimConfig
from .noise import add_sensor_noise
from .sources import SourceBatch, random_sources

__all__ = ["Batch", "Simulator", "simulate_eeg"]


@dataclass
class Batch:
    """One batch of training pairs.

    Attributes
    ----------
    inputs : (B, 3, 32, 32, 32) float32, scaled eLORETA volume (max |value| = 1).
    targets : (B, 3, 32, 32, 32) float32, true sources in the same scaled domain.
    scale : (B,) float32, s = 1 / max|z| (1/nA·m).
    sources : SourceBatch, the true sources (x in nA·m).
    eeg : (B, n_channels) float32, noisy EEG (nV).
    estimate : (B, n_sources, 3) float32, the eLORETA estimate z (nA·m).
    snr_db : (B,) float32.
    forward, inverse : names of the bank entries that made the EEG and the estimate.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    scale: torch.Tensor
    sources: SourceBatch
    eeg: torch.Tensor
    estimate: torch.Tensor
    snr_db: torch.Tensor
    forward: str
    inverse: str


def simulate_eeg(sources: torch.Tensor, fwd: ForwardEntry, snr_db: torch.Tensor,
                 corr_fraction: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Noisy EEG of source vectors through one forward model.

    Parameters
    ----------
    sources : (B, n_sources, 3) current density (nA·m).
    fwd : ForwardEntry whose gain makes the EEG.
    snr_db, corr_fraction : (B,) SNR in dB and correlated-noise fraction.
    generator : CPU random stream.

    Returns
    -------
    (B, n_channels) EEG in nV (no reference applied; the kernels average-reference).
    """
    eeg = sources.reshape(sources.shape[0], -1) @ fwd.gain.T
    return add_sensor_noise(eeg, snr_db, corr_fraction, fwd.chol, generator)


class Simulator:
    """Draws batches of (eLORETA volume, true source volume) pairs.

    Parameters
    ----------
    bank : ForwardBank
        Forward models and kernels (its device is the simulator's device).
    cfg : SimConfig, optional
        Ranges of sources, extents, SNR and noise (default: the bank's).

    Examples
    --------
    >>> sim = Simulator(ForwardBank(SimConfig()))                     # doctest: +SKIP
    >>> batch = sim.sample(8, torch.Generator().manual_seed(0))       # doctest: +SKIP
    >>> batch.inputs.shape                                            # doctest: +SKIP
    torch.Size([8, 3, 32, 32, 32])
    """

    def __init__(self, bank: ForwardBank, cfg: SimConfig | None = None) -> None:
        self.bank = bank
        self.cfg = cfg or bank.cfg
        self.device = bank.device
        self.mapper = VolumeMapper(bank.vox).to(self.device)

    def sample(self, batch_size: int, generator: torch.Generator,
               cfg: SimConfig | None = None) -> Batch:
        """Draw one batch (one montage layout and conductor for the whole batch).

        Parameters
        ----------
        batch_size : int
        generator : torch.Generator on the CPU (the batch depends only on its state).
        cfg : source, SNR and correlated-noise ranges for this batch (default: the
            simulator's). The bank's montages, head models, ``mismatch_prob`` and
            ``noise_corr_length_mm`` stay as built.
        """
        cfg = cfg or self.cfg
        fwd, inv = self.bank.draw(generator)
        src = random_sources(self.bank.src_pos_mm, batch_size,
                             n_sources=(cfg.n_sources_min, cfg.n_sources_max),
                             extent_mm=(cfg.extent_mm_min, cfg.extent_mm_max),
                             generator=generator)
        snr = cfg.snr_db_min + (cfg.snr_db_max - cfg.snr_db_min) * torch.rand(
            batch_size, generator=generator)
        rho = cfg.corr_noise_min + (cfg.corr_noise_max - cfg.corr_noise_min) * torch.rand(
            batch_size, generator=generator)
        return self.pair(src, fwd, inv, snr, rho, generator)

    def pair(self, src: SourceBatch, fwd: ForwardEntry, inv: ForwardEntry,
             snr_db: torch.Tensor, corr_fraction: torch.Tensor,
             generator: torch.Generator) -> Batch:
        """Turn given sources into a training pair through ``fwd`` (EEG) and ``inv`` (kernel)."""
        if fwd.ch_names != inv.ch_names:
            raise ValueError(f"Forward {fwd.name} and kernel {inv.name} have other channels.")
        eeg = simulate_eeg(src.x, fwd, snr_db, corr_fraction, generator)
        z = (eeg @ inv.kernel.T).reshape(src.x.shape)
        vol_in, scale = self.mapper.to_volume(z)
        vol_tgt, _ = self.mapper.to_volume(src.x)
        # to_volume rescales each sample to max 1; the target must share the input's s
        peak_x = src.x.abs().amax(dim=(1, 2))
        vol_tgt = vol_tgt * (peak_x * scale)[:, None, None, None, None]
        return Batch(inputs=vol_in, targets=vol_tgt, scale=scale, sources=src, eeg=eeg,
                     estimate=z, snr_db=snr_db.to(torch.float32), forward=fwd.name,
                     inverse=inv.name)
