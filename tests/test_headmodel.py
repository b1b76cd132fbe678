"""Template head model: montages, grid, conductors, cache behaviour."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rtsource import _util
from rtsource.config import HeadModelConfig
from rtsource.headmodel import GRID_SHAPE, build_headmodel, get_montage, mri_to_mni152
from rtsource.headmodel.coords import MNI305_TO_MNI152, mni152_to_mri
from rtsource.headmodel.surfaces import icosphere, template_surfaces


def test_grid_fits_32_cube_one_source_per_voxel(sphere_model):
    vox = sphere_model.vox
    assert vox.min() >= 0 and np.all(vox.max(axis=0) < np.array(GRID_SHAPE))
    assert len(np.unique(vox, axis=0)) == sphere_model.n_sources
    # voxel index <-> position is the 7 mm lattice
    rel = sphere_model.src_pos_mri - sphere_model.src_pos_mri[0]
    np.testing.assert_allclose(rel, (vox - vox[0]) * 0.007, atol=1e-6)
    assert 4000 < sphere_model.n_sources < 6000
    assert sphere_model.gain.shape == (128, sphere_model.n_sources, 3)
    assert np.isfinite(sphere_model.gain).all()


def test_mni_affine_is_applied():
    np.testing.assert_allclose(mri_to_mni152(np.zeros((1, 3)))[0], MNI305_TO_MNI152[:3, 3])
    pts = np.array([[0.01, -0.02, 0.03], [-0.05, 0.04, 0.0]])
    np.testing.assert_allclose(mni152_to_mri(mri_to_mni152(pts)), pts, atol=1e-12)
    assert np.abs(mri_to_mni152(pts) - pts * 1000).max() > 0.5  # a few mm, never ignored


def test_icosphere_and_nested_surfaces():
    rr, tris = icosphere(2)
    assert rr.shape == (162, 3) and tris.shape == (320, 3)
    surfs = template_surfaces(3)
    c = surfs["inner_skull"][0].mean(0)
    radii = [np.linalg.norm(surfs[k][0] - c, axis=1)
             for k in ("inner_skull", "outer_skull", "outer_skin")]
    assert np.all(radii[0] < radii[1]) and np.all(radii[1] < radii[2])
    assert np.all(radii[1] - radii[0] <= 0.005 + 1e-9)


@pytest.mark.slow
def test_bem_model_builds_and_differs_from_sphere(sphere_model):
    """Three-layer BEM (ico3 for speed) on the same grid; gains differ from the sphere."""
    bem = build_headmodel(HeadModelConfig(montage="biosemi128", conductor="bem", bem_ico=3),
                          progress=False)
    np.testing.assert_array_equal(bem.vox, sphere_model.vox)
    assert bem.description["conductor"] == "bem"
    a = bem.gain - bem.gain.mean(0)
    b = sphere_model.gain - sphere_model.gain.mean(0)
    corr = np.sum(a * b) / np.linalg.norm(a) / np.linalg.norm(b)
    assert 0.5 < corr < 0.999


def test_montage_from_name_file_and_arrays(tmp_path):
    m = get_montage("BioSemi64")  # case-insensitive
    assert len(m.ch_names) == 64
    pos = m.get_positions()["ch_pos"]
    labels = list(pos)[:20]
    arr = np.array([pos[k] for k in labels])
    hm = build_headmodel(HeadModelConfig(conductor="sphere"), montage=(labels, arr),
                         progress=False)
    assert hm.ch_names == labels
    np.testing.assert_allclose(hm.ch_pos, arr, atol=1e-9)
    sfp = tmp_path / "cap.sfp"
    sfp.write_text("\n".join(f"{k} {v[0]*100:.5f} {v[1]*100:.5f} {v[2]*100:.5f}"
                             for k, v in zip(labels, arr, strict=True)))
    assert get_montage(sfp).ch_names == labels


def test_unknown_montage_lists_close_matches():
    with pytest.raises(ValueError, match="Did you mean.*biosemi128"):
        get_montage("biosemi-128")


def test_bad_positions_are_rejected():
    with pytest.raises(ValueError, match="millimetres"):
        get_montage((["a", "b"], np.array([[0.0, 0.0, 90.0], [10.0, 0.0, 80.0]])))
    with pytest.raises(ValueError, match=r"\(n_labels, 3\)"):
        get_montage((["a", "b"], np.zeros((3, 3))))


def test_corrupt_cache_is_rebuilt_with_a_reason(sphere_cfg, sphere_model, caplog):
    path = _util.cache_dir() / "headmodel" / f"{sphere_model.hash}.npz"
    assert path.exists()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="rtsource"):
        again = build_headmodel(sphere_cfg, progress=False)
    assert any("corrupt or stale" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(again.gain, sphere_model.gain)
    # and the rebuilt entry is now valid (no second rebuild)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="rtsource"):
        build_headmodel(sphere_cfg, progress=False)
    assert not any("Building" in r.getMessage() or "Rebuilding" in r.getMessage()
                   for r in caplog.records)


def test_force_rebuilds(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("RTSOURCE_CACHE", str(tmp_path))
    cfg = HeadModelConfig(montage="biosemi16", conductor="sphere", spacing_mm=12.0)
    build_headmodel(cfg, progress=False)
    with caplog.at_level(logging.WARNING, logger="rtsource"):
        build_headmodel(cfg, progress=False, force=True)
    assert any("forced rebuild" in r.getMessage() for r in caplog.records)


def test_pick_channels_is_case_insensitive_and_names_missing(sphere_model):
    sub = sphere_model.pick_channels(["a1", "B2"])
    assert sub.ch_names == ["A1", "B2"] and sub.gain.shape[0] == 2
    assert sub.hash != sphere_model.hash
    with pytest.raises(ValueError, match="Cz"):
        sphere_model.pick_channels(["A1", "Cz"])
