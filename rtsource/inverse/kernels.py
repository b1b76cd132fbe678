"""Linear inverse kernels for free-orientation volume sources: eLORETA, MNE, dSPM, sLORETA.

Conventions follow MNE-Python's minimum-norm code so that kernels agree with
``mne.minimum_norm`` on the same forward model, noise covariance and λ²:

* data and gain are average-referenced by the projector P = I − 11ᵀ/n (rank n − 1);
* the whitener is W = (P C P)^{+1/2} for the ad hoc diagonal noise covariance C;
* the source covariance R is scaled so that trace(G_w R G_wᵀ) equals the rank;
* K = R G_wᵀ (G_w R G_wᵀ + λ² I)⁺ W (restricted to the rank), in A·m per volt.

For eLORETA, R holds per-source 3×3 weights fitted by the Pascual-Marqui / Nolte fixed
point iteration (vectorised over sources: every step is a batched 3×3 operation or one
n_channels² matrix product); depth weighting does not apply. For MNE, dSPM and sLORETA, R
is MNE's depth prior (spectral norm, exponent ``depth``, limit 10).
"""

from __future__ import annotations

import numpy as np

from .._util import logger
from ..config import INVERSE_METHODS, check_value


def average_reference_projector(n_channels: int) -> np.ndarray:
    """P = I − 11ᵀ/n, shape (n_channels, n_channels)."""
    return np.eye(n_channels) - np.full((n_channels, n_channels), 1.0 / n_channels)


def whitener(noise_var: np.ndarray) -> tuple[np.ndarray, int]:
    """Whitener (P C P)^{+1/2} for a diagonal noise covariance under average reference.

    Parameters
    ----------
    noise_var : (n_channels,) noise variances in V².

    Returns
    -------
    W : (n_channels, n_channels) symmetric whitener (its null space is the constant vector).
    rank : n_channels − 1.
    """
    n = len(noise_var)
    P = average_reference_projector(n)
    C = P @ np.diag(noise_var) @ P
    s, u = np.linalg.eigh(C)
    order = np.argsort(s)[::-1][: n - 1]
    s, u = s[order], u[:, order]
    return (u / np.sqrt(s)) @ u.T, n - 1


def _sym_inv_sqrt(M: np.ndarray) -> np.ndarray:
    """Batched inverse square root of symmetric positive (…, 3, 3) matrices."""
    s, u = np.linalg.eigh(M)
    s = np.where(s > 0, 1.0 / np.sqrt(np.maximum(s, 1e-300)), 0.0)
    return (u * s[..., None, :]) @ np.swapaxes(u, -1, -2)


def _rg(R: np.ndarray, G3: np.ndarray) -> np.ndarray:
    """R_s G_s for every source: (n_src, 3, 3) or (n_src, 3) times (n_src, 3, n_ch).

    Nine broadcast multiply-adds: numpy's stacked matmul is slow for 3×3 blocks.
    """
    if R.ndim == 2:
        return R[:, :, None] * G3
    out = np.empty_like(G3)
    for i in range(3):
        out[:, i] = (R[:, i, 0, None] * G3[:, 0] + R[:, i, 1, None] * G3[:, 1]
                     + R[:, i, 2, None] * G3[:, 2])
    return out


def _grgt(G3: np.ndarray, R: np.ndarray) -> np.ndarray:
    """G R Gᵀ for G3 (n_src, 3, n_ch) and R (n_src, 3, 3) or (n_src, 3): one GEMM."""
    n_ch = G3.shape[2]
    return G3.reshape(-1, n_ch).T @ _rg(R, G3).reshape(-1, n_ch)


def _normalise(G3: np.ndarray, R: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale R in place so that trace(G R Gᵀ) = rank; return (G R Gᵀ, R)."""
    GRGt = _grgt(G3, R)
    norm = np.trace(GRGt) / rank
    R /= norm
    return GRGt / norm, R


def _top_eig(GRGt: np.ndarray, rank: int) -> tuple[np.ndarray, np.ndarray]:
    s, u = np.linalg.eigh(GRGt)
    s = np.abs(s)
    order = np.argsort(s)[::-1][:rank]
    return s[order], u[:, order]


def eloreta_weights(G3: np.ndarray, lambda2: float, rank: int, max_iter: int = 20,
                    eps: float = 1e-6) -> tuple[np.ndarray, int]:
    """Fit eLORETA's per-source 3×3 weights.

    Parameters
    ----------
    G3 : (n_sources, 3, n_channels) whitened, average-referenced gain.
    lambda2 : regularisation λ².
    rank : rank of the whitened data space (n_channels − 1 under average reference).

    Returns
    -------
    R : (n_sources, 3, 3) weights, normalised so that trace(G R Gᵀ) = rank.
    n_iter : iterations used.
    """
    n_src = G3.shape[0]
    R = np.tile(np.eye(3), (n_src, 1, 1))
    GRGt, R = _normalise(G3, R, rank)
    for it in range(1, max_iter + 1):
        s, u = _top_eig(GRGt, rank)
        N = (u / (s + lambda2)) @ u.T  # (G R Gᵀ + λ²)⁺ on the data space
        GN = (G3.reshape(-1, G3.shape[2]) @ N).reshape(G3.shape)
        M = np.einsum("sic,sjc->sij", GN, G3, optimize=True)  # G_s N G_sᵀ, (n_src, 3, 3)
        R_last = R.copy()
        R = _sym_inv_sqrt(M)
        GRGt, R = _normalise(G3, R, rank)
        delta = np.linalg.norm(R - R_last) / np.linalg.norm(R_last)
        logger.debug("eLORETA iteration %d: relative change %.2e", it, delta)
        if delta < eps:
            return R, it
    logger.warning("eLORETA weights did not converge in %d iterations (tolerance %g).",
                   max_iter, eps)
    return R, max_iter


def depth_prior(gain: np.ndarray, exp: float, limit: float = 10.0) -> np.ndarray:
    """MNE's depth prior (spectral norm of each 3-column block, limited), shape (n_src,)."""
    GtG = np.einsum("csj,csk->sjk", gain, gain)
    d = np.linalg.norm(GtG, ord=2, axis=(1, 2))
    w = 1.0 / d
    ws = np.sort(w)
    lim = ws[-1]
    if ws[-1] > limit**2 * ws[0]:
        lim = ws[np.where(ws > limit**2 * ws[0])[0][0]]
    return np.minimum(w / lim, 1.0) ** exp


def compute_kernel(gain: np.ndarray, noise_var: np.ndarray, method: str, lambda2: float,
                   depth: float | None = 0.8, max_iter: int = 20, eps: float = 1e-6,
                   ) -> tuple[np.ndarray, dict[str, float]]:
    """Compute an inverse kernel.

    Parameters
    ----------
    gain : (n_channels, n_sources, 3) lead field (no reference applied), V/(A·m).
    noise_var : (n_channels,) noise variances (V²) of the diagonal noise covariance.
    method : "eloreta" | "mne" | "dspm" | "sloreta".
    lambda2 : λ².
    depth : depth exponent for mne/dspm/sloreta (None: no depth weighting).

    Returns
    -------
    K : (n_sources, 3, n_channels) float64 kernel applied to raw (unreferenced) data; the
        average reference and whitening are folded in. Units: A·m/V for eloreta/mne,
        dimensionless noise-normalised values for dspm/sloreta.
    info : dict with diagnostics (iterations for eLORETA).
    """
    method = check_value(method.lower(), INVERSE_METHODS, "inverse.method")
    if not lambda2 > 0:
        raise ValueError(f"lambda2 = {lambda2} must be positive (e.g. 1/9).")
    n_ch, n_src, _ = gain.shape
    W, rank = whitener(np.asarray(noise_var, float))
    Gw = np.einsum("ij,jsk->isk", W, gain)  # W P G = W G (W annihilates constants)
    G3 = np.ascontiguousarray(Gw.transpose(1, 2, 0))  # (n_src, 3, n_ch)
    info: dict[str, float] = {"rank": rank}
    if method == "eloreta":
        R, n_iter = eloreta_weights(G3, lambda2, rank, max_iter, eps)
        info["eloreta_iterations"] = n_iter
        GRGt, R = _normalise(G3, R, rank)
        RG = _rg(R, G3)
    else:
        r = np.ones((n_src, 3)) if depth is None else np.repeat(
            depth_prior(gain, depth)[:, None], 3, axis=1)
        GRGt, r = _normalise(G3, r, rank)
        RG = r[:, :, None] * G3
    s, u = _top_eig(GRGt, rank)
    B = (RG.reshape(-1, n_ch) @ u).reshape(n_src, 3, -1)  # R Gᵀ U
    Kw = ((B / (s + lambda2)).reshape(-1, rank) @ u.T).reshape(n_src, 3, n_ch)
    if method in ("dspm", "sloreta"):
        if method == "dspm":
            f = 1.0 / (s + lambda2)
        else:  # MNE: reginv * sqrt(1 + S²/λ²) / S with S² = s
            f = np.sqrt(1.0 + s / lambda2) / (s + lambda2)
        row = np.sum((B * f) ** 2, axis=2)  # (n_src, 3)
        Kw = Kw / np.sqrt(row.sum(axis=1))[:, None, None]
    K = (Kw.reshape(-1, n_ch) @ W).reshape(n_src, 3, n_ch)
    return K, info
