"""Per-sample map metrics: NEMD, NMSE, weighted cosine error, localisation error, AUC.

Metrics (per sample; ``x`` the true and ``x̂`` the estimated source vectors, shape
(n_sources, 3), on the source grid; positions in millimetres):

- **NEMD**: exact earth mover's distance between the normalised magnitude maps
  p = ‖x_i‖ / Σ‖x‖ and p̂, with Euclidean ground cost (mm), divided by the EMD between a
  uniform map and p. 0 is perfect; 1 is no better than a flat map. Solved exactly by network
  simplex (POT's ``ot.emd2``) on the support of the difference p̂ − p: for a metric ground
  cost, shared mass moves for free, so EMD(p̂, p) = EMD((p̂ − p)⁺, (p̂ − p)⁻), a smaller
  problem with the same optimum.
- **NMSE**: mean((x − αx̂)²) / mean(x²) with α the least-squares scale, because dSPM and
  sLORETA are not in current units (0 is perfect, 1 is no better than zero).
- **1 − weighted cosine**: 1 − Σ w_i cos∠(x̂_i, x_i) with w_i = ‖x_i‖ / Σ‖x‖ (orientation
  error; 0 perfect, 2 opposite).
- **MLE** (mm): mean localisation error between local maxima. Local maxima of ‖x‖ and ‖x̂‖
  over the 26-neighbourhood of the grid lattice that reach ``rel_threshold`` of the map's
  maximum; the K strongest estimated maxima (K = number of true maxima) are paired with the
  true ones by a minimum-distance assignment; a true maximum left without a partner counts
  its distance to the nearest estimated maximum.
- **AUC**: sources with ‖x_i‖ ≥ ``active_threshold``·max are active; the others inactive,
  split into *close* (within ``close_mm`` of an active source) and *far*. The AUC of ‖x̂‖
  for active vs close and active vs far (Mann–Whitney), averaged.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import cdist
from scipy.stats import rankdata

from .._util import optional_import

__all__ = [
    "LOWER_IS_BETTER", "METRICS", "METRIC_LABELS", "auc_close_far", "emd", "grid_neighbours",
    "local_maxima", "localisation_error", "nemd", "nmse", "sample_metrics",
    "weighted_cosine_error",
]

METRICS = ("nemd", "mle_mm", "auc", "nmse", "wcos_err")
METRIC_LABELS = {"nemd": "NEMD", "mle_mm": "MLE (mm)", "auc": "AUC", "nmse": "NMSE",
                 "wcos_err": "1 − wcos"}
LOWER_IS_BETTER = {"nemd": True, "mle_mm": True, "auc": False, "nmse": True, "wcos_err": True}


def _mag(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, float)
    return np.linalg.norm(x, axis=-1) if x.ndim == 2 else np.abs(x)


def _ot():
    return optional_import("ot", "train", "The exact earth mover's distance (NEMD)")


def emd(p: np.ndarray, q: np.ndarray, pos_mm: np.ndarray) -> float:
    """Exact earth mover's distance between two distributions on the same points.

    Parameters
    ----------
    p, q : (n,) non-negative masses (normalised to sum 1 here).
    pos_mm : (n, 3) positions in millimetres (Euclidean ground cost).

    Returns
    -------
    float, EMD in millimetres.
    """
    p = np.asarray(p, float)
    q = np.asarray(q, float)
    if p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("emd: both maps need positive total mass.")
    d = p / p.sum() - q / q.sum()
    tol = 1e-12
    pos_i = np.flatnonzero(d > tol)
    neg_i = np.flatnonzero(d < -tol)
    if pos_i.size == 0 or neg_i.size == 0:
        return 0.0
    a = d[pos_i]
    b = -d[neg_i]
    moved = 0.5 * (a.sum() + b.sum())
    M = cdist(pos_mm[pos_i], pos_mm[neg_i])
    ot = _ot()
    value = ot.emd2(a / a.sum(), b / b.sum(), M, numItermax=50_000_000)
    return float(value) * moved


def nemd(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
         emd_uniform: float | None = None) -> float:
    """EMD(p̂, p) / EMD(uniform, p) for magnitude maps (see module docstring).

    Parameters
    ----------
    x, x_hat : (n, 3) or (n,) true and estimated sources.
    pos_mm : (n, 3) positions (mm).
    emd_uniform : precomputed EMD(uniform, p) (saves time over several estimates).
    """
    p, q = _mag(x), _mag(x_hat)
    if q.sum() <= 0:
        return float("nan")
    if emd_uniform is None:
        emd_uniform = emd(np.ones_like(p), p, pos_mm)
    return emd(q, p, pos_mm) / emd_uniform


def nmse(x: np.ndarray, x_hat: np.ndarray) -> float:
    """mean((x − αx̂)²) / mean(x²) with the least-squares scale α ≥ 0 (scale-free)."""
    x = np.asarray(x, float).ravel()
    y = np.asarray(x_hat, float).ravel()
    yy = y @ y
    alpha = max(0.0, (x @ y) / yy) if yy > 0 else 0.0
    return float(np.mean((x - alpha * y) ** 2) / np.mean(x**2))


def weighted_cosine_error(x: np.ndarray, x_hat: np.ndarray) -> float:
    """1 − Σ w_i cos∠(x̂_i, x_i) with w_i = ‖x_i‖ / Σ‖x‖; x, x̂ of shape (n, 3)."""
    x = np.asarray(x, float)
    y = np.asarray(x_hat, float)
    nx, ny = np.linalg.norm(x, axis=1), np.linalg.norm(y, axis=1)
    cos = np.where((nx > 0) & (ny > 0), (x * y).sum(1) / np.maximum(nx * ny, 1e-300), 0.0)
    return float(1.0 - (nx * cos).sum() / nx.sum())


def grid_neighbours(vox: np.ndarray) -> np.ndarray:
    """26-neighbourhood on the source lattice.

    Parameters
    ----------
    vox : (n, 3) int voxel indices.

    Returns
    -------
    (n, 26) int, index of each neighbour or −1 where the neighbour is not a source point.
    """
    vox = np.asarray(vox, int)
    shape = vox.max(0) + 3
    lut = -np.ones(shape, int)
    lut[tuple((vox + 1).T)] = np.arange(len(vox))
    offs = np.array([(i, j, k) for i in (-1, 0, 1) for j in (-1, 0, 1) for k in (-1, 0, 1)
                     if (i, j, k) != (0, 0, 0)])
    nb = vox[:, None, :] + 1 + offs[None]
    return lut[nb[..., 0], nb[..., 1], nb[..., 2]]


def local_maxima(values: np.ndarray, neighbours: np.ndarray,
                 rel_threshold: float = 0.2) -> np.ndarray:
    """Indices of local maxima, strongest first.

    Parameters
    ----------
    values : (n,) non-negative map.
    neighbours : (n, 26) from :func:`grid_neighbours`.
    rel_threshold : keep maxima ≥ this fraction of the global maximum.
    """
    v = np.asarray(values, float)
    vmax = v.max() if v.size else 0.0
    if vmax <= 0:
        return np.zeros(0, int)
    nbv = np.where(neighbours >= 0, v[np.maximum(neighbours, 0)], -np.inf)
    is_max = (v >= nbv.max(1)) & (v >= rel_threshold * vmax)
    idx = np.flatnonzero(is_max)
    # plateaus: keep one point per connected tie (the first in index order)
    keep = []
    taken = np.zeros(len(v), bool)
    for i in idx[np.argsort(-v[idx], kind="stable")]:
        if taken[i]:
            continue
        keep.append(i)
        nb = neighbours[i][neighbours[i] >= 0]
        taken[nb[v[nb] == v[i]]] = True
    return np.array(keep, int)


def localisation_error(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
                       neighbours: np.ndarray, rel_threshold: float = 0.2) -> float:
    """Mean localisation error (mm) between local maxima (see module docstring)."""
    true_max = local_maxima(_mag(x), neighbours, rel_threshold)
    est_max = local_maxima(_mag(x_hat), neighbours, rel_threshold)
    if true_max.size == 0 or est_max.size == 0:
        return float("nan")
    est_top = est_max[: true_max.size]
    D = cdist(pos_mm[true_max], pos_mm[est_top])
    rows, cols = linear_sum_assignment(D)
    err = np.empty(true_max.size)
    err[:] = np.nan
    err[rows] = D[rows, cols]
    left = np.isnan(err)
    if left.any():
        err[left] = cdist(pos_mm[true_max[left]], pos_mm[est_max]).min(1)
    return float(err.mean())


def _auc(pos_scores: np.ndarray, neg_scores: np.ndarray) -> float:
    n1, n0 = len(pos_scores), len(neg_scores)
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(np.r_[pos_scores, neg_scores])
    return float((ranks[:n1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def auc_close_far(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
                  active_threshold: float = 0.25, close_mm: float = 20.0) -> float:
    """Mean of the AUCs active-vs-close and active-vs-far (see module docstring)."""
    m, s = _mag(x), _mag(x_hat)
    active = m >= active_threshold * m.max()
    if not active.any() or active.all():
        return float("nan")
    d = cdist(pos_mm[~active], pos_mm[active]).min(1)
    inactive = np.flatnonzero(~active)
    close, far = inactive[d <= close_mm], inactive[d > close_mm]
    vals = [_auc(s[active], s[g]) for g in (close, far) if g.size]
    return float(np.mean(vals))


def sample_metrics(x: np.ndarray, x_hat: np.ndarray, pos_mm: np.ndarray,
                   neighbours: np.ndarray, emd_uniform: float | None = None
                   ) -> dict[str, float]:
    """All metrics for one sample: nemd, mle_mm, auc, nmse, wcos_err."""
    return {
        "nemd": nemd(x, x_hat, pos_mm, emd_uniform),
        "mle_mm": localisation_error(x, x_hat, pos_mm, neighbours),
        "auc": auc_close_far(x, x_hat, pos_mm),
        "nmse": nmse(x, x_hat),
        "wcos_err": weighted_cosine_error(x, x_hat),
    }
