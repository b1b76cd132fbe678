"""The nodes of the brain model: BN246's 210 cortical regions and 16 thalamic nuclei.

Nodes are Brainnetome (BN246) regions, read from the atlas volume rtsource ships with
(:func:`rtsource.regions.load_atlas`, MNI152 1 mm). Centroids are the mean MNI152 position
of each region's voxels. The 20 other subcortical regions (amygdala, hippocampus, basal
ganglia) are optional nodes (``subcortical=True``).

The thalamic subregions carry the names of Fan et al. (2016, Cereb Cortex 26:3508,
"The Human Brainnetome Atlas", Table 1): ``Tha_8_1`` … ``Tha_8_8`` are mPFtha, mPMtha,
Stha, rTtha, PPtha, Otha, cTtha, lPFtha (medial prefrontal, premotor, sensory, rostral
temporal, posterior parietal, occipital, caudal temporal, lateral prefrontal thalamus),
named after the cortex each connects with.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ...regions import load_atlas
from ...regions.atlases import Atlas

__all__ = ["THALAMIC_NUCLEI", "BrainNodes", "brain_nodes"]

#: BN246 thalamic subregion stem -> (abbreviation, description) (Fan et al. 2016, Table 1).
THALAMIC_NUCLEI: dict[str, tuple[str, str]] = {
    "Tha_8_1": ("mPFtha", "medial pre-frontal thalamus"),
    "Tha_8_2": ("mPMtha", "pre-motor thalamus"),
    "Tha_8_3": ("Stha", "sensory thalamus"),
    "Tha_8_4": ("rTtha", "rostral temporal thalamus"),
    "Tha_8_5": ("PPtha", "posterior parietal thalamus"),
    "Tha_8_6": ("Otha", "occipital thalamus"),
    "Tha_8_7": ("cTtha", "caudal temporal thalamus"),
    "Tha_8_8": ("lPFtha", "lateral pre-frontal thalamus"),
}
_OTHER_SUBCORTICAL = ("Amyg_", "Hipp_", "BG_")


@dataclass(frozen=True, eq=False)
class BrainNodes:
    """Regions of the brain model, in model order (cortical, thalamic, then optional others).

    Attributes
    ----------
    names : list of str
        BN246 labels (e.g. ``SFG_7_1_L``, ``Tha_8_3_R``).
    kinds : array of str, shape (n_nodes,)
        ``"cortical"``, ``"thalamic"`` or ``"subcortical"``.
    hemispheres : array of str, shape (n_nodes,)
        ``"L"`` or ``"R"``.
    centroids_mni : array, shape (n_nodes, 3)
        Mean voxel position per region, MNI152 millimetres.
    n_voxels : array of int, shape (n_nodes,)
        Region volume in 1 mm³ voxels.
    atlas : str
        Atlas name and version.
    """

    names: list[str]
    kinds: np.ndarray
    hemispheres: np.ndarray
    centroids_mni: np.ndarray
    n_voxels: np.ndarray
    atlas: str

    @property
    def n_nodes(self) -> int:
        return len(self.names)

    @property
    def cortical(self) -> np.ndarray:
        """Boolean mask of cortical nodes, shape (n_nodes,)."""
        return self.kinds == "cortical"

    @property
    def thalamic(self) -> np.ndarray:
        """Boolean mask of thalamic nodes, shape (n_nodes,)."""
        return self.kinds == "thalamic"

    def index(self, name: str) -> int:
        """Position of region ``name`` (a BN246 label, or a thalamic abbreviation with a
        hemisphere such as ``"Stha_L"``).

        Raises
        ------
        ValueError
            Naming close matches when ``name`` is not a node.
        """
        key = resolve_name(name)
        try:
            return self.names.index(key)
        except ValueError:
            from ..._util import close_matches

            raise ValueError(
                f"Region {name!r} is not a node of the brain model ({self.n_nodes} BN246 "
                f"regions).{close_matches(name, self.names)} Thalamic nuclei may also be "
                f"named by abbreviation and side, e.g. 'Stha_L' or 'Otha_R'."
            ) from None

    def description(self, name: str) -> str:
        """Thalamic abbreviation (e.g. ``"Stha"``) of a thalamic node; else its label."""
        stem = name[:-2]
        return THALAMIC_NUCLEI[stem][0] if stem in THALAMIC_NUCLEI else name

    def distances_mm(self) -> np.ndarray:
        """Euclidean distances between centroids, shape (n_nodes, n_nodes), millimetres."""
        d = self.centroids_mni[:, None, :] - self.centroids_mni[None, :, :]
        return np.sqrt((d**2).sum(-1))


def resolve_name(name: str) -> str:
    """``"Stha_L"`` -> ``"Tha_8_3_L"``; BN246 labels pass through."""
    for stem, (abbr, _) in THALAMIC_NUCLEI.items():
        for side in ("L", "R"):
            if name.lower() == f"{abbr}_{side}".lower():
                return f"{stem}_{side}"
    return name


def _kind(name: str) -> str:
    if name.startswith("Tha_"):
        return "thalamic"
    if name.startswith(_OTHER_SUBCORTICAL):
        return "subcortical"
    return "cortical"


@lru_cache(maxsize=4)
def _atlas_table(spec: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    at: Atlas = load_atlas(spec)
    vox = np.argwhere(at.labels > 0)
    lab = at.labels[vox[:, 0], vox[:, 1], vox[:, 2]]
    mm = vox @ at.affine[:3, :3].T + at.affine[:3, 3]
    top = int(max(lab.max(), at.indices.max())) + 1
    counts = np.bincount(lab, minlength=top)
    sums = np.stack([np.bincount(lab, weights=mm[:, k], minlength=top) for k in range(3)], 1)
    cent = sums[at.indices] / np.maximum(counts[at.indices], 1)[:, None]
    return list(at.names), cent, counts[at.indices]


def brain_nodes(subcortical: bool = False) -> BrainNodes:
    """The BN246 nodes of the brain model.

    Parameters
    ----------
    subcortical : bool
        Add the 20 other subcortical regions (amygdala, hippocampus, basal ganglia) as
        nodes, after the 210 cortical regions and 16 thalamic nuclei.

    Returns
    -------
    BrainNodes
        226 nodes (246 with ``subcortical``).

    Raises
    ------
    ImportError
        When the BN246 files are not installed (see :func:`rtsource.regions.load_atlas`).
    """
    names, cent, counts = _atlas_table("bn246")
    kinds = np.array([_kind(n) for n in names])
    present = counts > 0
    order = [i for k in ("cortical", "thalamic") for i in np.flatnonzero((kinds == k) & present)]
    if subcortical:
        order += list(np.flatnonzero((kinds == "subcortical") & present))
    order_a = np.array(order)
    sel = [names[i] for i in order_a]
    return BrainNodes(
        names=sel,
        kinds=kinds[order_a],
        hemispheres=np.array([n[-1] for n in sel]),
        centroids_mni=cent[order_a],
        n_voxels=counts[order_a].astype(int),
        atlas=load_atlas("bn246").version,
    )
