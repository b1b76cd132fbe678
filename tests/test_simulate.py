"""The simulator: source patterns, sensor noise, montage jitter, training pairs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from rtsource.config import HeadModelConfig
from rtsource.simulate import (
    ForwardBank,
    SimConfig,
    Simulator,
    add_sensor_noise,
    correlated_noise_factor,
    gaussian_sources,
    jittered_montage,
    random_sources,
    sim_config_from_dict,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def grid_mm():
    """A 7 mm lattice, 12³ points, positions in mm."""
    ijk = torch.stack(torch.meshgrid(*[torch.arange(12)] * 3, indexing="ij"), -1).reshape(-1, 3)
    return ijk.float() * 7.0


def test_gaussian_profile_has_unit_l2_norm_and_stated_width(grid_mm):
    centre = 12 * 12 * 6 + 12 * 6 + 6
    sigma = 10.0
    x = gaussian_sources(grid_mm, torch.tensor([[centre]]), torch.tensor([[sigma]]),
                         torch.tensor([[-2.5]]), torch.tensor([[[0.0, 0.6, 0.8]]]))[0]
    assert x.shape == (len(grid_mm), 3)
    assert float(x.norm()) == pytest.approx(2.5, rel=1e-5)  # |amplitude| · ‖profile‖₂ = 1
    mag = x.norm(dim=1)
    assert int(mag.argmax()) == centre
    # one lattice step (7 mm) away the profile has dropped by exp(-d²/2σ²)
    assert float(mag[centre + 1] / mag[centre]) == pytest.approx(math.exp(-49 / (2 * sigma**2)),
                                                                  rel=1e-5)
    # orientation and sign carried through
    assert torch.allclose(x[centre] / x[centre].norm(), -torch.tensor([0.0, 0.6, 0.8]), atol=1e-6)


def test_random_sources_respect_ranges(grid_mm):
    g = torch.Generator().manual_seed(3)
    src = random_sources(grid_mm, 400, n_sources=(2, 5), extent_mm=(5.0, 40.0), generator=g)
    assert src.x.shape == (400, len(grid_mm), 3)
    assert int(src.n_sources.min()) == 2 and int(src.n_sources.max()) == 5
    act = src.active
    assert torch.all(src.amplitude[~act] == 0)
    ext = src.extent_mm[act]
    assert float(ext.min()) >= 5.0 and float(ext.max()) <= 40.0
    assert torch.allclose(src.orientation.norm(dim=-1), torch.ones(()), atol=1e-5)
    # orientations uniform on the sphere: mean near zero, second moment I/3
    u = src.orientation[act]
    assert float(u.mean(0).abs().max()) < 0.1
    assert torch.allclose(u.T @ u / len(u), torch.eye(3) / 3, atol=0.05)
    # amplitudes N(0, 1)
    a = src.amplitude[act]
    assert abs(float(a.mean())) < 0.15 and 0.85 < float(a.std()) < 1.15


def test_random_sources_are_reproducible(grid_mm):
    a = random_sources(grid_mm, 4, n_sources=(1, 3), extent_mm=(5.0, 40.0),
                       generator=torch.Generator().manual_seed(11))
    b = random_sources(grid_mm, 4, n_sources=(1, 3), extent_mm=(5.0, 40.0),
                       generator=torch.Generator().manual_seed(11))
    assert torch.equal(a.x, b.x)
    with pytest.raises(ValueError, match="n_sources"):
        random_sources(grid_mm, 1, n_sources=(0, 2), extent_mm=(5, 10),
                       generator=torch.Generator())


def test_noise_reaches_the_requested_snr():
    g = torch.Generator().manual_seed(0)
    eeg = torch.randn(400, 128, generator=g) * 3.0
    for snr_db in (0.0, 10.0, 20.0):
        noisy = add_sensor_noise(eeg, torch.full((400,), snr_db), torch.zeros(400), None, g)
        ratio = ((noisy - eeg).var(dim=1) / eeg.var(dim=1)).mean()
        assert float(ratio) == pytest.approx(10 ** (-snr_db / 10), rel=0.05)
    clean = add_sensor_noise(eeg, torch.full((400,), math.inf), torch.zeros(400), None, g)
    assert torch.equal(clean, eeg)


def test_correlated_noise_keeps_power_and_correlates_neighbours():
    pos = np.array(jittered_montage("biosemi64", 0.0, 0)[1])
    chol = torch.from_numpy(correlated_noise_factor(pos, 40.0))
    g = torch.Generator().manual_seed(1)
    eeg = torch.randn(2000, 64, generator=g)
    sigma2 = eeg.var(dim=1, keepdim=True) / 10.0
    white = (add_sensor_noise(eeg, torch.full((2000,), 10.0), torch.zeros(2000), chol, g)
             - eeg) / sigma2.sqrt()
    corr = (add_sensor_noise(eeg, torch.full((2000,), 10.0), torch.ones(2000), chol, g)
            - eeg) / sigma2.sqrt()
    assert float(white.var(0).mean()) == pytest.approx(1.0, rel=0.05)
    assert float(corr.var(0).mean()) == pytest.approx(1.0, rel=0.05)
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)
    i, j = np.unravel_index(np.argmin(d + np.eye(64) * 1e9), d.shape)  # nearest pair
    c_corr = float(np.corrcoef(corr[:, i], corr[:, j])[0, 1])
    c_white = float(np.corrcoef(white[:, i], white[:, j])[0, 1])
    assert c_corr == pytest.approx(math.exp(-d[i, j] * 1000 / 40.0), abs=0.08)
    assert abs(c_white) < 0.1


def test_jittered_montage_moves_along_the_scalp():
    labels0, pos0 = jittered_montage("biosemi64", 0.0, 0)
    labels, pos = jittered_montage("biosemi64", 5.0, 42)
    _, again = jittered_montage("biosemi64", 5.0, 42)
    assert labels == labels0 and np.array_equal(pos, again)
    step = np.linalg.norm(pos - pos0, axis=1) * 1000
    # tangential 2-D Gaussian with σ = 5 mm per axis: RMS displacement ≈ 5·√2 mm
    assert 5.0 < float(np.sqrt((step**2).mean())) < 9.0
    from rtsource.simulate.bank import fit_sphere

    c = fit_sphere(pos0)
    assert np.allclose(np.linalg.norm(pos - c, axis=1), np.linalg.norm(pos0 - c, axis=1))


def test_config_from_toml_and_unknown_keys():
    import tomllib

    with open(REPO / "configs" / "train-w8.toml", "rb") as fid:
        data = tomllib.load(fid)
    cfg = sim_config_from_dict(data["simulate"])
    assert "GSN-HydroCel-129" not in cfg.montages and len(cfg.montages) >= 3
    assert cfg.headmodels[0].conductivity == (0.3, 0.006, 0.3)
    assert cfg.n_sources_max == 20 and isinstance(cfg.n_sources_max, int)
    with pytest.raises(ValueError, match="snr_db_max"):
        sim_config_from_dict({"snr_max": 10})
    with pytest.raises(ValueError, match="list of montage names"):
        sim_config_from_dict({"montages": "biosemi64"})
    with pytest.raises(ValueError, match="montage"):
        sim_config_from_dict({"headmodels": [{"montage": "biosemi64"}]})
    with pytest.raises(ValueError, match="n_sources"):
        SimConfig(n_sources_min=3, n_sources_max=2)


# ----------------------------------------------------------------- with head models
SPHERES = (HeadModelConfig(conductor="sphere", conductivity=(0.3, 0.006, 0.3)),
           HeadModelConfig(conductor="sphere", conductivity=(0.33, 0.0165, 0.33)))


@pytest.fixture(scope="module")
def bank():
    cfg = SimConfig(montages=("biosemi32",), jitter_variants=1, headmodels=SPHERES,
                    n_sources_max=3)
    return ForwardBank(cfg, progress=False)


@pytest.mark.slow
def test_bank_layouts_share_one_grid(bank):
    assert len(bank.entries) == 4 and len(bank.layouts) == 2
    a, b = (bank.entries[row[0]] for row in bank.layouts)
    assert a.ch_names == b.ch_names and not np.allclose(a.ch_pos, b.ch_pos)
    assert a.gain.shape == (32, 3 * bank.n_sources)
    assert a.kernel.shape == (3 * bank.n_sources, 32)
    g = torch.Generator().manual_seed(0)
    draws = {bank.draw(g)[0].name for _ in range(40)}
    assert len(draws) == 4  # every layout × conductor model is used


@pytest.mark.slow
def test_mismatch_draws_another_conductor(bank):
    from dataclasses import replace

    g = torch.Generator().manual_seed(0)
    bank.cfg = replace(bank.cfg, mismatch_prob=1.0)
    try:
        for _ in range(10):
            fwd, inv = bank.draw(g)
            assert fwd.ch_names == inv.ch_names and fwd.headmodel_index != inv.headmodel_index
        bank.cfg = replace(bank.cfg, mismatch_prob=0.0)
        for _ in range(10):
            fwd, inv = bank.draw(g)
            assert fwd is inv
    finally:
        bank.cfg = replace(bank.cfg, mismatch_prob=0.2)


@pytest.mark.slow
def test_training_pair_shares_one_scale(bank):
    sim = Simulator(bank)
    batch = sim.sample(4, torch.Generator().manual_seed(5))
    assert batch.inputs.shape == batch.targets.shape == (4, 3, 32, 32, 32)
    assert torch.allclose(batch.inputs.abs().amax(dim=(1, 2, 3, 4)), torch.ones(4))
    assert torch.allclose(batch.scale, 1.0 / batch.estimate.abs().amax(dim=(1, 2)))
    # gathering the volumes and undoing s gives back the sources and the eLORETA estimate
    x = sim.mapper.from_volume(batch.targets, batch.scale)
    z = sim.mapper.from_volume(batch.inputs, batch.scale)
    assert torch.allclose(x, batch.sources.x, rtol=1e-4, atol=1e-6 * float(x.abs().max()))
    assert torch.allclose(z, batch.estimate, rtol=1e-4, atol=1e-6 * float(z.abs().max()))
    outside = ~sim.mapper.brain_mask.expand_as(batch.inputs)
    assert torch.all(batch.inputs[outside] == 0) and torch.all(batch.targets[outside] == 0)


@pytest.mark.slow
def test_noiseless_focal_source_peaks_at_its_centre(bank):
    """Physics: same forward and kernel, no noise: eLORETA's peak is at (or next to) the
    centre of a focal source."""
    sim = Simulator(bank)
    entry = bank.entries[0]
    g = torch.Generator().manual_seed(9)
    src = random_sources(bank.src_pos_mm, 16, n_sources=(1, 1), extent_mm=(5.0, 5.0),
                         generator=g)
    batch = sim.pair(src, entry, entry, torch.full((16,), math.inf), torch.zeros(16), g)
    peak = batch.estimate.norm(dim=-1).argmax(dim=1)
    err = (bank.src_pos_mm[peak] - bank.src_pos_mm[src.centres[:, 0]]).norm(dim=1)
    assert float(err.median()) <= 7.5  # at most one lattice step (7 mm)
