"""Saving and loading PIUNet weights: safetensors + JSON header + SHA-256.

A checkpoint is one ``.safetensors`` file. Its header metadata holds, under the key
``"rtsource"``, a JSON document::

    {"format_version": 1, "architecture": "PIUNet", "width": 8,
     "grid_shape": [32, 32, 32], "spacing_mm": 7.0, "dtype": "float32",
     "model_config": {...PIUNet(**model_config)...},
     "training_config": {...}, "metrics": {...}, "created": "2026-...Z", "rtsource": "0.1.0"}

Beside it, ``<file>.sha256`` holds the SHA-256 of the whole file (header included), so a
truncated, corrupted or edited file is refused. Loading never executes code: safetensors
stores raw tensors only (no pickle).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch

from .._util import file_sha256
from .piunet import GRID_SIZE, PIUNet
from .temporal import TemporalNet, TemporalSpec

__all__ = [
    "FORMAT_VERSION",
    "Checkpoint",
    "SHIPPED_CHECKPOINT",
    "ChecksumMismatchError",
    "checkpoint_path",
    "init_from_header",
    "init_from_path",
    "load_checkpoint",
    "read_header",
    "save_checkpoint",
]

logger = logging.getLogger("rtsource")

FORMAT_VERSION = 1
"""Version of the checkpoint layout written by :func:`save_checkpoint`."""

#: The 3D-PIUNet weights shipped in the package (``refine.checkpoint = "default"``).
SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "piunet-w8.safetensors"

_META_KEY = "rtsource"
_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def checkpoint_path(spec: str) -> Path:
    """Resolve ``"default"`` to the shipped weights, anything else to a path.

    Raises
    ------
    FileNotFoundError
        When the file does not exist (the message says which setting to change).
    """
    path = SHIPPED_CHECKPOINT if spec == "default" else Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"3D-PIUNet checkpoint {str(path)!r} does not exist"
            + (" (the package was installed without its weights)." if spec == "default" else
               "; set refine.checkpoint to a file written by 'rtsource train' or 'default'."))
    return path


def init_from_path(setting: str, value: str, shipped: Path) -> Path:
    """The checkpoint a training configuration's ``init_from`` names, checked to exist.

    Parameters
    ----------
    setting : the setting's dotted name, for the message (``"train.init_from"``).
    value : its value: a path (relative to the working directory) or ``"shipped"``.
    shipped : the file ``"shipped"`` stands for.

    Raises
    ------
    FileNotFoundError
        When the file does not exist; the message names the setting, the value and the fix.
    """
    path = shipped if value == "shipped" else Path(value).expanduser()
    if not path.is_file():
        where = ("" if path.is_absolute() else
                 f" (relative paths are from the working directory, {os.getcwd()!r}: run from "
                 "the repository root or give an absolute path)")
        raise FileNotFoundError(
            f"{setting} = {value!r}: no such checkpoint{where}; use a .safetensors file "
            "written by rtsource train, 'shipped' for the shipped weights, or leave it out to "
            "start from random weights.")
    return path


def init_from_header(setting: str, value: str, shipped: Path, architecture: str,
                     kind: str, example: str) -> tuple[Path, dict[str, Any]]:
    """:func:`init_from_path`, then the checkpoint's header, checked to hold ``architecture``.

    Parameters
    ----------
    setting, value, shipped : as for :func:`init_from_path`.
    architecture : the header's required ``architecture`` (``"PIUNet"``, ``"TemporalNet"``).
    kind : the network in words, for the message (``"the temporal network"``).
    example : a checkpoint that would do, for the message.

    Returns
    -------
    (Path, dict)
        The file and its header (:func:`read_header`; the weights are not read).

    Raises
    ------
    FileNotFoundError
        When the file does not exist (see :func:`init_from_path`).
    ValueError
        When it holds another network; the message names the setting, the value and the fix.
    """
    path = init_from_path(setting, value, shipped)
    header = read_header(path)
    if header.get("architecture") != architecture:
        raise ValueError(
            f"{setting} = {value!r} holds a "
            f"{header.get('architecture') or 'network of unknown kind'}, not {kind}: give a "
            f"{architecture} checkpoint written by rtsource train (e.g. {example}), 'shipped', "
            "or leave it out to start from random weights.")
    return path, header


class ChecksumMismatchError(ValueError):
    """The checkpoint file's SHA-256 differs from the expected one (corrupt or edited)."""


@dataclass
class Checkpoint:
    """A loaded checkpoint.

    Attributes
    ----------
    model : PIUNet
        The network, in eval mode, float32, on ``map_location``.
    header : dict
        The JSON header (see the module docstring).
    sha256 : str
        SHA-256 of the weights file (hex); use it as the weights' identity in provenance.
    path : pathlib.Path
        The file it was loaded from.
    """

    model: PIUNet | TemporalNet
    header: dict[str, Any]
    sha256: str
    path: Path

    @property
    def width(self) -> int:
        """Network width w."""
        return int(self.header["width"])

    @property
    def training_config(self) -> dict[str, Any]:
        """Training configuration stored with the weights."""
        return dict(self.header.get("training_config", {}))

    @property
    def metrics(self) -> dict[str, Any]:
        """Evaluation metrics stored with the weights."""
        return dict(self.header.get("metrics", {}))


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def save_checkpoint(
    model: PIUNet | TemporalNet,
    path: str | os.PathLike,
    *,
    spacing_mm: float,
    training_config: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    dtype: Literal["float32", "float16"] = "float32",
    extra: dict[str, Any] | None = None,
) -> str:
    """Write ``model``'s weights with a JSON header and a SHA-256 sidecar.

    Parameters
    ----------
    model : PIUNet or TemporalNet
        The network to save (``architecture`` in the header is its class name).
    path : path-like
        Output file (``.safetensors`` by convention). ``<path>.sha256`` is written beside it.
    spacing_mm : float
        Source-grid spacing (mm) of the volumes the network was trained on.
    training_config, metrics : dict, optional
        JSON-serialisable training settings and evaluation results to keep with the weights.
    dtype : {"float32", "float16"}
        Storage precision (float16 halves the file; weights load back as float32).
    extra : dict, optional
        More JSON header fields the network's users need (the temporal network's node
        names, rate and output gain).

    Returns
    -------
    str
        SHA-256 (hex) of the written file.
    """
    from safetensors.torch import save_file

    if not isinstance(model, (PIUNet, TemporalNet)):
        raise TypeError("save_checkpoint expects a PIUNet or a TemporalNet; got "
                        f"{type(model).__name__}.")
    if dtype not in ("float32", "float16"):
        raise ValueError(f"dtype={dtype!r} is not valid; choose 'float32' or 'float16'.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arch = type(model).__name__
    shape = ({"width": model.width, "grid_shape": [model.grid_size] * 3}
             if isinstance(model, PIUNet) else {})
    header = {
        "format_version": FORMAT_VERSION,
        "architecture": arch,
        **shape,
        **(extra or {}),
        "spacing_mm": float(spacing_mm),
        "dtype": dtype,
        "model_config": model.config,
        "training_config": training_config or {},
        "metrics": metrics or {},
        "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "rtsource": _package_version(),
    }
    try:
        text = json.dumps(header, sort_keys=True)
    except TypeError as err:
        raise TypeError(
            f"training_config and metrics must be JSON-serialisable for a checkpoint: {err}"
        ) from err
    target = _DTYPES[dtype]
    tensors = {
        k: (
            v.detach().to("cpu", target) if v.is_floating_point() else v.detach().cpu()
        ).contiguous()
        for k, v in model.state_dict().items()
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata={_META_KEY: text})
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # safetensors writes 0600; weights are meant to be shared
    os.replace(tmp, path)
    digest = file_sha256(path)
    _sidecar(path).write_text(f"{digest}  {path.name}\n")  # `sha256sum -c` format
    logger.info("Saved %s checkpoint %s (sha256 %s)", arch, path, digest[:12])
    return digest


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint's JSON header without loading (or verifying) the weights."""
    from safetensors import safe_open

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint file {str(path)!r} does not exist.")
    try:
        with safe_open(str(path), framework="pt") as fid:
            meta = fid.metadata() or {}
    except Exception as err:  # safetensors raises its own error types
        raise ValueError(
            f"Checkpoint file {str(path)!r} is not a readable safetensors file: {err}"
        ) from err
    if _META_KEY not in meta:
        raise ValueError(
            f"Checkpoint file {str(path)!r} has no {_META_KEY!r} header: it was not written by "
            "rtsource.models.save_checkpoint."
        )
    try:
        return json.loads(meta[_META_KEY])
    except json.JSONDecodeError as err:
        raise ValueError(
            f"Checkpoint file {str(path)!r} has a malformed JSON header: {err}"
        ) from err


def _expect(field_name: str, found: Any, expected: Any, path: Path) -> None:
    if found != expected:
        raise ValueError(
            f"Checkpoint {str(path)!r}: field {field_name!r} is {found!r}, expected {expected!r}."
        )


def load_checkpoint(
    path: str | os.PathLike,
    expected_sha256: str | None = None,
    *,
    expected_width: int | None = None,
    expected_grid: tuple[int, int, int] = (GRID_SIZE,) * 3,
    map_location: str | torch.device = "cpu",
    verify: bool = True,
    architecture: str = "PIUNet",
) -> Checkpoint:
    """Load and verify a checkpoint written by :func:`save_checkpoint`.

    Parameters
    ----------
    path : path-like
        The ``.safetensors`` file.
    expected_sha256 : str, optional
        Expected SHA-256 (hex). Defaults to the content of ``<path>.sha256``.
    expected_width : int, optional
        Refuse a network of another width.
    expected_grid : tuple of int
        Refuse a network trained on another volume shape.
    map_location : str or torch.device
        Device for the returned model.
    verify : bool
        If False, skip the hash check (for inspection only; never for deployment).
    architecture : {"PIUNet", "TemporalNet"}
        The network the file must hold.

    Returns
    -------
    Checkpoint

    Raises
    ------
    FileNotFoundError
        The file, or the hash sidecar when no ``expected_sha256`` is given, is missing.
    ChecksumMismatchError
        The file's SHA-256 differs from the expected one (names the file and both hashes).
    ValueError
        Unreadable file, or a header field (format_version, grid_shape, width, architecture)
        differs from what is expected (names the field, the value found and the value
        expected).
    """
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"Checkpoint file {str(path)!r} does not exist.")
    digest = file_sha256(path)
    if verify:
        source = "expected_sha256"
        if expected_sha256 is None:
            side = _sidecar(path)
            if not side.exists():
                raise FileNotFoundError(
                    f"Checkpoint {str(path)!r} has no hash file {str(side)!r} and no "
                    "expected_sha256 was given; refusing to load unverified weights "
                    "(pass verify=False to inspect it anyway)."
                )
            words = side.read_text().split()
            expected_sha256 = words[0] if words else ""
            source = str(side)
        if digest.lower() != expected_sha256.strip().lower():
            raise ChecksumMismatchError(
                f"Checkpoint file {str(path)!r} is corrupt or was modified: its SHA-256 is "
                f"{digest}, but {source} says {expected_sha256.strip() or '(empty)'}."
            )
    header = read_header(path)
    _expect("format_version", header.get("format_version"), FORMAT_VERSION, path)
    _expect("architecture", header.get("architecture"), architecture, path)
    if architecture == "TemporalNet":
        return _load_temporal(path, header, digest, map_location)
    grid = header.get("grid_shape")
    _expect(
        "grid_shape", tuple(grid) if isinstance(grid, list) else grid, tuple(expected_grid), path
    )
    if expected_width is not None:
        _expect("width", header.get("width"), int(expected_width), path)
    config = dict(header.get("model_config", {}))
    if "channel_mult" in config:
        config["channel_mult"] = tuple(config["channel_mult"])
    _expect("model_config.width", config.get("width"), header.get("width"), path)
    try:
        model = PIUNet(**config)
    except (TypeError, ValueError) as err:
        raise ValueError(
            f"Checkpoint {str(path)!r}: model_config {config} is not valid: {err}"
        ) from err
    try:
        state = load_file(str(path), device="cpu")
    except Exception as err:
        raise ValueError(f"Checkpoint file {str(path)!r} could not be read: {err}") from err
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(
            f"Checkpoint {str(path)!r}: weights do not match PIUNet({config}): {err}"
        ) from err
    model = model.to(map_location).eval()
    logger.info("Loaded PIUNet(width=%d) from %s (sha256 %s)", model.width, path, digest[:12])
    return Checkpoint(model=model, header=header, sha256=digest, path=path)


def _load_temporal(path: Path, header: dict[str, Any], digest: str,
                   map_location: str | torch.device) -> Checkpoint:
    from safetensors.torch import load_file

    try:
        model = TemporalNet(TemporalSpec(**header.get("model_config", {})))
    except TypeError as err:
        raise ValueError(f"Checkpoint {str(path)!r}: model_config "
                         f"{header.get('model_config')} is not valid: {err}") from err
    state = {k: v.float() if v.is_floating_point() else v
             for k, v in load_file(str(path), device="cpu").items()}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"Checkpoint {str(path)!r}: weights do not match "
                         f"TemporalNet({header.get('model_config')}): {err}") from err
    logger.info("Loaded TemporalNet from %s (sha256 %s)", path, digest[:12])
    return Checkpoint(model=model.to(map_location).eval(), header=header, sha256=digest,
                      path=path)


def _package_version() -> str:
    try:
        from .._version import __version__

        return str(__version__)
    except ImportError:  # pragma: no cover - package without __init__ metadata
        return "unknown"
