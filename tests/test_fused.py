"""The fused live hop (inverse + regions without source vectors) against the plain path
(``InverseOperator.apply_samples`` + ``RegionReducer``), which stays the reference."""

from __future__ import annotations

import numpy as np
import pytest

from rtsource.config import InverseConfig
from rtsource.inverse import make_inverse
from rtsource.online.fused import FusedRegions
from rtsource.regions import RegionReducer, region_map


@pytest.fixture(scope="module")
def stages(sphere_model):
    inv = make_inverse(sphere_model, InverseConfig(method="eloreta"))
    return inv, region_map(sphere_model, "bn246")


@pytest.mark.parametrize("mode", ["magnitude", "signed"])
@pytest.mark.parametrize("n_times", [1, 10, 37])
def test_fused_equals_plain(stages, sphere_model, mode, n_times):
    inv, rmap = stages
    rng = np.random.default_rng(n_times)
    # a dipole in a region plus noise: realistic dynamic range between regions
    r = rmap.names.index("PrG_6_1_L")
    s = int(np.argmax(rmap.weights[r]))
    x = (sphere_model.gain[:, s] @ rmap.orientations[r])[None] * 2e-8
    x = (x + rng.normal(size=(n_times, inv.n_channels)) * 1e-6).astype(np.float32)
    plain = RegionReducer(rmap, mode)(inv.apply_samples(x))
    fused = FusedRegions(inv, rmap, mode)
    got = fused(x)
    assert got.shape == plain.shape == (n_times, rmap.n_regions) and got.dtype == np.float32
    np.testing.assert_allclose(got, plain, rtol=1e-5, atol=1e-6 * np.abs(plain).max())
    assert np.argmax(np.abs(got).mean(0)) == np.argmax(np.abs(plain).mean(0))
    # reusing the stage's buffers does not leak state between calls
    np.testing.assert_array_equal(fused(x), got)


def test_fused_skips_sources_in_no_region_only(stages):
    inv, rmap = stages
    fused = FusedRegions(inv, rmap)
    in_some = int((rmap.weights != 0).any(axis=0).sum())
    assert fused.n_used == in_some < inv.n_sources
    assert fused.kernel_bytes == in_some * 3 * inv.n_channels * 4


def test_processor_fast_path_matches_plain(sphere_cfg):
    from rtsource.config import load_config
    from rtsource.online.processing import SourceProcessor

    cfg = load_config(headmodel={"montage": sphere_cfg.montage, "conductor": "sphere"})
    from rtsource.headmodel import build_headmodel

    names = build_headmodel(cfg.headmodel, progress=False).ch_names
    x = (np.random.default_rng(3).normal(size=(50, len(names))) * 1e-5).astype(np.float32)
    a = SourceProcessor(cfg, names, 500.0, progress=False)
    b = SourceProcessor(cfg, names, 500.0, progress=False)
    src, ref = a.process(x)
    none, got = b.process(x, sources=False)
    assert none is None and src.shape[0] == 50
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
