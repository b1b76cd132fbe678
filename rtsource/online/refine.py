"""The refine stage: eLORETA source vectors -> 3D-PIUNet -> refined source vectors.

``Refiner(sources (n_times, n_sources, 3)) -> (n_times, n_sources, 3)``: every sample is
scaled by s = 1/max|z|, scattered into the 3×32³ volume, run through the network on the
chosen engine, gathered back at the grid points and divided by s (FACTS.md, 3D-PIUNet).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .._util import logger
from ..config import RefineConfig
from ..headmodel import HeadModel
from ..models.checkpoint import load_checkpoint
from ..models.volume import VolumeMapper

SHIPPED_CHECKPOINT = Path(__file__).resolve().parents[1] / "data" / "piunet-w8.safetensors"


def checkpoint_path(spec: str) -> Path:
    """Resolve ``"default"`` to the shipped weights, anything else to a path."""
    path = SHIPPED_CHECKPOINT if spec == "default" else Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"3D-PIUNet checkpoint {str(path)!r} does not exist"
            + (" (the package was installed without its weights)." if spec == "default" else
               "; set refine.checkpoint to a file written by 'rtsource train' or 'default'."))
    return path


class Refiner:
    """3D-PIUNet refinement on one engine (a pure stage; precomputes everything).

    Parameters
    ----------
    headmodel : provides the grid <-> volume indices (``vox``) and the grid spacing.
    cfg : checkpoint, backend, decimation.
    batch_sizes : batch sizes the engine prepares (others are split/padded onto them).
    """

    def __init__(self, headmodel: HeadModel, cfg: RefineConfig | None = None,
                 batch_sizes: tuple[int, ...] = (1,)) -> None:
        from ..engines import make_engine

        cfg = cfg or RefineConfig()
        ckpt = load_checkpoint(checkpoint_path(cfg.checkpoint))
        spacing = float(ckpt.header.get("spacing_mm", headmodel.spacing_mm))
        if abs(spacing - headmodel.spacing_mm) > 1e-6:
            raise ValueError(
                f"Checkpoint {ckpt.path.name} was trained on a {spacing:g} mm grid but the "
                f"head model uses {headmodel.spacing_mm:g} mm; set headmodel.spacing_mm = "
                f"{spacing:g} or train a network for this grid.")
        self.checkpoint = ckpt
        self.mapper = VolumeMapper(headmodel.vox)
        t0 = time.perf_counter()
        self.engine = make_engine(ckpt.model, cfg.backend, batch_sizes=batch_sizes)
        logger.info("3D-PIUNet width %d on %s ready in %.1f s", ckpt.width, self.engine.name,
                    time.perf_counter() - t0)
        self.cfg = cfg

    @property
    def backend(self) -> str:
        return self.engine.name

    def __call__(self, sources: np.ndarray) -> np.ndarray:
        """Refine (n_times, n_sources, 3) source vectors; returns the same shape, float32."""
        vol, scale = self.mapper.to_volume(np.ascontiguousarray(sources, np.float32))
        out = self.engine(vol)
        return np.asarray(self.mapper.from_volume(out, scale), np.float32)

    def provenance(self) -> dict[str, str]:
        return {"piunet_weights": self.checkpoint.path.name,
                "piunet_sha256": self.checkpoint.sha256, "piunet_width": str(self.checkpoint.width),
                "piunet_backend": self.engine.name}
