"""Atlas regions: BN246 default, partial volume, nothing dropped silently."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from rtsource.regions import RegionReducer, load_atlas, region_map


def test_bn246_has_246_regions_with_16_thalamic(sphere_model):
    rm = region_map(sphere_model, "bn246")
    assert rm.n_regions == 246
    thal = [n for n in rm.names if n.startswith("Tha_")]
    assert len(thal) == 16
    np.testing.assert_allclose(rm.weights.sum(axis=1), 1.0, rtol=1e-5)
    assert rm.unresolved == [] and rm.missing == []
    # thalamic regions sit near the midline, deep: |x| < 25 mm, -35 < y < 5, -5 < z < 25
    c = rm.centroids_mni[[rm.names.index(n) for n in thal]]
    assert np.all(np.abs(c[:, 0]) < 25) and np.all((c[:, 1] > -35) & (c[:, 1] < 5))


@pytest.mark.parametrize("atlas,n", [("aal3", 166), ("hcpex", 426)])
def test_other_bundled_atlases(sphere_model, atlas, n, caplog):
    rm = region_map(sphere_model, atlas)
    assert rm.n_regions == n
    if atlas == "aal3":  # four AAL3 labels have no voxels: reported, not silently dropped
        assert len(rm.missing) == 4
        assert any("absent from its volume" in r.getMessage() for r in caplog.records)


def test_unknown_atlas_suggests():
    with pytest.raises(ValueError, match="bn246"):
        load_atlas("bn264")


def test_user_atlas_and_unresolved_region(sphere_model, tmp_path, caplog):
    """A user NIfTI + label table; a region no grid cell reaches is reported by name."""
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    affine[:3, 3] = [-90, -126, -72]
    labels = np.zeros((91, 109, 91), np.int16)
    ijk = lambda mm: np.round((np.asarray(mm) - affine[:3, 3]) / 2).astype(int)  # noqa: E731
    a, b = ijk([-30, -20, 10]), ijk([30, -20, 10])
    labels[a[0] - 5:a[0] + 5, a[1] - 5:a[1] + 5, a[2] - 5:a[2] + 5] = 1
    labels[b[0] - 5:b[0] + 5, b[1] - 5:b[1] + 5, b[2] - 5:b[2] + 5] = 2
    far = ijk([0, 0, -70])  # below the brain: outside every grid cell
    labels[far[0], far[1], far[2]] = 3
    path = tmp_path / "toy.nii.gz"
    nib.save(nib.Nifti1Image(labels, affine), str(path))
    (tmp_path / "toy.txt").write_text("1 Left_blob\n2 Right_blob\n3 Far_away\n")
    rm = region_map(sphere_model, str(path))
    assert rm.names == ["Left_blob", "Right_blob", "Far_away"]
    assert rm.unresolved == ["Far_away"]
    assert any("Far_away" in r.getMessage() for r in caplog.records)
    assert np.isfinite(rm.weights).all() and rm.weights[2].sum() == pytest.approx(1.0)
    # left blob weights sit on left sources
    left = rm.weights[0] @ sphere_model.src_pos_mni
    assert left[0] == pytest.approx(-30, abs=4)


def test_user_atlas_without_table(tmp_path):
    path = tmp_path / "x.nii"
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.int16), np.eye(4)), str(path))
    with pytest.raises(ValueError, match="label table"):
        load_atlas(str(path))


def test_reducer_modes_and_fold(sphere_model):
    from rtsource.config import InverseConfig
    from rtsource.inverse import make_inverse

    rm = region_map(sphere_model, "bn246")
    op = make_inverse(sphere_model, InverseConfig())
    x = np.random.default_rng(0).normal(size=(10, 128)).astype(np.float32) * 1e-6
    src = op.apply_samples(x)
    mag = RegionReducer(rm, "magnitude")(src)
    ref = np.linalg.norm(src, axis=2) @ rm.weights.T
    np.testing.assert_allclose(mag, ref, rtol=1e-4)
    assert (mag >= 0).all()
    signed = RegionReducer(rm, "signed")
    kr = signed.fold(op.kernel)
    np.testing.assert_allclose(x @ kr.T, signed(src), rtol=1e-3, atol=1e-3 * np.abs(kr).max() * 1e-6)
    with pytest.raises(ValueError, match="signed"):
        RegionReducer(rm, "magnitude").fold(op.kernel)
    with pytest.raises(ValueError, match="magnitude"):
        RegionReducer(rm, "abs")
