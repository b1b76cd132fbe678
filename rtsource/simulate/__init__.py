"""Simulation of training and evaluation data for 3D-PIUNet.

- :mod:`.sources`: random extended sources (Gaussian blobs, σ in mm, unit-L2 profiles).
- :mod:`.noise`: white + spatially correlated sensor noise at a given SNR (dB).
- :mod:`.bank`: forward models and eLORETA kernels over montages, jittered electrode
  layouts and conductor models (all cached head models on one source grid).
- :mod:`.generator`: batched training pairs (scaled eLORETA volume, scaled true volume).
"""

from .bank import ForwardBank, ForwardEntry, jittered_montage, load_entry
from .config import DEFAULT_TRAIN_HEADMODELS, EVAL_HEADMODEL, SimConfig, sim_config_from_dict
from .generator import Batch, Simulator, simulate_eeg
from .noise import add_sensor_noise, correlated_noise_factor, noise_std
from .sources import SourceBatch, gaussian_sources, random_sources

__all__ = [
    "DEFAULT_TRAIN_HEADMODELS", "EVAL_HEADMODEL", "Batch", "ForwardBank", "ForwardEntry",
    "SimConfig", "Simulator", "SourceBatch", "add_sensor_noise", "correlated_noise_factor",
    "gaussian_sources", "jittered_montage", "load_entry", "noise_std", "random_sources",
    "sim_config_from_dict", "simulate_eeg",
]
