"""Settings of the on-the-fly simulator (:class:`SimConfig`), loaded from a TOML table.

Example ``[simulate]`` table (see ``configs/train-w8.toml``)::

    [simulate]
    montages = ["biosemi32", "biosemi64", "easycap-M10", "biosemi128", "biosemi256"]
    jitter_variants = 1
    jitter_mm = 5.0
    n_sources_min = 1
    n_sources_max = 20
    extent_mm_min = 5.0
    extent_mm_max = 40.0
    snr_db_min = 0.0
    snr_db_max = 20.0

    [[simulate.headmodels]]
    conductor = "bem"
    conductivity = [0.3, 0.006, 0.3]
    bem_ico = 4
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..config import HeadModelConfig, InverseConfig, from_dict

__all__ = ["DEFAULT_TRAIN_HEADMODELS", "EVAL_HEADMODEL", "SimConfig", "sim_config_from_dict"]

DEFAULT_TRAIN_HEADMODELS: tuple[HeadModelConfig, ...] = (
    # the template every user runs with (MNE's default conductivities, brain:skull 50:1)
    HeadModelConfig(conductor="bem", conductivity=(0.3, 0.006, 0.3), bem_ico=4),
    # a second BEM with a more conductive skull (20:1), coarser surfaces
    HeadModelConfig(conductor="bem", conductivity=(0.33, 0.0165, 0.33), bem_ico=3),
)
"""Head models the shipped network was trained on (both BEM on the fsaverage template)."""

EVAL_HEADMODEL = HeadModelConfig(montage="GSN-HydroCel-129", conductor="sphere",
                                 conductivity=(0.332, 0.0113, 0.332))
"""Held-out evaluation head model: a three-shell sphere (a conductor geometry never seen in
training) with the reference's test conductivities, and a montage never seen in training."""


@dataclass(frozen=True)
class SimConfig:
    """How training (and evaluation) samples are drawn.

    Attributes
    ----------
    montages : tuple of str
        Standard montages (32 to 256 channels) a batch draws its montage from.
    jitter_variants : int
        Extra copies of every montage with electrode positions jittered tangentially along
        the scalp (each copy is a separate, cached head model).
    jitter_mm : float
        Standard deviation (mm) of the tangential electrode jitter.
    headmodels : tuple of HeadModelConfig
        Conductor models (their ``montage`` field is ignored). Every montage variant is
        combined with every head model.
    mismatch_prob : float
        Probability that a batch is inverted with the kernel of another head model than
        the one that generated its EEG (same electrodes): robustness to conductor errors.
    n_sources_min, n_sources_max : int
        Number of extended sources per sample, uniform in this inclusive range.
    extent_mm_min, extent_mm_max : float
        Gaussian spatial extent σ (mm) of each source, uniform in this range.
    snr_db_min, snr_db_max : float
        Sensor SNR (dB, power ratio of std(Gx)² to the noise variance), uniform.
    corr_noise_min, corr_noise_max : float
        Fraction of the noise power that is spatially correlated across electrodes,
        uniform in this range (the rest is white).
    noise_corr_length_mm : float
        Length scale of the exponential spatial correlation exp(-d / ℓ) of that part.
    inverse : InverseConfig
        The pseudo-inverse the network refines (eLORETA; λ² must match the runtime).
    """

    montages: tuple[str, ...] = ("biosemi32", "biosemi64", "easycap-M10", "biosemi128",
                                 "biosemi256")
    jitter_variants: int = 1
    jitter_mm: float = 5.0
    headmodels: tuple[HeadModelConfig, ...] = DEFAULT_TRAIN_HEADMODELS
    mismatch_prob: float = 0.2
    n_sources_min: int = 1
    n_sources_max: int = 20
    extent_mm_min: float = 5.0
    extent_mm_max: float = 40.0
    snr_db_min: float = 0.0
    snr_db_max: float = 20.0
    corr_noise_min: float = 0.0
    corr_noise_max: float = 0.5
    noise_corr_length_mm: float = 40.0
    inverse: InverseConfig = field(default_factory=InverseConfig)

    def __post_init__(self) -> None:
        if not self.montages:
            raise ValueError("simulate.montages is empty: give at least one montage name.")
        if not self.headmodels:
            raise ValueError("simulate.headmodels is empty: give at least one head model.")
        checks = [
            ("n_sources", self.n_sources_min, self.n_sources_max, 1),
            ("extent_mm", self.extent_mm_min, self.extent_mm_max, 0.0),
            ("corr_noise", self.corr_noise_min, self.corr_noise_max, 0.0),
        ]
        for name, lo, hi, floor in checks:
            if lo < floor or hi < lo:
                raise ValueError(
                    f"simulate.{name}_min = {lo} and {name}_max = {hi} must satisfy "
                    f"{floor} <= min <= max."
                )
        if self.corr_noise_max > 1.0:
            raise ValueError(f"simulate.corr_noise_max = {self.corr_noise_max} must be <= 1.")
        if self.snr_db_max < self.snr_db_min:
            raise ValueError(
                f"simulate.snr_db_min = {self.snr_db_min} exceeds snr_db_max = {self.snr_db_max}."
            )
        if not 0.0 <= self.mismatch_prob <= 1.0:
            raise ValueError(f"simulate.mismatch_prob = {self.mismatch_prob} must be in [0, 1].")
        if self.jitter_variants < 0 or self.jitter_mm < 0:
            raise ValueError("simulate.jitter_variants and jitter_mm must be non-negative.")
        if self.inverse.method != "eloreta":
            raise ValueError(
                f"simulate.inverse.method = {self.inverse.method!r}: the network refines "
                "eLORETA; use 'eloreta'."
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable rendering (stored in checkpoints)."""
        d = dataclasses.asdict(self)
        d["montages"] = list(self.montages)
        d["headmodels"] = [
            {k: v for k, v in dataclasses.asdict(h).items() if k != "montage"}
            for h in self.headmodels
        ]
        return d


def sim_config_from_dict(data: dict[str, Any], prefix: str = "simulate.") -> SimConfig:
    """Build a :class:`SimConfig` from a TOML table; unknown keys raise ValueError."""
    data = dict(data)
    extra: dict[str, Any] = {}
    if "montages" in data:
        montages = data.pop("montages")
        if isinstance(montages, str) or not all(isinstance(m, str) for m in montages):
            raise ValueError(f"Setting {prefix}montages must be a list of montage names; "
                             f"got {montages!r}.")
        extra["montages"] = tuple(montages)
    if "headmodels" in data:
        tables = data.pop("headmodels")
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise ValueError(f"Setting {prefix}headmodels must be an array of tables "
                             "([[simulate.headmodels]]).")
        models = []
        for i, t in enumerate(tables):
            if "montage" in t:
                raise ValueError(f"Setting {prefix}headmodels[{i}].montage is not allowed: "
                                 f"montages come from {prefix}montages.")
            models.append(from_dict(HeadModelConfig, t, prefix=f"{prefix}headmodels[{i}]."))
        extra["headmodels"] = tuple(models)
    for key in ("n_sources_min", "n_sources_max", "jitter_variants"):
        if key in data and isinstance(data[key], float) and data[key].is_integer():
            data[key] = int(data[key])
    cfg = from_dict(SimConfig, data, prefix=prefix)
    return dataclasses.replace(cfg, **extra) if extra else cfg
