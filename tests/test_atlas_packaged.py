"""The default atlas (BN246) ships inside rtsource: exact files, loaded without atlaspy,
identical to atlaspy 0.0.8's copy, and included in the wheel."""

from __future__ import annotations

import hashlib
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from rtsource.regions import atlases, load_atlas

REPO = Path(__file__).resolve().parents[1]
#: Recorded here independently of the code: the SHA-256 of bna.nii.gz and bna.csv in the
#: atlaspy 0.0.8 wheel (its RECORD lists DZDQhJUr... and YMa5zWjJ..., base64 of these).
RECORDED = {
    "bna.nii.gz": "0d90d084952bdbddf417abb457f4eec016cbb95dfd53a4801713806da5646ba3",
    "bna.csv": "60c6b9cd68c983e6eb2d494d0dd4f5c1351f8b8c8a4c67d372063b402de40818",
}


def test_packaged_files_match_the_recorded_sha256():
    folder = REPO / "rtsource" / "data" / "atlases" / "bn246"
    assert atlases.BN246_DIR == folder
    for fname, want in RECORDED.items():
        assert hashlib.sha256((folder / fname).read_bytes()).hexdigest() == want, fname
    assert atlases.BN246_SHA256 == RECORDED
    notice = (folder / "NOTICE.md").read_text()
    assert "Fan" in notice and "Cerebral Cortex" in notice and "atlas.brainnetome.org" in notice


def test_bn246_loads_from_the_package():
    at = load_atlas("bn246")
    assert at.labels.shape == (182, 218, 182)
    np.testing.assert_array_equal(at.indices, np.arange(1, 247))
    assert len(at.names) == len(set(at.names)) == 246
    assert at.names[230:246] == [f"Tha_8_{i}_{h}" for i in range(1, 9) for h in "LR"]
    assert set(np.unique(at.labels)) == set(range(247))  # every region has voxels
    # MNI152 1 mm: voxel (90, 126, 72) is the origin
    np.testing.assert_allclose(at.affine @ [90, 126, 72, 1], [0, 0, 0, 1])
    assert "0d90d084" in at.version and "Fan" in at.version


def test_a_modified_atlas_file_is_refused(tmp_path, monkeypatch):
    for fname in RECORDED:
        shutil.copy(atlases.BN246_DIR / fname, tmp_path / fname)
    monkeypatch.setattr(atlases, "BN246_DIR", tmp_path)
    assert load_atlas("bn246").labels.shape == (182, 218, 182)  # the copies are fine
    with open(tmp_path / "bna.csv", "a", encoding="utf-8") as f:
        f.write("\nExtra_region,247")
    with pytest.raises(ValueError, match=r"bna\.csv.*SHA-256 .*expected 60c6b9cd"):
        load_atlas("bn246")
    (tmp_path / "bna.nii.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"bna\.nii\.gz.*reinstall rtsource"):
        load_atlas("bn246")


def test_identical_to_atlaspy_when_installed():
    spec = importlib.util.find_spec("atlaspy")  # located, never imported
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("atlaspy is not installed (the recorded SHA-256 test covers identity)")
    src = Path(list(spec.submodule_search_locations)[0]) / "source_data" / "atlases"
    theirs_img, theirs_csv = src / "niftis" / "bna.nii.gz", src / "luts" / "bna.csv"
    assert theirs_img.read_bytes() == (atlases.BN246_DIR / "bna.nii.gz").read_bytes()
    assert theirs_csv.read_bytes() == (atlases.BN246_DIR / "bna.csv").read_bytes()
    at = load_atlas("bn246")
    img = nib.load(str(theirs_img))
    np.testing.assert_array_equal(at.labels, np.asarray(img.dataobj).astype(np.int32))
    np.testing.assert_array_equal(at.affine, img.affine)
    idx, names = atlases.read_label_table(theirs_csv)
    np.testing.assert_array_equal(at.indices, idx)
    assert at.names == names


@pytest.mark.slow
def test_wheel_contains_the_atlas(tmp_path):
    """Build the wheel from a copy of the sources (no network, no build isolation) and
    look inside: the package-data settings must carry the atlas files."""
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:  # pyproject's build requirement
        pytest.skip(f"setuptools {setuptools.__version__} < 77 cannot build this project "
                    "without build isolation (no network here)")
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "constraints.txt"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "rtsource", src / "rtsource",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    out = tmp_path / "wheel"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
         "--no-index", "--disable-pip-version-check", "-w", str(out), str(src)],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    (whl,) = out.glob("rtsource-*.whl")
    with zipfile.ZipFile(whl) as z:
        names = set(z.namelist())
        for fname, want in RECORDED.items():
            member = f"rtsource/data/atlases/bn246/{fname}"
            assert member in names
            assert hashlib.sha256(z.read(member)).hexdigest() == want
        assert "rtsource/data/atlases/bn246/NOTICE.md" in names
