"""BEM surfaces built from the fsaverage files that MNE ships (no downloads).

MNE ships the fsaverage scalp (``fsaverage-head.fif``) and inner skull
(``fsaverage-inner_skull-bem.fif``) but no outer skull. All three surfaces are rebuilt
here on one icosahedral topology by casting rays from the inner skull's centroid: the
radius of each surface along each icosphere direction. The outer skull is the inner skull
pushed outwards along the same rays by min(5 mm, half the gap to the scalp), which keeps
the three surfaces strictly nested (FACTS.md: moving along normals did not).
"""

from __future__ import annotations

from pathlib import Path

import mne
import numpy as np

FSAVERAGE_DIR = Path(mne.__file__).parent / "data" / "fsaverage"
TRANS_FILE = FSAVERAGE_DIR / "fsaverage-trans.fif"
FIDUCIALS_FILE = FSAVERAGE_DIR / "fsaverage-fiducials.fif"


def icosphere(grade: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit icosphere subdivided ``grade`` times.

    Returns
    -------
    rr : (n_vertices, 3) float, unit vectors (10 * 4**grade + 2 vertices).
    tris : (n_triangles, 3) int, outward-oriented (counter-clockwise seen from outside).
    """
    t = (1.0 + 5**0.5) / 2.0
    rr = np.array(
        [[-1, t, 0], [1, t, 0], [-1, -t, 0], [1, -t, 0], [0, -1, t], [0, 1, t],
         [0, -1, -t], [0, 1, -t], [t, 0, -1], [t, 0, 1], [-t, 0, -1], [-t, 0, 1]], float)
    tris = np.array(
        [[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4],
         [11, 10, 2], [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8],
         [3, 8, 9], [4, 9, 5], [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]], int)
    rr /= np.linalg.norm(rr, axis=1, keepdims=True)
    for _ in range(grade):
        edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
        uniq, inverse = np.unique(edges, axis=0, return_inverse=True)
        mid = rr[uniq[:, 0]] + rr[uniq[:, 1]]
        mid /= np.linalg.norm(mid, axis=1, keepdims=True)
        m = inverse.reshape(3, -1) + len(rr)  # midpoints of edges 01, 12, 20
        a, b, c = tris.T
        tris = np.concatenate([
            np.stack([a, m[0], m[2]], 1), np.stack([b, m[1], m[0]], 1),
            np.stack([c, m[2], m[1]], 1), np.stack([m[0], m[1], m[2]], 1)])
        rr = np.concatenate([rr, mid])
    return rr, tris


def ray_radii(origin: np.ndarray, directions: np.ndarray, rr: np.ndarray,
              tris: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Distance from ``origin`` along each unit direction to the farthest hit of a mesh.

    Vectorised Möller–Trumbore intersection. Raises if a ray misses the surface (the
    surface must enclose ``origin``).
    """
    v0, v1, v2 = rr[tris[:, 0]], rr[tris[:, 1]], rr[tris[:, 2]]
    e1, e2 = v1 - v0, v2 - v0
    s = origin - v0
    out = np.full(len(directions), -np.inf)
    for start in range(0, len(directions), chunk):
        d = directions[start:start + chunk, None, :]  # (c, 1, 3)
        p = np.cross(d, e2[None])  # (c, t, 3)
        det = np.einsum("ctk,tk->ct", p, e1)
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / det
            u = np.einsum("ctk,tk->ct", p, s) * inv
            q = np.cross(s, e1)  # (t, 3)
            v = np.einsum("ck,tk->ct", d[:, 0], q) * inv
            dist = np.einsum("tk,tk->t", e2, q)[None] * inv
        ok = (np.abs(det) > 1e-14) & (u >= -1e-9) & (v >= -1e-9) & (u + v <= 1 + 1e-9) & (dist > 0)
        out[start:start + chunk] = np.where(ok, dist, -np.inf).max(axis=1)
    if not np.all(np.isfinite(out)):
        raise RuntimeError("A ray from the surface centroid missed the surface; it is not closed.")
    return out


def template_surfaces(grade: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Inner skull, outer skull and scalp of fsaverage on a shared icosphere of ``grade``.

    Returns a dict ``{"inner_skull", "outer_skull", "outer_skin"}`` of (rr in metres,
    MRI/MNI305 frame; tris).
    """
    inner = mne.read_bem_surfaces(FSAVERAGE_DIR / "fsaverage-inner_skull-bem.fif", verbose=False)[0]
    head = mne.read_bem_surfaces(FSAVERAGE_DIR / "fsaverage-head.fif", verbose=False)[0]
    origin = inner["rr"].mean(axis=0)
    dirs, tris = icosphere(grade)
    r_in = ray_radii(origin, dirs, inner["rr"], inner["tris"])
    r_skin = ray_radii(origin, dirs, head["rr"], head["tris"])
    gap = r_skin - r_in
    if np.any(gap <= 0.002):
        raise RuntimeError("fsaverage scalp and inner skull are closer than 2 mm somewhere.")
    r_out = r_in + np.minimum(0.005, gap / 2.0)
    surfs = {}
    for name, radius in (("inner_skull", r_in), ("outer_skull", r_out), ("outer_skin", r_skin)):
        surfs[name] = (origin + dirs * radius[:, None], tris.copy())
    return surfs


def full_inner_skull() -> tuple[np.ndarray, np.ndarray]:
    """The full-resolution fsaverage inner skull (rr in metres, MRI frame; tris)."""
    inner = mne.read_bem_surfaces(FSAVERAGE_DIR / "fsaverage-inner_skull-bem.fif", verbose=False)[0]
    return inner["rr"], inner["tris"]
