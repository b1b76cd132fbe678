"""rtsource.localize: the public offline API and its bad-input errors."""

from __future__ import annotations

import dataclasses

import mne
import numpy as np
import pytest

import rtsource
from rtsource.config import HeadModelConfig, load_config
from rtsource.headmodel import build_headmodel
from rtsource.headmodel.build import make_forward
from rtsource.headmodel.montage import get_montage, montage_info

SFREQ = 250.0


@pytest.fixture(scope="module")
def fast_cfg():
    """Sphere template, no filters (noiseless checks stay exact), no flat-channel check
    (noiseless channels on a dipole's zero line are flatter than any real channel)."""
    cfg = load_config(headmodel={"conductor": "sphere"})
    return dataclasses.replace(cfg, stream=dataclasses.replace(
        cfg.stream, highpass_hz=None, lowpass_hz=None, notch_hz=None, flat_uv=None))


def _dipole_data(hm, src, n_times=50, seed=0):
    rng = np.random.default_rng(seed)
    q = rng.normal(size=3)
    q /= np.linalg.norm(q)
    wave = np.sin(2 * np.pi * 10 * np.arange(n_times) / SFREQ) * 1e-8
    return (hm.gain[:, src] @ q)[:, None] * wave[None]


def test_result_contract(sphere_model, fast_cfg):
    x = _dipole_data(sphere_model, 2000)
    res = rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=SFREQ,
                            montage="biosemi128", config=fast_cfg)
    n_t = x.shape[1]
    assert res.sources.shape == (n_t, sphere_model.n_sources, 3)
    assert res.positions_mni.shape == (sphere_model.n_sources, 3)
    assert res.regions.shape == (n_t, 246) and len(res.region_names) == 246
    np.testing.assert_allclose(res.times, np.arange(n_t) / SFREQ)
    peak = np.argmax((res.sources[12] ** 2).sum(-1))
    assert peak == 2000  # noiseless, same head model: exact
    assert res.provenance["inverse_method"] == "eloreta"


def test_mne_objects(sphere_model, fast_cfg):
    x = _dipole_data(sphere_model, 1500)
    info = mne.create_info(sphere_model.ch_names + ["STI"], SFREQ, ["eeg"] * 128 + ["stim"])
    raw = mne.io.RawArray(np.vstack([x, np.zeros((1, x.shape[1]))]), info)
    raw.set_montage("biosemi128")
    res = rtsource.localize(raw, method="eloreta", config=fast_cfg)
    assert res.sources.shape[0] == x.shape[1]
    assert np.argmax((res.sources[12] ** 2).sum(-1)) == 1500
    epochs = mne.EpochsArray(np.stack([x, 2 * x]), raw.copy().pick("eeg").info)
    res_e = rtsource.localize(epochs, method="mne", config=fast_cfg)
    assert res_e.regions.shape == (2, x.shape[1], 246)
    np.testing.assert_allclose(res_e.sources[1], 2 * res_e.sources[0], rtol=1e-4,
                               atol=1e-6 * np.abs(res_e.sources).max())
    evoked = epochs.average()
    assert rtsource.localize(evoked, config=fast_cfg).regions.shape == (x.shape[1], 246)
    raw_nopos = mne.io.RawArray(x, mne.create_info(sphere_model.ch_names, SFREQ, "eeg"))
    with pytest.raises(ValueError, match="no electrode positions.*montage="):
        rtsource.localize(raw_nopos, config=fast_cfg)


def test_bad_shapes(sphere_model, fast_cfg):
    x = _dipole_data(sphere_model, 100)
    with pytest.raises(ValueError, match=r"\(128, n_times\).*transposed"):
        rtsource.localize(x.T, ch_names=sphere_model.ch_names, sfreq=SFREQ, config=fast_cfg)
    with pytest.raises(ValueError, match="n_channels, n_times"):
        rtsource.localize(x[None, None], ch_names=sphere_model.ch_names, sfreq=SFREQ, config=fast_cfg)
    with pytest.raises(ValueError, match="sfreq"):
        rtsource.localize(x, ch_names=sphere_model.ch_names, config=fast_cfg)
    with pytest.raises(ValueError, match="method = 'lcmv' is not valid"):
        rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=SFREQ, method="lcmv")


def test_nan_inf_named(sphere_model, fast_cfg):
    x = _dipole_data(sphere_model, 100)
    x[5, 7] = np.nan
    x[9, 30:40] = np.inf
    with pytest.raises(ValueError, match=r"A6 \(samples 7\); A10 \(samples 30, 31, 32, 33, 34 \.\.\.\)"):
        rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=SFREQ, config=fast_cfg)


def test_channels_missing_from_montage(sphere_model, fast_cfg):
    x = _dipole_data(sphere_model, 100)
    names = list(sphere_model.ch_names)
    names[3], names[4] = "XX1", "YY2"
    with pytest.raises(ValueError, match=r"\['XX1', 'YY2'\].*on_missing='drop'"):
        rtsource.localize(x, ch_names=names, sfreq=SFREQ, config=fast_cfg)
    res = rtsource.localize(x, ch_names=names, sfreq=SFREQ, config=fast_cfg, on_missing="drop")
    assert res.provenance["channels_used"] == "126"


def test_unknown_montage(sphere_model, fast_cfg):
    x = _dipole_data(sphere_model, 100)
    with pytest.raises(ValueError, match="Did you mean"):
        rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=SFREQ, montage="biosemi_128",
                          config=fast_cfg)


@pytest.mark.slow
def test_cross_model_as_good_as_mne_eloreta(sphere_model, fast_cfg):
    """Data from a BEM with other conductivities; our template eLORETA vs MNE's eLORETA."""
    truth = build_headmodel(HeadModelConfig(montage="biosemi128", conductor="bem", bem_ico=3,
                                            conductivity=(0.332, 0.0113, 0.332)), progress=False)
    rng = np.random.default_rng(42)
    sources = rng.choice(truth.n_sources, size=40, replace=False)
    info = montage_info(get_montage("biosemi128"), SFREQ)
    fwd, _ = make_forward(fast_cfg.headmodel, info)
    raw0 = mne.io.RawArray(np.zeros((128, 2)), info).set_eeg_reference("average", projection=True)
    inv = mne.minimum_norm.make_inverse_operator(raw0.info, fwd, mne.make_ad_hoc_cov(raw0.info),
                                                 loose=1.0, depth=None)
    inv = mne.minimum_norm.prepare_inverse_operator(inv, 1, 1 / 9, "eLORETA")
    err_ours, err_mne = [], []
    for k, s in enumerate(sources):
        x = _dipole_data(truth, s, seed=k)
        x += rng.normal(size=x.shape) * 0.02 * np.abs(x).max()  # 34 dB sensor noise
        res = rtsource.localize(x, ch_names=truth.ch_names, sfreq=SFREQ, config=fast_cfg)
        p = (res.sources[10:40] ** 2).sum(-1).mean(0)
        err_ours.append(np.linalg.norm(res.positions_mni[p.argmax()] - truth.src_pos_mni[s]))
        raw = mne.io.RawArray(x, raw0.info.copy())
        stc = mne.minimum_norm.apply_inverse_raw(raw, inv, 1 / 9, "eLORETA", pick_ori="vector",
                                                  prepared=True)
        pm = (stc.data[:, :, 10:40] ** 2).sum(1).mean(-1)
        err_mne.append(np.linalg.norm(res.positions_mni[pm.argmax()] - truth.src_pos_mni[s]))
    med_ours, med_mne = np.median(err_ours), np.median(err_mne)
    assert med_ours <= med_mne + 1.0, (med_ours, med_mne)
    assert med_ours < 20.0


def test_layout_errors_name_the_problem(sphere_model):
    """Duplicate labels, empty data, a label string, 3-D arrays and epoch-indexed NaN."""
    names = list(sphere_model.ch_names)
    x = np.random.default_rng(0).normal(size=(len(names), 20)) * 1e-5
    cfg = {"headmodel": {"conductor": "sphere"}}  # a dict of sections, as in a TOML file
    with pytest.raises(ValueError, match=r"\['A1'\] occur more than once"):
        rtsource.localize(x, names[:-1] + ["A1"], 100.0, config=cfg)
    with pytest.raises(ValueError, match="no samples"):
        rtsource.localize(x[:, :0], names, 100.0, config=cfg)
    with pytest.raises(ValueError, match="must be a list of channel labels"):
        rtsource.localize(x, "A1", 100.0, config=cfg)
    epochs = np.stack([x, x])
    res = rtsource.localize(epochs, names, 100.0, config=cfg)
    assert res.regions.shape == (2, 20, len(res.region_names))
    np.testing.assert_array_equal(res.regions[1], res.regions[0])
    epochs[1, 5, 3] = np.nan
    with pytest.raises(ValueError, match=f"epoch 1 in 1 channel.*{names[5]}"):
        rtsource.localize(epochs, names, 100.0, config=cfg)


def test_few_channels_are_localised_with_a_warning(sphere_model, fast_cfg, caplog):
    """Eight channels still give a result (BCI headsets have 8-16) but the log says the map
    is coarse; a 64-channel montage does not warn."""
    import logging

    x = _dipole_data(sphere_model, 2000)
    few = list(range(0, 128, 16))  # 8 channels spread over the head
    with caplog.at_level(logging.WARNING, logger="rtsource"):
        res = rtsource.localize(x[few], ch_names=[sphere_model.ch_names[i] for i in few],
                                sfreq=SFREQ, montage="biosemi128", config=fast_cfg)
    assert res.regions.shape == (x.shape[1], 246) and np.isfinite(res.regions).all()
    assert "Only 8 EEG channels" in caplog.text and "coarse" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rtsource"):
        rtsource.localize(x[::2], ch_names=sphere_model.ch_names[::2], sfreq=SFREQ,
                          montage="biosemi128", config=fast_cfg)
    assert "EEG channels (" not in caplog.text
