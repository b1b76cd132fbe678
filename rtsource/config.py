"""Typed, frozen configuration. TOML files in ``configs/`` map onto these dataclasses.

Unknown keys are errors (with close matches), so a typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import sys
import typing
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from ._util import close_matches

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

Conductor = Literal["bem", "sphere"]
Method = Literal["eloreta", "sloreta", "dspm", "mne", "piunet"]
INVERSE_METHODS = ("eloreta", "sloreta", "dspm", "mne")
RegionMode = Literal["magnitude", "signed"]


@dataclass(frozen=True)
class HeadModelConfig:
    """Template head model (fsaverage surfaces shipped with MNE).

    montage : MNE standard montage name or electrode file (positions given as arrays are
        passed to :func:`rtsource.headmodel.get_montage` directly).
    conductor : ``"bem"`` (three-layer boundary-element model) or ``"sphere"``
        (three-shell sphere fitted to the same head).
    spacing_mm : source-grid spacing in millimetres (the lattice must fit a 32³ volume).
    conductivity : (brain, skull, scalp) conductivities in S/m.
    bem_ico : icosahedron subdivision of the BEM surfaces (3: 642 vertices, 4: 2562).
    mindist_mm : sources closer than this to the inner skull are excluded.
    """

    montage: str = "biosemi128"
    conductor: Conductor = "bem"
    spacing_mm: float = 7.0
    conductivity: tuple[float, float, float] = (0.3, 0.006, 0.3)
    bem_ico: int = 4
    mindist_mm: float = 5.0


@dataclass(frozen=True)
class InverseConfig:
    """Linear inverse (pseudo-inverse) kernel.

    lambda2 : regularisation λ² (1/SNR², MNE convention; 1/9 is MNE's default for evoked).
    noise_std_uv : standard deviation of the ad hoc diagonal noise covariance (µV).
    depth : depth-weighting exponent for mne/dspm/sloreta (None disables; eLORETA ignores it).
    """

    method: Method = "eloreta"
    lambda2: float = 1.0 / 9.0
    noise_std_uv: float = 0.2
    depth: float | None = 0.8
    eloreta_max_iter: int = 20
    eloreta_eps: float = 1e-6


@dataclass(frozen=True)
class RegionsConfig:
    """Atlas regions. ``atlas`` is bn246, aal3, hcpex or a path to a labelled NIfTI
    (with a label table ``<name>.txt``/``.csv`` beside it).

    mode : ``"magnitude"`` (partial-volume weighted mean of |J|) or ``"signed"``
        (weighted mean of J projected on the region's dominant orientation).
    sigma_mm : partial-volume kernel width; each grid point covers a Gaussian of this width.
    """

    atlas: str = "bn246"
    mode: RegionMode = "magnitude"
    sigma_mm: float = 5.0


@dataclass(frozen=True)
class StreamConfig:
    """LSL input and output."""

    input: str = "rtsource-sim"
    resolve_timeout_s: float = 10.0
    window_s: float = 0.025
    hop_s: float = 0.010
    buffer_s: float = 30.0
    highpass_hz: float | None = 1.0
    lowpass_hz: float | None = 45.0
    notch_hz: float | None = 50.0
    output: str = "rtsource"
    lost_timeout_s: float = 30.0
    bad_data: Literal["flag", "exclude"] = "flag"
    schedule: Literal["arrival", "hop"] = "arrival"
    # Added for the live pipeline (rtsource.online.pipeline):
    overflow: Literal["error", "drop_oldest"] = "drop_oldest"
    flat_uv: float | None = 0.1
    saturation_uv: float | None = 5000.0
    expected_srate: float | None = None
    expected_channels: int | None = None


@dataclass(frozen=True)
class RefineConfig:
    """3D-PIUNet refinement (used when ``inverse.method = "piunet"``).

    checkpoint : "default" (the weights shipped in the package) or a path to a checkpoint
        written by ``rtsource train`` (its ``.sha256`` file must sit beside it).
    backend : inference runtime; "auto" picks TensorRT, then PyTorch CUDA, then the
        compiled PyTorch CPU path.
    decimate : refine one of every N samples ("auto": every sample when the backend keeps
        up, else one per hop). Unrefined samples are not published: the output's nominal
        rate is the input rate divided by N, declared in the outlet metadata.
    """

    checkpoint: str = "default"
    backend: Literal["auto", "tensorrt", "cuda", "onnx", "cpu", "eager"] = "auto"
    decimate: int | Literal["auto"] = "auto"


@dataclass(frozen=True)
class Config:
    headmodel: HeadModelConfig = field(default_factory=HeadModelConfig)
    inverse: InverseConfig = field(default_factory=InverseConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        options = get_args(tp)
        if value not in options:
            raise ValueError(
                f"Setting {where} = {value!r} is not valid; choose one of {list(options)}."
            )
        return value
    if origin is tuple:
        return tuple(float(v) for v in value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None or value is False or (isinstance(value, str) and value.lower() == "none"):
            return None  # TOML has no null: `false` or "none" disables an optional setting
        errors = []
        for arg in args:  # first member of the union that accepts the value
            try:
                return _coerce(arg, value, where)
            except ValueError as err:
                errors.append(str(err))
        raise ValueError(" Or: ".join(errors))
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if tp in (int, str, bool) and not isinstance(value, tp):
        raise ValueError(f"Setting {where} = {value!r} must be of type {tp.__name__}.")
    return value


def from_dict(cls: type, data: dict[str, Any], prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a nested dict; unknown keys raise ValueError."""
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in data.items():
        where = f"{prefix}{key}"
        if key not in names:
            raise ValueError(
                f"Unknown setting {where!r}.{close_matches(key, names)} "
                f"Valid keys{' in [' + prefix[:-1] + ']' if prefix else ''}: {names}."
            )
        tp = hints[key]
        if dataclasses.is_dataclass(tp):
            if not isinstance(value, dict):
                raise ValueError(f"Setting [{where}] must be a table.")
            kwargs[key] = from_dict(tp, value, prefix=f"{where}.")
        else:
            kwargs[key] = _coerce(tp, value, where)
    return cls(**kwargs)


def read_toml(path: str | Path | None, what: str = "Config file") -> dict[str, Any]:
    """The parsed TOML file (an empty dict when ``path`` is None)."""
    if path is None:
        return {}
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {str(path)!r} does not exist.")
    with open(path, "rb") as fid:
        return tomllib.load(fid)


def load_config(path: str | Path | None = None, **overrides: dict[str, Any]) -> Config:
    """Load a TOML config (defaults if ``path`` is None) and apply section overrides.

    ``overrides`` maps a section name to a dict of settings, e.g. ``inverse={"lambda2": 0.1}``.
    """
    data = read_toml(path)
    cfg = from_dict(Config, data)
    for section, values in overrides.items():
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            current = dataclasses.asdict(getattr(cfg, section))
            current.update(values)
            cfg = replace(cfg, **{section: from_dict(type(getattr(cfg, section)), current, f"{section}.")})
    return cfg
