"""The connectome of the brain model: a licence-free default rule, or a user's TVB zip.

Default (:func:`default_connectome`), built from BN246 alone:

* **cortico-cortical**: the exponential distance rule (EDR), w_ij = exp(−λ d_ij) with d_ij
  the distance between region centroids (mm) and λ = 0.18 mm⁻¹, the decay Deco et al.
  (2021, Curr Biol 31:4436, "Rare long-range cortical connections enhance human
  information processing") fitted to human diffusion MRI, after the rule Ercsey-Ravasz
  et al. (2013, Neuron 80:184) measured in macaque tract tracing. Weights below
  ``min_weight`` of the largest are dropped (sparse coupling), then the matrix is scaled
  so that the largest row sum is 1.
* **thalamo-cortical**: ipsilateral projections, both directions, between each thalamic
  nucleus and the cortex its Brainnetome name gives (Fan et al. 2016; see
  :data:`THALAMOCORTICAL_TARGETS`): thalamus -> cortex of weight ``thalamocortical_weight``
  per target region (a relay drives its cortex: 4, a modelling choice tuned so that a
  thalamic volley evokes a cortical response without destabilising the alpha background),
  cortex -> thalamus of ``corticothalamic_weight / n_targets`` (1 in total per nucleus).
* **delays**: d_ij / v with the Euclidean centroid distance and v = 3 m/s (3 mm/ms, The
  Virtual Brain's default conduction speed).

A user's connectome in The Virtual Brain's zip format (``weights.txt``,
``tract_lengths.txt``, ``centres.txt``; :func:`load_tvb_connectome`) is mapped onto the
BN246 nodes by nearest centroid.
"""

from __future__ import annotations

import io
import os
import zipfile
from dataclasses import dataclass

import numpy as np

from ..._util import stable_hash
from .nodes import THALAMIC_NUCLEI, BrainNodes

__all__ = ["EDR_LAMBDA_PER_MM", "THALAMOCORTICAL_TARGETS", "VELOCITY_MM_PER_MS", "Connectome",
           "default_connectome", "load_tvb_connectome", "write_tvb_zip"]

EDR_LAMBDA_PER_MM = 0.18
"""Decay constant λ of the exponential distance rule (mm⁻¹; Deco et al. 2021)."""
VELOCITY_MM_PER_MS = 3.0
"""Conduction velocity (mm/ms = m/s; The Virtual Brain's default ``speed``)."""

#: Thalamic abbreviation -> BN246 cortical gyri (label prefixes) it projects to. rTtha and
#: cTtha share the temporal gyri: rTtha takes those anterior of their median centroid y,
#: cTtha the posterior ones.
THALAMOCORTICAL_TARGETS: dict[str, tuple[str, ...]] = {
    "mPFtha": ("SFG", "OrG", "CG"),
    "lPFtha": ("MFG", "IFG"),
    "mPMtha": ("PrG",),
    "Stha": ("PoG", "PCL"),
    "rTtha": ("STG", "MTG", "ITG", "FuG", "PhG", "pSTS"),
    "cTtha": ("STG", "MTG", "ITG", "FuG", "PhG", "pSTS"),
    "PPtha": ("SPL", "IPL", "PCun"),
    "Otha": ("MVOcC", "LOcC"),
}


@dataclass(frozen=True, eq=False)
class Connectome:
    """Weights and delays between the nodes of a brain model.

    Attributes
    ----------
    weights : array, shape (n_nodes, n_nodes)
        w[i, j] is the strength of the input node i receives from node j (unitless;
        largest row sum 1 for the default).
    lengths_mm : array, shape (n_nodes, n_nodes)
        Path lengths in millimetres.
    velocity : float
        Conduction velocity in mm/ms (= m/s).
    source : str
        How it was made (rule and constants, or the zip file).
    """

    weights: np.ndarray
    lengths_mm: np.ndarray
    velocity: float
    source: str

    @property
    def delays_ms(self) -> np.ndarray:
        """Conduction delays, shape (n_nodes, n_nodes), milliseconds."""
        return self.lengths_mm / self.velocity

    @property
    def hash(self) -> str:
        return stable_hash("connectome", self.weights, self.lengths_mm, self.velocity)


def thalamocortical_pairs(nodes: BrainNodes) -> list[tuple[int, int]]:
    """Ipsilateral (thalamic node, cortical node) pairs given by :data:`THALAMOCORTICAL_TARGETS`."""
    pairs = []
    cortical = np.flatnonzero(nodes.cortical)
    gyrus = np.array([nodes.names[i].split("_")[0] for i in cortical])
    temporal = np.isin(gyrus, THALAMOCORTICAL_TARGETS["rTtha"])
    y_split = np.median(nodes.centroids_mni[cortical[temporal], 1])
    for t in np.flatnonzero(nodes.thalamic):
        abbr = THALAMIC_NUCLEI[nodes.names[t][:-2]][0]
        ok = np.isin(gyrus, THALAMOCORTICAL_TARGETS[abbr])
        ok &= nodes.hemispheres[cortical] == nodes.hemispheres[t]
        if abbr in ("rTtha", "cTtha"):
            y = nodes.centroids_mni[cortical, 1]
            ok &= (y >= y_split) if abbr == "rTtha" else (y < y_split)
        pairs += [(int(t), int(c)) for c in cortical[ok]]
    return pairs


def default_connectome(nodes: BrainNodes, *, edr_lambda: float = EDR_LAMBDA_PER_MM,
                       thalamocortical_weight: float = 4.0,
                       corticothalamic_weight: float = 1.0, min_weight: float = 1e-3,
                       velocity: float = VELOCITY_MM_PER_MS) -> Connectome:
    """The exponential-distance-rule connectome with named thalamo-cortical projections.

    Parameters
    ----------
    nodes : BrainNodes
    edr_lambda : float
        EDR decay constant λ (mm⁻¹).
    thalamocortical_weight : float
        Weight of each thalamus -> cortex projection (per target region).
    corticothalamic_weight : float
        Total weight a thalamic nucleus receives from its cortical targets.
    min_weight : float
        Cortico-cortical weights below this fraction of the largest are set to zero.
    velocity : float
        Conduction velocity (mm/ms).

    Returns
    -------
    Connectome
        Deterministic (no random draws).

    Raises
    ------
    ValueError
        For a non-positive λ, velocity or negative weights.
    """
    for name, value in (("edr_lambda", edr_lambda), ("velocity", velocity)):
        if not value > 0:
            raise ValueError(f"{name} = {value} must be positive (defaults: edr_lambda "
                             f"{EDR_LAMBDA_PER_MM} per mm, velocity {VELOCITY_MM_PER_MS} mm/ms).")
    if min(thalamocortical_weight, corticothalamic_weight) < 0 or not 0 <= min_weight < 1:
        raise ValueError(f"thalamocortical_weight = {thalamocortical_weight} and "
                         f"corticothalamic_weight = {corticothalamic_weight} must be >= 0 and "
                         f"min_weight = {min_weight} in [0, 1).")
    d = nodes.distances_mm()
    cort = nodes.cortical
    w = np.zeros_like(d)
    cc = np.exp(-edr_lambda * d[np.ix_(cort, cort)])
    np.fill_diagonal(cc, 0.0)
    cc[cc < min_weight * cc.max()] = 0.0
    w[np.ix_(cort, cort)] = cc / cc.sum(1).max()
    pairs = thalamocortical_pairs(nodes)
    n_targets = np.bincount([t for t, _ in pairs], minlength=nodes.n_nodes)
    for t, c in pairs:
        w[c, t] = thalamocortical_weight
        w[t, c] = corticothalamic_weight / n_targets[t]
    source = (f"BN246 exponential distance rule, lambda {edr_lambda:g}/mm (Deco et al. 2021), "
              f"min weight {min_weight:g}; thalamo-cortical by nucleus name, "
              f"{thalamocortical_weight:g} per target (cortico-thalamic "
              f"{corticothalamic_weight:g} per nucleus); Euclidean lengths at {velocity:g} m/s")
    return Connectome(weights=w, lengths_mm=d, velocity=float(velocity), source=source)


def _read_matrix(zf: zipfile.ZipFile, stem: str) -> np.ndarray | None:
    for name in zf.namelist():
        base = os.path.basename(name)
        if base in (f"{stem}.txt", f"{stem}.txt.bz2"):
            data = zf.read(name)
            if base.endswith(".bz2"):
                import bz2

                data = bz2.decompress(data)
            return np.loadtxt(io.StringIO(data.decode()))
    return None


def _read_centres(zf: zipfile.ZipFile) -> tuple[list[str], np.ndarray] | None:
    for name in zf.namelist():
        if os.path.basename(name) in ("centres.txt", "centers.txt"):
            labels, pos = [], []
            for line in zf.read(name).decode().splitlines():
                parts = line.split()
                if len(parts) >= 4:
                    labels.append(parts[0])
                    pos.append([float(v) for v in parts[1:4]])
            return labels, np.array(pos)
    return None


def load_tvb_connectome(path: str | os.PathLike, nodes: BrainNodes, *,
                        velocity: float = VELOCITY_MM_PER_MS) -> Connectome:
    """Read a connectome in The Virtual Brain's zip format and map it onto ``nodes``.

    The zip holds ``weights.txt`` (n × n), ``tract_lengths.txt`` (n × n, mm) and
    ``centres.txt`` (one ``label x y z`` line per region, MNI millimetres), as TVB's
    ``Connectivity.from_file`` reads them (also ``.txt.bz2``). Each BN246 node takes the
    TVB region with the nearest centre, m(i); then w[i, j] = W[m(i), m(j)] / k(m(j)), with
    k the number of nodes sharing that TVB region (so a region's output is shared, not
    copied), and the tract length L[m(i), m(j)] (the centroid distance where that is 0).
    TVB's convention is kept: W[i, j] is the input i receives from j.

    Parameters
    ----------
    path : path to the zip file.
    nodes : BrainNodes
    velocity : float
        Conduction velocity (mm/ms).

    Returns
    -------
    Connectome

    Raises
    ------
    ValueError
        When a file is missing or the matrices and centres disagree in size.
    """
    path = os.fspath(path)
    with zipfile.ZipFile(path) as zf:
        W = _read_matrix(zf, "weights")
        L = _read_matrix(zf, "tract_lengths")
        centres = _read_centres(zf)
    missing = [n for n, v in (("weights.txt", W), ("tract_lengths.txt", L),
                              ("centres.txt", centres)) if v is None]
    if missing:
        raise ValueError(f"TVB connectome {path!r} lacks {missing}; a TVB zip holds "
                         "weights.txt, tract_lengths.txt and centres.txt.")
    assert W is not None and L is not None and centres is not None
    labels, pos = centres
    n = len(labels)
    if W.shape != (n, n) or L.shape != (n, n):
        raise ValueError(f"TVB connectome {path!r}: weights {W.shape} and tract_lengths "
                         f"{L.shape} must both be ({n}, {n}) for the {n} centres.")
    d = np.sqrt(((nodes.centroids_mni[:, None] - pos[None]) ** 2).sum(-1))
    m = d.argmin(1)
    share = np.bincount(m, minlength=n)
    w = W[np.ix_(m, m)] / share[m][None, :]
    same = m[:, None] == m[None, :]
    w[same] = 0.0
    lengths = L[np.ix_(m, m)].astype(float)
    direct = nodes.distances_mm()
    lengths = np.where(lengths > 0, lengths, direct)
    return Connectome(weights=w, lengths_mm=lengths, velocity=float(velocity),
                      source=f"TVB zip {os.path.basename(path)} ({n} regions) mapped onto "
                             f"BN246 by nearest centroid; {velocity:g} m/s")


def write_tvb_zip(path: str | os.PathLike, weights: np.ndarray, lengths_mm: np.ndarray,
                  labels: list[str], centres_mm: np.ndarray) -> None:
    """Write a connectome in The Virtual Brain's zip format (weights, tract lengths, centres).

    Parameters
    ----------
    weights, lengths_mm : arrays, shape (n, n)
    labels : n region labels (no spaces)
    centres_mm : array, shape (n, 3), MNI millimetres
    """
    buf_w, buf_l = io.StringIO(), io.StringIO()
    np.savetxt(buf_w, weights)
    np.savetxt(buf_l, lengths_mm)
    lines = [f"{lab} {x:.3f} {y:.3f} {z:.3f}" for lab, (x, y, z) in zip(labels, centres_mm,
                                                                          strict=True)]
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("weights.txt", buf_w.getvalue())
        zf.writestr("tract_lengths.txt", buf_l.getvalue())
        zf.writestr("centres.txt", "\n".join(lines) + "\n")
