"""Small shared helpers: package logger, cache folder, hashing, optional imports."""

from __future__ import annotations

import difflib
import hashlib
import importlib
import json
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger("rtsource")


def cache_dir() -> Path:
    """Return the cache folder (``$RTSOURCE_CACHE`` or the user's cache dir), created."""
    env = os.environ.get("RTSOURCE_CACHE")
    if env:
        path = Path(env)
    else:
        import platformdirs

        path = Path(platformdirs.user_cache_dir("rtsource"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def _canon(obj: Any) -> Any:
    """Turn configs, arrays and tuples into something JSON can hash stably."""
    if isinstance(obj, np.ndarray):
        return {"__array__": hashlib.sha256(np.ascontiguousarray(obj).tobytes()).hexdigest(),
                "shape": list(obj.shape), "dtype": str(obj.dtype)}
    if isinstance(obj, dict):
        return {str(k): _canon(v) for k, v in sorted(obj.items())}
    if isinstance(obj, (list, tuple)):
        return [_canon(v) for v in obj]
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def stable_hash(*parts: Any, length: int = 16) -> str:
    """SHA-256 of a canonical JSON rendering of ``parts`` (hex, truncated to ``length``)."""
    text = json.dumps(_canon(list(parts)), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fid:
        for block in iter(lambda: fid.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def close_matches(value: str, options: list[str], n: int = 5) -> str:
    """Return a ' Did you mean ...?' hint (empty if nothing is close)."""
    lower = {o.lower(): o for o in options}
    hits = difflib.get_close_matches(value.lower(), list(lower), n=n, cutoff=0.5)
    if not hits:
        return ""
    return " Did you mean: " + ", ".join(repr(lower[h]) for h in hits) + "?"


def optional_import(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise ImportError with an install hint."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{purpose} needs the Python package {module!r}, which is not installed. "
            f"Install it with: pip install 'rtsource[{extra}]'"
        ) from err


def save_npz_atomic(path: Path, **arrays: Any) -> None:
    """Write an .npz through a temporary file so a crash never leaves half a cache entry."""
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_or_build(kind: str, key: str, build, *, force: bool = False) -> dict[str, np.ndarray]:
    """Load the cache entry ``kind/key.npz`` or build it with ``build() -> dict of arrays``.

    Each entry is stored with a SHA-256 sidecar. A missing, corrupt or tampered entry is
    rebuilt (never used) with a log line that says why. ``force`` rebuilds unconditionally.
    """
    folder = cache_dir() / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.npz"
    sidecar = path.with_suffix(".sha256")
    reason = "forced rebuild (--force)" if force else None
    if reason is None:
        if not path.exists():
            reason = "not cached yet"
        elif not sidecar.exists() or sidecar.read_text().strip() != file_sha256(path):
            reason = f"cache file {path} is corrupt or stale (checksum mismatch)"
        else:
            try:
                with np.load(path, allow_pickle=False) as npz:
                    return {k: npz[k] for k in npz.files}
            except Exception as err:  # unreadable file: rebuild, say why
                reason = f"cache file {path} could not be read ({err})"
    logger.info("Building %s %s: %s", kind, key, reason)
    arrays = build()
    save_npz_atomic(path, **arrays)
    sidecar.write_text(file_sha256(path))
    return arrays
