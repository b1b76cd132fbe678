"""Brain dynamics: a neural-mass brain model on BN246 with thalamic nuclei (Yu et al. 2024).

- :mod:`.nodes`: the 210 cortical regions and 16 thalamic nuclei (optionally the 20 other
  subcortical regions) with centroids from the atlas volume.
- :mod:`.connectome`: the default exponential-distance-rule connectome with named
  thalamo-cortical projections and conduction delays; The Virtual Brain's zip format.
- :mod:`.neuralmass`: Jansen–Rit / Wendling neural masses, Numba, stochastic Heun at 0.5 ms.
- :mod:`.regimes`: spontaneous, evoked, interictal and ictal states.
- :mod:`.library`: cached libraries of region waveforms per regime.
- :mod:`.compose`: region lead fields, spread, sensor noise, EEG windows with known truth.
- :mod:`.stream`: the live signal of ``rtsource simulate-stream --dynamics``.
"""

from .compose import (
    NOISE_KINDS,
    DynamicComposer,
    DynamicSample,
    RegionProjector,
    eeg_power,
    sensor_noise,
    spread_weights,
)
from .connectome import (
    EDR_LAMBDA_PER_MM,
    THALAMOCORTICAL_TARGETS,
    VELOCITY_MM_PER_MS,
    Connectome,
    default_connectome,
    load_tvb_connectome,
    write_tvb_zip,
)
from .library import LibraryConfig, WaveformLibrary, build_library, detect_spikes
from .neuralmass import DT_MS, BrainModel, NodeParams, Stimulus
from .nodes import THALAMIC_NUCLEI, BrainNodes, brain_nodes
from .regimes import REGIMES, DynamicsConfig, RegimeSimulation
from .stream import DynamicAmplifier, DynamicSignal

__all__ = [
    "DT_MS", "EDR_LAMBDA_PER_MM", "DynamicAmplifier", "DynamicSignal", "NOISE_KINDS", "REGIMES", "THALAMIC_NUCLEI",
    "THALAMOCORTICAL_TARGETS", "VELOCITY_MM_PER_MS", "BrainModel", "BrainNodes", "Connectome",
    "DynamicComposer", "DynamicSample", "DynamicsConfig", "LibraryConfig", "NodeParams",
    "RegimeSimulation", "RegionProjector", "eeg_power", "Stimulus", "WaveformLibrary", "brain_nodes",
    "build_library", "default_connectome", "detect_spikes", "load_tvb_connectome",
    "sensor_noise", "spread_weights", "write_tvb_zip",
]
