"""The refine stage inside the processing chain (random weights: latency and wiring)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import rtsource
from rtsource.config import RefineConfig, load_config
from rtsource.models import PIUNet, VolumeMapper
from rtsource.models.checkpoint import save_checkpoint
from rtsource.online.localize import Localizer
from rtsource.online.refine import make_refiner


@pytest.fixture(scope="module")
def random_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    model = PIUNet(8).eval()
    path = tmp_path_factory.mktemp("ckpt") / "rand.safetensors"
    save_checkpoint(model, path, spacing_mm=7.0)
    return path, model


def test_refiner_matches_the_network(sphere_model, random_ckpt):
    path, model = random_ckpt
    ref = make_refiner(sphere_model, RefineConfig(checkpoint=str(path), backend="onnx"))
    rng = np.random.default_rng(0)
    z = rng.normal(size=(3, sphere_model.n_sources, 3)).astype(np.float32) * 1e-9
    out = ref(z)
    assert out.shape == z.shape and out.dtype == np.float32 and np.isfinite(out).all()
    mapper = VolumeMapper(sphere_model.vox)
    vol, scale = mapper.to_volume(torch.from_numpy(z))
    with torch.no_grad():
        expect = mapper.from_volume(model(vol), scale).numpy()
    np.testing.assert_allclose(out, expect, rtol=1e-3, atol=1e-4 * np.abs(expect).max())
    assert ref.provenance()["piunet_width"] == "8"


def test_localize_piunet_and_decimation(sphere_model, random_ckpt):
    path, _ = random_ckpt
    cfg = load_config(headmodel={"conductor": "sphere"},
                      refine={"checkpoint": str(path), "backend": "onnx"})
    x = np.random.default_rng(1).normal(size=(128, 4)) * 1e-6
    res = rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=100.0, method="piunet",
                            config=cfg)
    assert res.sources.shape == (4, sphere_model.n_sources, 3)
    assert res.provenance["piunet_backend"] == "onnx"


def test_checkpoint_grid_mismatch(sphere_model, random_ckpt, tmp_path):
    hm = dataclasses.replace(sphere_model, spacing_mm=6.0)
    with pytest.raises(ValueError, match="7 mm grid.*6 mm"):
        make_refiner(hm, RefineConfig(checkpoint=str(random_ckpt[0]), backend="onnx"))
    with pytest.raises(FileNotFoundError, match="rtsource train"):
        make_refiner(sphere_model, RefineConfig(checkpoint=str(tmp_path / "none.safetensors")))


def test_export_command_verifies_onnx(random_ckpt, tmp_path, capsys):
    from rtsource.cli import main

    out = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(random_ckpt[0]), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert out.exists() and "matches torch" in text and "every operator supported" in text


def test_network_prepared_once_per_layout(sphere_model, random_ckpt):
    """Repeated localize(method="piunet") calls on one layout reuse the prepared stages and
    the engine (the network is built, and on compiled backends compiled, once)."""
    path, _ = random_ckpt
    cfg = load_config(headmodel={"conductor": "sphere"},
                      refine={"checkpoint": str(path), "backend": "onnx"})
    x = np.random.default_rng(2).normal(size=(128, 3)) * 1e-6
    rtsource.online.localize.clear_cache()
    first = rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=100.0,
                              method="piunet", config=cfg)
    (loc,) = rtsource.online.localize._CACHE.values()
    engine = loc.processor.refiner.engine
    for _ in range(9):
        again = rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=100.0,
                                  method="piunet", config=cfg)
        np.testing.assert_array_equal(again.regions, first.regions)
    assert len(rtsource.online.localize._CACHE) == 1
    assert next(iter(rtsource.online.localize._CACHE.values())) is loc
    # a second Localizer for another layout shares the engine of the same weights
    other = Localizer(sphere_model.ch_names[:64], 100.0, montage="biosemi128",
                      method="piunet", config=cfg, on_missing="drop")
    assert other.processor.refiner.engine is engine
