"""The refine stage: eLORETA source vectors -> 3D-PIUNet on an engine -> refined vectors.

``Refiner(sources (n_times, n_sources, 3)) -> (n_times, n_sources, 3)``: every sample is
scaled by s = 1/max|z|, scattered into the 3×32³ volume, run through the network on the
engine it was handed, gathered back at the grid points and divided by s (Morik et al.,
IEEE TMI 2025; FACTS.md, 3D-PIUNet). :func:`make_refiner` loads a checkpoint and builds
(or reuses) the engine; :func:`choose_decimation` decides how many samples the live
pipeline can refine.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from .._util import logger
from ..config import RefineConfig
from ..engines import Engine, make_engine, resolve_backend
from ..headmodel import HeadModel
from ..models.checkpoint import Checkpoint, checkpoint_path, load_checkpoint
from ..models.volume import VolumeMapper

__all__ = ["Refiner", "choose_decimation", "make_refiner", "refine_batch_sizes"]

#: Refinement may use at most this fraction of real time under decimate = "auto" (the rest
#: is left to the inverse, LSL and jitter on the same processing thread).
REFINE_BUDGET = 0.7
#: Backends for which preparing a second batch size is cheap (no long compilation).
_BATCHING_BACKENDS = ("tensorrt", "cuda", "openvino")
#: Engines kept per process (compiling a network costs seconds; each distinct
#: (weights, backend, batch sizes) compiles once per process).
_ENGINE_CACHE_SIZE = 4
_ENGINES: OrderedDict[tuple, Engine] = OrderedDict()


class Refiner:
    """3D-PIUNet refinement on an engine handed in (a pure stage).

    Parameters
    ----------
    engine : Engine
        Runs the network on (batch, 3, 32, 32, 32) float32 volumes.
    vox : (n_sources, 3) int array
        Voxel index of each source-grid point in the 32³ volume (``HeadModel.vox``).
    checkpoint : Checkpoint | None
        Where the weights came from (for provenance).
    """

    def __init__(self, engine: Engine, vox: NDArray, checkpoint: Checkpoint | None = None
                 ) -> None:
        self.engine = engine
        self.mapper = VolumeMapper(vox)
        self.checkpoint = checkpoint

    @property
    def backend(self) -> str:
        return self.engine.name

    def __call__(self, sources: NDArray) -> NDArray:
        """Refine (n_times, n_sources, 3) source vectors (A·m); returns the same shape,
        float32."""
        vol, scale = self.mapper.to_volume(np.ascontiguousarray(sources, np.float32))
        out = self.engine(vol)
        return np.asarray(self.mapper.from_volume(out, scale), np.float32)

    def provenance(self) -> dict[str, str]:
        ck = self.checkpoint
        out = {"piunet_backend": self.engine.name,
               "piunet_precision": str(getattr(self.engine, "dtype", "float32"))}
        if ck is not None:
            out.update({"piunet_weights": ck.path.name, "piunet_sha256": ck.sha256,
                        "piunet_width": str(ck.width)})
        return out


def make_refiner(headmodel: HeadModel, cfg: RefineConfig | None = None,
                 batch_sizes: Sequence[int] = (1,)) -> Refiner:
    """Load ``cfg.checkpoint`` and hand its network, on ``cfg.backend``, to a :class:`Refiner`.

    Engines are reused within a process for the same weights (SHA-256), backend and batch
    sizes, so the network compiles once per process and shape however many pipelines or
    ``localize`` calls use it.

    Raises
    ------
    FileNotFoundError
        When the checkpoint does not exist.
    ValueError
        When the checkpoint's grid spacing differs from the head model's.
    """
    cfg = cfg or RefineConfig()
    ckpt = load_checkpoint(checkpoint_path(cfg.checkpoint))
    spacing = float(ckpt.header.get("spacing_mm", headmodel.spacing_mm))
    if abs(spacing - headmodel.spacing_mm) > 1e-6:
        raise ValueError(
            f"Checkpoint {ckpt.path.name} was trained on a {spacing:g} mm grid but the "
            f"head model uses {headmodel.spacing_mm:g} mm; set headmodel.spacing_mm = "
            f"{spacing:g} or train a network for this grid.")
    key = (ckpt.sha256, cfg.backend, cfg.precision, tuple(batch_sizes))
    engine = _ENGINES.get(key)
    if engine is None:
        t0 = time.perf_counter()
        engine = make_engine(ckpt.model, cfg.backend, batch_sizes=tuple(batch_sizes),
                             precision=cfg.precision)
        logger.info("3D-PIUNet width %d on %s (%s) ready in %.1f s", ckpt.width, engine.name,
                    getattr(engine, "dtype", "float32"), time.perf_counter() - t0)
        _ENGINES[key] = engine
        while len(_ENGINES) > _ENGINE_CACHE_SIZE:
            _ENGINES.popitem(last=False)
    else:
        _ENGINES.move_to_end(key)
    return Refiner(engine, headmodel.vox, ckpt)


def refine_batch_sizes(cfg: RefineConfig, hop: int) -> tuple[int, ...]:
    """Batch sizes to prepare: (1, hop) where a second size is cheap to prepare (GPUs,
    OpenVINO; a hop is the largest batch the pipeline hands the refiner), else (1,)
    (compiling another size with torch.compile costs tens of seconds on a CPU)."""
    if cfg.refiner is None or hop <= 1:
        return (1,)
    return (1, hop) if resolve_backend(cfg.backend) in _BATCHING_BACKENDS else (1,)


def time_refiner(ref: Refiner, n_sources: int, hop: int, budget_s: float = 0.5
                 ) -> tuple[float, float]:
    """Seconds per volume of ``ref`` at batch 1, and per volume in batches of ``hop``
    (where the engine prepared that size; else the batch-1 figure). Medians of a few calls
    on random source vectors (at least 3, about ``budget_s`` seconds each)."""
    rng = np.random.default_rng(0)
    src = rng.standard_normal((hop, n_sources, 3)).astype(np.float32)

    def median_time(x: NDArray) -> float:
        ref(x)  # warm-up (lazy initialisation, caches)
        times: list[float] = []
        t_end = time.perf_counter() + budget_s
        while len(times) < 3 or (time.perf_counter() < t_end and len(times) < 50):
            t0 = time.perf_counter()
            ref(x)
            times.append(time.perf_counter() - t0)
        return float(np.median(times))

    t1 = median_time(src[:1])
    sizes = getattr(ref.engine, "batch_sizes", (1,))
    t_hop = median_time(src) / hop if hop > 1 and hop in sizes else t1
    return t1, t_hop


def choose_decimation(ref: Refiner, n_sources: int, sfreq: float, hop: int,
                      setting: int | str) -> tuple[int, str, float]:
    """How many input samples per refined sample the live pipeline can afford.

    ``setting = "auto"`` times the engine and takes 1 when refining every sample needs at
    most :data:`REFINE_BUDGET` of real time, otherwise the smallest divisor of the hop (the
    hop's kept samples refined as one batch) or multiple of the hop (at most one sample per
    hop) that fits the budget; an integer forces it.

    Returns
    -------
    decimate : int
    note : str
        A sentence explaining the choice (for provenance and the ``decimation`` event).
    seconds_per_volume : float
        Measured refinement time per volume at batch 1.
    """
    t1, t_hop = time_refiner(ref, n_sources, hop)
    per_sample = min(t1, t_hop)  # batches of a hop amortise where the engine has them
    load = sfreq * per_sample  # fraction of real time that refining every sample takes

    def cost(n: int) -> float:  # fraction of real time with decimation n
        if n >= hop:
            return sfreq / n * t1  # at most one sample per hop: batch 1
        b = -(-hop // n)  # samples per hop: one batch, padded to a hop if cheaper
        return sfreq / hop * min(b * t1, hop * t_hop)

    divisors = [n for n in range(1, hop) if hop % n == 0]
    need = next((n for n in divisors if cost(n) <= REFINE_BUDGET), None)
    if need is None:
        need = hop * max(1, math.ceil(sfreq * t1 / (REFINE_BUDGET * hop)))
    timing = (f"refinement takes {t1 * 1e3:.2f} ms per volume at batch 1"
              + (f" ({t_hop * 1e3:.2f} ms per volume in batches of {hop})" if t_hop < t1
                 else "") + f" on {ref.backend}")
    if setting == "auto":
        n = need
        note = (f"refine.decimate = auto: {timing}; refining every sample would take "
                f"{load:.0%} of real time, so "
                + ("every sample is refined." if need == 1 else
                   f"one of every {need} samples is refined and published "
                   f"({sfreq / need:g} Hz; refinement then takes about "
                   f"{cost(need):.0%} of real time, at most {REFINE_BUDGET:.0%})."))
    else:
        n = int(setting)
        keeps_up = sfreq * (per_sample if n == 1 else t1) / n <= 1.0
        note = (f"refine.decimate = {n}: {timing}; publishing {sfreq / n:g} Hz"
                + ("." if keeps_up else
                   f". This cannot keep up with {sfreq:g} Hz input (it needs decimate >= "
                   f"{need} to stay within half of real time): expect to fall behind."))
    logger.info("%s", note)
    return n, note, t1
