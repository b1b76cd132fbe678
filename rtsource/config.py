"""Typed, frozen configuration. TOML files in ``configs/`` map onto these dataclasses.

Every vocabulary of rtsource (methods, inverse methods, refiners, backends, atlases,
conductors, modes and policies) is defined here once, as a ``Literal`` type, and checked
by one helper, :func:`check_value`, whose message names the setting, the value, the
valid values and close matches. Config dataclasses validate themselves in
``__post_init__``, so ``localize``, ``SourceProcessor``, ``Pipeline`` and the CLI give the
same error for the same bad value. Unknown keys are errors (with close matches), so a
typo never silently falls back to a default.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
import typing
import warnings
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from ._util import close_matches

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

# -- vocabularies (each defined once) -------------------------------------------------
Conductor = Literal["bem", "sphere"]
#: Linear inverses (pseudo-inverse kernels) that :mod:`rtsource.inverse` computes.
InverseMethod = Literal["eloreta", "sloreta", "dspm", "mne"]
#: Networks that refine an inverse's estimate (:mod:`rtsource.models`): 3D-PIUNet (per
#: sample, source volume) and the temporal network (eLORETA node vectors over time -> BN246
#: cortical and thalamic time courses).
Refiner = Literal["piunet", "temporal"]
#: What a user asks for (``--method``, ``localize(method=...)``): an inverse, or an inverse
#: refined by a network (see :data:`METHOD_STAGES`).
Method = Literal["eloreta", "sloreta", "dspm", "mne", "piunet", "temporal"]
#: Runtimes for a network (:mod:`rtsource.engines`); ``auto`` picks the fastest available.
Backend = Literal["auto", "tensorrt", "cuda", "openvino", "onnx", "cpu", "eager"]
#: Compute precision of a network: ``auto`` = fp16 on GPUs, bf16 on CPUs with AMX or
#: AVX-512-BF16, fp32 on other CPUs.
Precision = Literal["auto", "fp32", "bf16", "fp16"]
#: Atlases shipped or installed with rtsource (a path to a labelled NIfTI is also valid).
BundledAtlas = Literal["bn246", "aal3", "hcpex"]
RegionMode = Literal["magnitude", "signed"]
BadDataPolicy = Literal["flag", "exclude"]
Schedule = Literal["arrival", "hop"]
OverflowPolicy = Literal["error", "drop_oldest"]
TimestampPolicy = Literal["source", "arrival"]
#: Brain-dynamics regimes of the neural-mass simulator (``simulate-stream --dynamics``).
Regime = Literal["spontaneous", "evoked", "interictal", "ictal"]
REGIMES: tuple[str, ...] = get_args(Regime)

CONDUCTORS: tuple[str, ...] = get_args(Conductor)
INVERSE_METHODS: tuple[str, ...] = get_args(InverseMethod)
REFINERS: tuple[str, ...] = get_args(Refiner)
METHODS: tuple[str, ...] = get_args(Method)
BACKENDS: tuple[str, ...] = get_args(Backend)
PRECISIONS: tuple[str, ...] = get_args(Precision)
ATLASES: tuple[str, ...] = get_args(BundledAtlas)
#: User-facing method -> (inverse, refiner or None). The one place where ``piunet`` is
#: mapped to "eLORETA refined by 3D-PIUNet".
METHOD_STAGES: dict[str, tuple[str, str | None]] = {
    **{m: (m, None) for m in INVERSE_METHODS},
    "piunet": ("eloreta", "piunet"),
    "temporal": ("eloreta", "temporal"),
}
assert set(METHOD_STAGES) == set(METHODS)


def check_value(value: Any, allowed: typing.Iterable[Any], name: str) -> Any:
    """Return ``value`` if it is one of ``allowed``; else raise a ValueError that names the
    setting, the value, the valid values and close matches.

    Parameters
    ----------
    value : the value given.
    allowed : the valid values.
    name : the setting's name as the user wrote it (``"method"``, ``"refine.backend"``).

    Raises
    ------
    ValueError
        ``"Setting method = 'eloretta' is not valid; choose one of ['eloreta', ...]. Did
        you mean: 'eloreta'?"``
    """
    options = list(allowed)
    if value in options:
        return value
    hint = close_matches(value, [str(o) for o in options]) if isinstance(value, str) else ""
    raise ValueError(f"Setting {name} = {value!r} is not valid; choose one of {options}.{hint}")


def _check_literals(obj: Any, section: str) -> None:
    """Check every ``Literal``-typed field of a config dataclass with :func:`check_value`."""
    hints = typing.get_type_hints(type(obj))
    for f in fields(obj):
        tp = hints[f.name]
        value = getattr(obj, f.name)
        args = get_args(tp)
        if get_origin(tp) is Literal:
            check_value(value, args, f"{section}.{f.name}")
        elif get_origin(tp) in (typing.Union, getattr(types, "UnionType", None)):
            lits = [a for a in args if get_origin(a) is Literal]
            if lits and value is not None and not any(
                isinstance(value, a) for a in args if isinstance(a, type)
            ):
                check_value(value, [v for lit in lits for v in get_args(lit)],
                            f"{section}.{f.name}")


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def check_positive(section: str, **values: float | None) -> None:
    """Each value None (disabled, where allowed) or a finite positive number (not a bool)."""
    for name, v in values.items():
        if v is not None and not (_is_number(v) and v > 0):
            raise ValueError(f"Setting {section}.{name} = {v!r} must be a positive number"
                             + (" (false disables it)." if v is True else "."))


def check_range(setting: str, pair: Any, *, low: float = -math.inf, high: float = math.inf,
                unit: str = "", example: str) -> None:
    """A (low, high) setting: two finite numbers, low <= high, both within [``low``,
    ``high``].

    Parameters
    ----------
    setting : how the message names it (e.g. ``"Setting temporal.spread_mm"``, or a command
        option such as ``"The focus SNR (--focus-snr LO HI)"``).
    pair : the value.
    low, high : the bounds both numbers must lie within.
    unit : the numbers' unit, for the message (``"dB"``, ``"mm"``).
    example : a valid value, written as the user writes it.

    Raises
    ------
    ValueError
        Naming the setting, the value, the rule and the example.
    """
    vals = tuple(pair) if isinstance(pair, (list, tuple)) else (pair,)
    ok = len(vals) == 2 and all(_is_number(v) and low <= v <= high for v in vals) \
        and vals[0] <= vals[1]
    if not ok:
        if math.isfinite(low) and math.isfinite(high):
            within = f" within {low:g}..{high:g} {unit}"
        elif math.isfinite(low):
            within = f" >= {low:g} {unit}"
        else:
            within = f" in {unit}" if unit else ""
        raise ValueError(f"{setting} = {pair} must be two finite numbers{within} (low, high) "
                         f"with LO <= HI, e.g. {example}.")


def method_stages(method: str) -> tuple[str, str | None]:
    """``(inverse method, refiner or None)`` for a user-facing ``method`` (checked; MNE's
    spellings such as ``"dSPM"`` or ``"eLORETA"`` are accepted)."""
    if isinstance(method, str) and method.lower() in METHODS:
        method = method.lower()
    return METHOD_STAGES[check_value(method, METHODS, "method")]


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

    def __post_init__(self) -> None:
        _check_literals(self, "headmodel")
        check_positive("headmodel", spacing_mm=self.spacing_mm)
        check_value(self.bem_ico, (3, 4), "headmodel.bem_ico")
        if not (_is_number(self.mindist_mm) and self.mindist_mm >= 0):
            raise ValueError(f"Setting headmodel.mindist_mm = {self.mindist_mm!r} must be a "
                             "number of millimetres >= 0.")
        if len(self.conductivity) != 3 or not all(c > 0 for c in self.conductivity):
            raise ValueError(
                f"Setting headmodel.conductivity = {self.conductivity!r} must be three positive "
                "conductivities (brain, skull, scalp) in S/m.")


@dataclass(frozen=True)
class InverseConfig:
    """Linear inverse (pseudo-inverse) kernel.

    lambda2 : regularisation λ² (1/SNR², MNE convention; 1/9 is MNE's default for evoked).
    noise_std_uv : standard deviation of the ad hoc diagonal noise covariance (µV).
    depth : depth-weighting exponent for mne/dspm/sloreta (None disables; eLORETA ignores it).
    fused : in the live path, when only regions are published (no refiner), compute
        inverse and regions together without the source vectors
        (:class:`rtsource.online.fused.FusedRegions`); False runs the plain reference path.
    """

    method: InverseMethod = "eloreta"
    lambda2: float = 1.0 / 9.0
    noise_std_uv: float = 0.2
    depth: float | None = 0.8
    eloreta_max_iter: int = 20
    eloreta_eps: float = 1e-6
    fused: bool = True

    def __post_init__(self) -> None:
        if self.method in REFINERS:
            raise ValueError(
                f"Setting inverse.method = {self.method!r} names a network, not an inverse; "
                f"use method {self.method!r} at the top (--method, localize(method=...)) or "
                f"[refine] refiner = {self.method!r} with inverse.method = "
                f"{METHOD_STAGES[self.method][0]!r}.")
        _check_literals(self, "inverse")
        check_positive("inverse", lambda2=self.lambda2, noise_std_uv=self.noise_std_uv,
                        eloreta_eps=self.eloreta_eps)
        if self.depth is not None and not (_is_number(self.depth) and self.depth >= 0):
            raise ValueError(f"Setting inverse.depth = {self.depth!r} must be a number >= 0 "
                             "(MNE's depth-weighting exponent, 0.8 by default) or false.")
        if isinstance(self.eloreta_max_iter, bool) or not (
                isinstance(self.eloreta_max_iter, int) and self.eloreta_max_iter >= 1):
            raise ValueError(f"Setting inverse.eloreta_max_iter = {self.eloreta_max_iter!r} "
                             "must be an integer >= 1.")


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

    def __post_init__(self) -> None:
        _check_literals(self, "regions")
        check_positive("regions", sigma_mm=self.sigma_mm)
        if not isinstance(self.atlas, str) or not self.atlas:
            raise ValueError(f"Setting regions.atlas = {self.atlas!r} must be one of "
                             f"{list(ATLASES)} or a path to a labelled NIfTI file.")
        looks_like_path = any(c in self.atlas for c in "/\\.")
        if not looks_like_path and self.atlas.lower() not in ATLASES:
            check_value(self.atlas, ATLASES, "regions.atlas")


@dataclass(frozen=True)
class StreamConfig:
    """LSL input, windows and hops, filters, bad-data policy and output (see
    ``configs/default.toml`` for every setting, commented)."""

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
    bad_data: BadDataPolicy = "flag"
    schedule: Schedule = "arrival"
    overflow: OverflowPolicy = "drop_oldest"
    flat_uv: float | None = 0.1
    flat_s: float = 0.1
    clip_s: float | None = 0.05
    saturation_uv: float | None = None
    expected_srate: float | None = None
    expected_channels: int | None = None
    units: str = "auto"
    timestamps: TimestampPolicy = "source"
    channel_labels: tuple[str, ...] | None = None
    bads: tuple[str, ...] = ()
    stream_bads: bool = True
    volume_hz: float | None = None

    def __post_init__(self) -> None:
        _check_literals(self, "stream")
        check_positive("stream", window_s=self.window_s, hop_s=self.hop_s,
                        buffer_s=self.buffer_s, resolve_timeout_s=self.resolve_timeout_s,
                        lost_timeout_s=self.lost_timeout_s, flat_uv=self.flat_uv,
                        flat_s=self.flat_s, clip_s=self.clip_s,
                        saturation_uv=self.saturation_uv, expected_srate=self.expected_srate,
                        highpass_hz=self.highpass_hz, lowpass_hz=self.lowpass_hz,
                        notch_hz=self.notch_hz)
        if (self.highpass_hz is not None and self.lowpass_hz is not None
                and self.highpass_hz >= self.lowpass_hz):
            raise ValueError(f"Setting stream.highpass_hz = {self.highpass_hz} must be below "
                             f"stream.lowpass_hz = {self.lowpass_hz} (a band-pass); set one of "
                             "them to false to disable it.")
        ec = self.expected_channels
        if ec is not None and (isinstance(ec, bool) or not isinstance(ec, int) or ec < 1):
            raise ValueError(f"Setting stream.expected_channels = {ec!r} must be an integer "
                             ">= 1, or left out.")
        from ._util import unit_to_volts

        if not isinstance(self.units, str) or (self.units.strip().lower() != "auto"
                                               and unit_to_volts(self.units) is None):
            raise ValueError(f"Setting stream.units = {self.units!r} is not valid; give 'auto' "
                             "(the stream's metadata, else decided from the values) or a voltage "
                             "unit: 'V', 'mV', 'uV'.")
        for name in ("channel_labels", "bads"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, str) or not all(
                    isinstance(v, str) and v.strip() for v in value)):
                raise ValueError(f"Setting stream.{name} = {value!r} must be a list of channel "
                                 "labels (non-empty strings).")
        if self.hop_s > self.window_s:
            raise ValueError(f"Setting stream.hop_s = {self.hop_s} s must not exceed "
                             f"stream.window_s = {self.window_s} s.")
        # the source-volume outlet (rtsource run --publish-volume): off unless set
        check_positive("stream", volume_hz=self.volume_hz)


def temporal_runtime(backend: str = "auto", precision: str = "auto") -> tuple[str, str]:
    """The temporal stage's runtime for ``refine.backend`` and ``refine.precision``.

    Returns
    -------
    (backend, precision) : (``"onnx"`` | ``"torch"``, ``"auto"`` | ``"fp32"`` | ``"bf16"``)
        ``auto`` → ONNX Runtime in float32 (the fast path per hop), or PyTorch when bf16 is
        asked for; ``onnx`` → ONNX Runtime; ``cpu`` and ``eager`` → PyTorch.

    Raises
    ------
    ValueError
        A GPU or OpenVINO backend, fp16, or bf16 with ``onnx`` (the message names the
        settings and the fix).
    """
    if backend in ("tensorrt", "cuda", "openvino"):
        raise ValueError(
            f"Setting refine.backend = {backend!r} does not run the temporal network: it runs "
            "on the CPU (2-3 samples per 10 ms hop when streaming). Use 'auto' or 'onnx' (ONNX "
            "Runtime, the fastest), or 'cpu' (PyTorch).")
    if precision == "fp16":
        raise ValueError("Setting refine.precision = 'fp16' is for GPUs; the temporal network "
                         "runs on the CPU in 'fp32' or 'bf16' ('auto' chooses).")
    if backend == "onnx" and precision == "bf16":
        raise ValueError("Setting refine.precision = 'bf16' needs refine.backend = 'cpu' "
                         "(PyTorch) for the temporal network; ONNX Runtime runs it in fp32.")
    if backend == "eager":  # plain PyTorch in float32: the reference
        return "torch", "fp32" if precision == "auto" else precision
    if backend == "cpu" or precision == "bf16":
        return "torch", precision
    return "onnx", "fp32"



@dataclass(frozen=True)
class RefineConfig:
    """Refinement of the inverse's estimate by a network (methods ``piunet``, ``temporal``).

    refiner : the network (``"piunet"``: 3D-PIUNet; ``"temporal"``: the causal conv-recurrent
        network on eLORETA node vectors) or None (no refinement). Users usually set it
        through the method (``--method piunet`` = eLORETA + 3D-PIUNet).
    checkpoint : "default" (the weights shipped in the package for the refiner) or a path to
        a checkpoint written by ``rtsource train`` or ``rtsource adapt`` (its ``.sha256`` file
        must sit beside it).
    backend : inference runtime; for 3D-PIUNet "auto" picks TensorRT, then PyTorch CUDA,
        then the compiled PyTorch CPU path; the temporal network runs on the CPU ("auto" and
        "onnx": ONNX Runtime in fp32; "cpu": PyTorch; "eager": PyTorch in fp32; GPU and
        OpenVINO backends are refused: :func:`temporal_runtime`).
    precision : compute precision ("auto": fp16 on GPUs, bf16 on CPUs that have AMX or
        AVX-512-BF16, else fp32; for the temporal network on "cpu", bf16 where native).
    decimate : refine one of every N samples ("auto": the smallest N, a divisor or a
        multiple of the hop, whose refinement fits in 70 % of real time, timed at
        start-up). Unrefined samples are not published: the output's nominal
        rate is the input rate divided by N, declared in the outlet metadata.
    """

    refiner: Refiner | None = None
    checkpoint: str = "default"
    backend: Backend = "auto"
    precision: Precision = "auto"
    decimate: int | Literal["auto"] = "auto"

    def __post_init__(self) -> None:
        _check_literals(self, "refine")
        if self.refiner == "temporal":  # refuse what the temporal stage cannot run, early
            temporal_runtime(self.backend, self.precision)
        if self.decimate != "auto" and (isinstance(self.decimate, bool)
                                        or not isinstance(self.decimate, int)
                                        or self.decimate < 1):
            raise ValueError(
                f"Setting refine.decimate = {self.decimate!r} is not valid; give 'auto' or an "
                "integer >= 1 (refine one of every N samples).")


@dataclass(frozen=True)
class Config:
    headmodel: HeadModelConfig = field(default_factory=HeadModelConfig)
    inverse: InverseConfig = field(default_factory=InverseConfig)
    regions: RegionsConfig = field(default_factory=RegionsConfig)
    stream: StreamConfig = field(default_factory=StreamConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)

    @property
    def method(self) -> str:
        """The user-facing method: the refiner's name when there is one, else the inverse."""
        return self.refine.refiner or self.inverse.method

    def with_method(self, method: str | None) -> Config:
        """A copy that runs ``method`` (see :data:`METHOD_STAGES`); None keeps the current."""
        if method is None:
            return self
        inv, ref = method_stages(method)
        return replace(self, inverse=replace(self.inverse, method=inv),
                       refine=replace(self.refine, refiner=ref))


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = get_origin(tp)
    if origin is Literal:
        return check_value(value, get_args(tp), where)
    if origin is tuple and get_args(tp) == (str, Ellipsis):
        if isinstance(value, str):
            value = [v for v in (p.strip() for p in value.split(",")) if v]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ValueError(f"Setting {where} = {value!r} must be a list of strings.")
        return tuple(value)
    if origin is tuple:
        n = len(get_args(tp))
        if not isinstance(value, (list, tuple)) or len(value) != n or not all(
                _is_number(v) for v in value):
            raise ValueError(f"Setting {where} = {value!r} must be a list of {n} finite numbers.")
        return tuple(float(v) for v in value)
    if origin in (typing.Union, getattr(types, "UnionType", None)):
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
    if tp is float:
        if not _is_number(value):
            raise ValueError(f"Setting {where} = {value!r} must be a number"
                             + (" (false disables an optional setting)." if value is True
                                else "."))
        return float(value)
    if tp in (int, str, bool) and (not isinstance(value, tp)
                                   or (tp is int and isinstance(value, bool))):
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
        try:
            return tomllib.load(fid)
        except tomllib.TOMLDecodeError as err:
            raise ValueError(f"{what} {str(path)!r} is not valid TOML: {err}. Compare it with "
                             "configs/default.toml.") from err


def _migrate(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Read the settings of older config files: ``[inverse] method = "piunet"`` (before the
    refiner had its own setting) means ``method = "piunet"``, with a DeprecationWarning."""
    inverse = data.get("inverse")
    if isinstance(inverse, dict) and inverse.get("method") in REFINERS:
        name = inverse["method"]
        warnings.warn(
            f"{where}: [inverse] method = {name!r} is deprecated; write [refine] refiner = "
            f"{name!r} (and [inverse] method = {METHOD_STAGES[name][0]!r}), or pass the method "
            "on the command line (--method).", FutureWarning, stacklevel=3)
        data = {**data, "inverse": {**inverse, "method": METHOD_STAGES[name][0]},
                "refine": {**data.get("refine", {}), "refiner": METHOD_STAGES[name][1]}}
    return data


def load_config(path: str | Path | None = None, *, method: str | None = None,
                **overrides: dict[str, Any]) -> Config:
    """Load a TOML config (defaults if ``path`` is None) and apply overrides.

    Parameters
    ----------
    path : a TOML file, or None for the defaults.
    method : a user-facing method (``"eloreta"``, ..., ``"piunet"``) applied on top
        (:meth:`Config.with_method`); None keeps the file's.
    **overrides : section name -> dict of settings, e.g. ``inverse={"lambda2": 0.1}``
        (None values leave a setting as it is).

    Raises
    ------
    ValueError
        For an unknown key or an invalid value (the message names the setting).
    FileNotFoundError
        When ``path`` does not exist.
    """
    data = _migrate(read_toml(path), str(path) if path is not None else "config")
    cfg = from_dict(Config, data)
    sections = [f.name for f in fields(Config)]
    for section, values in overrides.items():
        if section not in sections:
            raise ValueError(f"Unknown config section {section!r}.{close_matches(section, sections)}"
                             f" Valid sections: {sections}.")
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            current = dataclasses.asdict(getattr(cfg, section))
            current.update(values)
            cfg = replace(cfg, **{section: from_dict(type(getattr(cfg, section)), current, f"{section}.")})
    return cfg.with_method(method)
