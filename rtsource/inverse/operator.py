"""Cached inverse operators and the allocation-free apply step."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass, field

import numpy as np

from .._util import load_or_build, logger, stable_hash
from ..config import InverseConfig
from ..headmodel import HeadModel
from .kernels import compute_kernel

CACHE_VERSION = 1


@dataclass(eq=False)
class InverseOperator:
    """A precomputed linear inverse for one head model, channel set and method.

    Attributes
    ----------
    kernel : (n_sources, 3, n_channels) float32; average reference and whitening folded in.
    ch_names : channel order the kernel expects.
    method, lambda2 : as configured.
    headmodel_hash : hash of the head model it was computed from.
    meta : provenance (method, λ², noise, iterations, build time, ...).
    """

    kernel: np.ndarray
    ch_names: list[str]
    method: str
    lambda2: float
    headmodel_hash: str
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n_src, _, n_ch = self.kernel.shape
        # (n_channels, 3 n_sources) so that samples (n_times, n_channels) @ kt is one GEMM
        # whose output is already laid out as (n_times, n_sources, 3).
        self._kt = np.ascontiguousarray(self.kernel.reshape(n_src * 3, n_ch).T, np.float32)

    @property
    def n_sources(self) -> int:
        return self.kernel.shape[0]

    @property
    def n_channels(self) -> int:
        return self.kernel.shape[2]

    @property
    def hash(self) -> str:
        return self.meta.get("hash", "")

    def _check(self, samples: np.ndarray) -> None:
        if samples.ndim != 2 or samples.shape[1] != self.n_channels:
            raise ValueError(
                f"Expected samples of shape (n_times, {self.n_channels}) (time by channel, "
                f"channels in the kernel's order); got {samples.shape}."
            )

    def apply_samples(self, samples: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Source vectors for a window given time by channel (as pulled from LSL).

        Parameters
        ----------
        samples : (n_times, n_channels) float32 volts.
        out : optional (n_times, n_sources, 3) float32 buffer (no allocation when given).

        Returns
        -------
        (n_times, n_sources, 3) float32 current density vectors (A·m for eloreta/mne).
        """
        self._check(samples)
        n_t = samples.shape[0]
        if out is None:
            out = np.empty((n_t, self.n_sources, 3), np.float32)
        np.matmul(samples, self._kt, out=out.reshape(n_t, -1))
        return out

    def apply(self, data: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Source vectors for a window given channel by time (MNE's layout).

        data : (n_channels, n_times); returns (n_times, n_sources, 3).
        """
        if data.ndim != 2 or data.shape[0] != self.n_channels:
            raise ValueError(
                f"Expected data of shape ({self.n_channels}, n_times) (channel by time); "
                f"got {data.shape}."
            )
        return self.apply_samples(data.T, out=out)


def make_inverse(headmodel: HeadModel, cfg: InverseConfig | None = None, *,
                 force: bool = False) -> InverseOperator:
    """Compute the inverse kernel for ``headmodel`` or load it from the cache.

    The cache key covers the head model's hash (which covers its channels) and every
    inverse setting, so a kernel for another channel subset or λ² is built separately.
    """
    cfg = cfg or InverseConfig()
    # the kernel's settings (how the live path applies it does not change the kernel)
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "fused"}
    key = stable_hash("inverse", CACHE_VERSION, headmodel.hash, headmodel.ch_names, settings)

    def build() -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        noise_var = np.full(headmodel.n_channels, (cfg.noise_std_uv * 1e-6) ** 2)
        K, info = compute_kernel(headmodel.gain, noise_var, cfg.method, cfg.lambda2,
                                 depth=cfg.depth, max_iter=cfg.eloreta_max_iter,
                                 eps=cfg.eloreta_eps)
        meta = {"method": cfg.method, "lambda2": f"{cfg.lambda2:g}",
                "noise_cov": f"ad hoc diagonal, {cfg.noise_std_uv:g} uV",
                "depth": "none" if cfg.depth is None or cfg.method == "eloreta"
                else f"{cfg.depth:g}",
                "reference": "average (projector folded into the kernel)",
                "build_s": f"{time.perf_counter() - t0:.2f}", "headmodel": headmodel.hash,
                **{k: str(v) for k, v in info.items()}}
        logger.info("Inverse kernel (%s, %d channels x %d sources) built in %.1f s",
                    cfg.method, headmodel.n_channels, headmodel.n_sources,
                    time.perf_counter() - t0)
        return {"kernel": K.astype(np.float32), "ch_names": np.array(headmodel.ch_names),
                "meta": np.array(json.dumps(meta))}

    arrays = load_or_build("inverse", key, build, force=force)
    meta = json.loads(str(arrays["meta"]))
    meta["hash"] = key
    return InverseOperator(kernel=arrays["kernel"], ch_names=[str(c) for c in arrays["ch_names"]],
                           method=cfg.method, lambda2=cfg.lambda2,
                           headmodel_hash=headmodel.hash, meta=meta)
