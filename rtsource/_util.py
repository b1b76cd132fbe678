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


#: Unit strings (lower case) and their factor to volts.
_UNIT_SCALES: dict[str, float] = {
    "v": 1.0,
    "volt": 1.0,
    "volts": 1.0,
    "mv": 1e-3,
    "millivolt": 1e-3,
    "millivolts": 1e-3,
    "uv": 1e-6,
    "µv": 1e-6,
    "μv": 1e-6,
    "microvolt": 1e-6,
    "microvolts": 1e-6,
    "nv": 1e-9,
    "nanovolt": 1e-9,
    "nanovolts": 1e-9,
}


def unit_to_volts(unit: str | None) -> float | None:
    """Factor converting a channel's values to volts, or None if unknown.

    Accepts XDF-style names (``"microvolts"``), symbols (``"uV"``, ``"µV"``, ``"mV"``,
    ``"V"``) and mne-lsl's power-of-ten multipliers (``"0"``, ``"-6"``: values are
    ``10**k`` volts).
    """
    if unit is None:
        return None
    text = unit.strip().lower()
    if text in _UNIT_SCALES:
        return _UNIT_SCALES[text]
    try:
        exponent = int(text)
    except ValueError:
        return None
    return 10.0**exponent if -12 <= exponent <= 3 else None


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


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file of this process, then rename it.

    Readers never see a partial file, and processes writing the same cache file at once do
    not clobber each other's temporary file (the last rename wins; side files written after
    it, such as checksums, are not covered). The temporary file is removed on failure.
    Raises OSError (unwritable folder, disk full).
    """
    import uuid

    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


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


def cached_file(kind: str, key: str, suffix: str, build_to, *, force: bool = False,
                load=None, root: str | os.PathLike | None = None):
    """Return a verified cache file ``kind/key<suffix>``, building it if needed.

    ``build_to(path)`` writes the file; each entry gets a SHA-256 sidecar. A missing,
    corrupt or tampered entry is rebuilt (never used) with a log line that says why; so is
    one that ``load(path)`` (optional) fails to read. ``force`` rebuilds unconditionally.
    ``root`` is the cache folder (default :func:`cache_dir`).
    Returns ``(path, loaded)`` where ``loaded`` is ``load(path)`` or None.
    """
    folder = (Path(root) if root is not None else cache_dir()) / kind
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}{suffix}"
    sidecar = folder / f"{key}.sha256"
    reason = "forced rebuild (--force)" if force else None
    if reason is None:
        if not path.exists():
            reason = "not cached yet"
        elif not sidecar.exists():
            reason = (f"cache file {path} has no checksum file (an older version's file, or "
                      "the checksum was removed)")
        elif sidecar.read_text().strip() != file_sha256(path):
            reason = f"cache file {path} is corrupt or stale (checksum mismatch)"
        else:
            try:
                return path, (load(path) if load is not None else None)
            except Exception as err:  # unreadable although the checksum matched: rebuild
                reason = f"cache file {path} could not be read ({err})"
    if reason == "not cached yet":
        logger.info("Building %s %s (not cached yet)", kind, key)
    else:
        logger.warning("Rebuilding %s %s: %s", kind, key, reason)
    # per process: two processes building the same entry do not clobber each other's file
    tmp = folder / f"{key}.{os.getpid()}.partial{suffix}"
    try:
        build_to(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    sidecar.write_text(file_sha256(path))
    return path, (load(path) if load is not None else None)


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def load_or_build(kind: str, key: str, build, *, force: bool = False) -> dict[str, np.ndarray]:
    """Load the verified cache entry ``kind/key.npz`` or build it with ``build() -> dict``."""

    def build_to(path: Path) -> None:
        with open(path, "wb") as fid:
            np.savez(fid, **build())

    return cached_file(kind, key, ".npz", build_to, force=force, load=_load_npz)[1]


def quiet_liblsl(level: int = -2) -> None:
    """Keep liblsl's own INFO lines off the terminal (warnings and errors still show).

    liblsl reads its settings from the file named by ``LSLAPICFG`` when it first starts;
    a user's own ``LSLAPICFG`` is left alone.
    """
    if os.environ.get("LSLAPICFG"):
        return
    path = cache_dir() / "lsl_api.cfg"
    if not path.exists():
        path.write_text(f"[log]\nlevel = {level}\n")
    os.environ["LSLAPICFG"] = str(path)


#: CPU instruction sets that decide the fastest numeric path (FACTS.md: bf16 is fast only
#: with AMX or AVX-512-BF16; without them bf16 is emulated and slower than fp32).
_CPU_FLAGS = ("amx_bf16", "amx_int8", "amx_tile", "avx512_bf16", "avx512_fp16",
              "avx512_vnni", "avx512f", "avx2", "fma")


def loadavg() -> list[float] | None:
    """The load average (1, 5, 15 min), rounded; None where the system has none."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def host_provenance() -> dict[str, object]:
    """Where a run happens, for a benchmark's or an evaluation's metadata: Python, the CPU
    model, its instruction sets of interest (:func:`cpu_features`), whether bf16 is native,
    the core count and the load average (1, 5, 15 min) now.

    Returns
    -------
    dict with keys ``python``, ``cpu``, ``cpu_flags``, ``bf16_native``, ``cpu_count``,
    ``load_average``.
    """
    import platform

    cpu = cpu_features()
    return {"python": platform.python_version(), "cpu": cpu["model"], "cpu_flags": cpu["flags"],
            "bf16_native": cpu["bf16_native"], "cpu_count": os.cpu_count(),
            "load_average": loadavg()}


def cpu_features() -> dict[str, object]:
    """The CPU model and the instruction sets of interest (from ``/proc/cpuinfo``).

    Returns
    -------
    dict
        ``{"model": str, "flags": [names present among amx_bf16, avx512_bf16, ...],
        "bf16_native": bool}``; ``bf16_native`` is True where AMX or AVX-512-BF16 exists.
    """
    import platform

    model, flags = None, None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if model is None and key.strip() == "model name":
                model = value.strip()
            elif flags is None and key.strip() == "flags":
                flags = set(value.split())
    except OSError:
        pass
    model = model or platform.processor() or "unknown"
    flags = flags or set()
    present = [f for f in _CPU_FLAGS if f in flags]
    return {"model": model, "flags": present,
            "bf16_native": bool({"amx_bf16", "avx512_bf16"} & flags)}
