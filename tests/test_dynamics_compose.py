"""Brain dynamics to EEG: cached libraries, region lead fields, noise, composed windows and
the region metrics of the dynamic evaluation."""

from __future__ import annotations

import numpy as np
import pytest

from rtsource.evaluate.dynamic import region_metrics, top1_precision_bound
from rtsource.simulate.dynamics import (
    DynamicComposer,
    DynamicSignal,
    LibraryConfig,
    RegionProjector,
    brain_nodes,
    build_library,
    sensor_noise,
    spread_weights,
)
from rtsource.simulate.dynamics.compose import REAL_NOISE_DIR


@pytest.fixture(scope="module")
def nodes():
    return brain_nodes()


@pytest.fixture(scope="module")
def projector(sphere_model, nodes):
    return RegionProjector(sphere_model, nodes)


@pytest.fixture(scope="module")
def libs():
    kw = dict(n_runs=2, duration_s=2.0, sfreq=250.0, discard_s=0.5, seed=7)
    return (build_library(LibraryConfig(regime="interictal", **kw), progress=False),
            build_library(LibraryConfig(regime="spontaneous", **kw), progress=False))


def test_library_is_cached_reproducible_and_has_both_focus_kinds(libs, nodes):
    lib, _ = libs
    assert lib.waveforms.shape == (2, 500, 226) and lib.waveforms.dtype == np.float32
    assert np.allclose(lib.waveforms.mean(1), 0, atol=1e-4)
    again = build_library(lib.config, progress=False)  # from the cache: same stored rate
    assert again.rate == lib.rate and np.array_equal(again.waveforms, lib.waveforms)
    fresh = build_library(lib.config, progress=False, force=True)  # regenerated: same seed
    assert np.array_equal(fresh.waveforms, lib.waveforms)
    kinds = [nodes.kinds[f] for f in lib.foci[:, 0]]
    assert kinds == ["cortical", "thalamic"]
    assert all(lib.truth[r, lib.foci[r, 0]] for r in range(2))
    with pytest.raises(ValueError, match="library regime.*'interictal'"):
        LibraryConfig(regime="interictall")


def test_region_lead_fields_follow_the_cortex_and_leave_the_thalamus_free(projector, nodes,
                                                                           sphere_model):
    n_ch = sphere_model.n_channels
    assert projector.fixed.shape == (n_ch, 226)
    assert np.all(projector.fixed[:, nodes.thalamic] == 0)
    assert projector.normal_fraction > 0.5
    # lateral convexity: the orientation points out of the brain
    i = nodes.index("PrG_6_3_L")
    w = projector.weights[i]
    mean_ori = (w[:, None] * projector.orientations).sum(0)
    outward = sphere_model.src_pos[w > 0].mean(0) - sphere_model.src_pos.mean(0)
    cos = mean_ori @ outward / np.linalg.norm(mean_ori) / np.linalg.norm(outward)
    assert cos > 0.5
    # a thalamic column is the free lead field along the given orientation
    u = np.tile([0.0, 0.0, 1.0], (16, 1))
    L = projector.leadfield(u)
    k = int(np.flatnonzero(nodes.thalamic)[3])
    assert np.allclose(L[:, k], projector.free[:, 3, 2])
    assert np.array_equal(L[:, nodes.cortical], projector.fixed[:, nodes.cortical])


def test_spread_covers_cortical_neighbours_not_the_thalamus(nodes):
    c = nodes.index("PrG_6_3_L")
    S = spread_weights(nodes, [c], 20.0)[:, 0]
    d = nodes.distances_mm()[c]
    assert S[c] == 1.0 and np.all(S[nodes.thalamic] == 0)
    near = nodes.cortical & (d > 0) & (d < 20)
    assert near.any() and np.all(S[near] > 0.5)
    t = nodes.index("Stha_L")
    St = spread_weights(nodes, [t], 20.0)[:, 0]
    assert St[t] == 1.0 and St.sum() == 1.0


def test_sensor_noise_kinds(sphere_model):
    rng = np.random.default_rng(0)
    names, pos = list(sphere_model.ch_names), sphere_model.ch_pos
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1) + np.eye(len(pos))
    nn = d.argmin(1)

    def neighbour_corr(x):
        c = np.corrcoef(x)
        return float(np.mean(c[np.arange(len(c)), nn]))

    kinds = ["white", "correlated"]
    if (REAL_NOISE_DIR / "realistic_noise.mat").exists():
        kinds.append("real")
    got = {}
    for kind in kinds:
        x = sensor_noise(kind, 200, names, pos, 250.0, rng)
        assert x.shape == (len(names), 200) and x.std() == pytest.approx(1.0)
        got[kind] = neighbour_corr(x)
    assert abs(got["white"]) < 0.1 and got["correlated"] > 0.4
    if "real" in got:  # real EEG is smooth over the scalp
        assert got["real"] > 0.4
    with pytest.raises(ValueError, match="noise.*'white'"):
        sensor_noise("pink", 10, names, pos, 250.0, rng)


def test_composed_window_has_its_truth_and_snr(libs, projector):
    lib, bg = libs
    comp = DynamicComposer(lib, bg, projector, window_s=0.4, spread_mm=(10.0, 10.0),
                           source_snr_db=(15.0, 15.0))
    s = comp.sample(np.random.default_rng(3), sensor_snr_db=10.0)
    assert s.eeg.shape == (projector.fixed.shape[0], 100)
    assert s.truth[s.focus] and np.all(s.target[~s.truth] == 0)
    assert np.array_equal(s.activity[s.truth], s.target[s.truth])
    ratio = np.mean(s.target[s.truth] ** 2) / np.mean(s.activity[~s.truth] ** 2)
    assert 10 * np.log10(ratio) == pytest.approx(15.0, abs=0.01)
    # the sensor noise is a tenth of the clean EEG's power (10 dB)
    L = projector.leadfield(None)
    clean = L @ s.activity
    clean -= clean.mean(0)
    noise = s.eeg - clean
    assert np.var(noise) < np.var(clean)


def test_focus_snr_at_the_scalp_is_its_eeg_power_over_the_background(libs, projector):
    lib, bg = libs
    comp = DynamicComposer(lib, bg, projector, window_s=0.4, spread_mm=(0.0, 10.0),
                           source_snr_db=(-3.0, -3.0), snr_at="scalp")
    rng = np.random.default_rng(4)
    kinds = set()
    for _ in range(6):
        s = comp.sample(rng, sensor_snr_db=10.0)
        L = projector.leadfield(s.orientations)
        a = L @ np.where(s.truth[:, None], s.activity, 0.0)
        b = L @ np.where(s.truth[:, None], 0.0, s.activity)
        a, b = a - a.mean(0), b - b.mean(0)
        assert 10 * np.log10(np.mean(a ** 2) / np.mean(b ** 2)) == pytest.approx(-3.0, abs=1e-6)
        kinds.add(bool(projector.nodes.cortical[s.focus]))
    assert kinds == {True, False}  # both a cortical and a thalamic focus were checked
    with pytest.raises(ValueError, match="snr_at"):
        DynamicComposer(lib, bg, projector, snr_at="sensor")


def test_region_metrics_on_known_estimates(nodes):
    rng = np.random.default_rng(1)
    true = np.zeros((226, 60))
    a, t = nodes.index("PrG_6_3_L"), nodes.index("Stha_L")
    truth = np.zeros(226, bool)
    truth[[a, t]] = True
    true[a] = np.sin(np.linspace(0, 6, 60))
    true[t] = np.cos(np.linspace(0, 9, 60))
    est = true + 0.01 * rng.standard_normal(true.shape)
    res = region_metrics(est, true, truth, nodes.kinds, nodes.centroids_mni)
    for cls in ("cortical", "thalamic"):
        assert res[cls]["precision"] == 1.0 and res[cls]["recall"] == 1.0
        assert res[cls]["le_mm"] == 0.0 and res[cls]["corr"] > 0.99
        assert res[cls]["top1"] == 1.0
    # all activity in one wrong cortical region: precision 0, recall 0, LE its distance
    far = nodes.index("MVOcC_5_1_R")
    wrong = 0.01 * rng.standard_normal(true.shape)
    wrong[far] = true[a]
    res = region_metrics(wrong, true, truth, nodes.kinds, nodes.centroids_mni)
    d = nodes.distances_mm()[far, [a, t]].min()
    assert res["cortical"]["precision"] == 0.0 and res["cortical"]["recall"] == 0.0
    assert res["cortical"]["le_mm"] == pytest.approx(d)
    assert np.isnan(res["thalamic"]["precision"]) and res["thalamic"]["recall"] == 0.0
    assert res["cortical"]["top1"] == 0.0
    # the true thalamic region ranks first once it carries more power than the noise
    wrong[t] = 0.5 * true[t]
    assert region_metrics(wrong, true, truth, nodes.kinds, nodes.centroids_mni)[
        "thalamic"]["top1"] == 1.0


def test_top1_precision_bound():
    # 34 windows, recall 0.7 -> at least 24 found; 1 ranked first -> (1 + 23/2) / 24
    assert top1_precision_bound(34, 1) == pytest.approx((1 + 11.5) / 24)
    assert top1_precision_bound(34, 24) == 1.0 and top1_precision_bound(34, 34) == 1.0
    assert top1_precision_bound(34, 0) == 0.5
    # more windows ranked first never lowers the bound
    b = [top1_precision_bound(32, t) for t in range(33)]
    assert all(x <= y for x, y in zip(b, b[1:]))
    for bad in ((0, 0, 0.7), (10, 11, 0.7), (10, 2, 0.0), (10, 2, 1.5)):
        with pytest.raises(ValueError, match="n_windows"):
            top1_precision_bound(*bad)


def test_dynamic_signal_does_not_depend_on_chunking():
    kw = dict(montage="biosemi32", sfreq=250.0, foci=["Stha_L"], seed=5)
    a = DynamicSignal("evoked", **kw)
    b = DynamicSignal("evoked", **kw)
    x = np.concatenate([a.generate(37), a.generate(213)])
    y = b.generate(250)
    assert np.allclose(x, y) and np.array_equal(x[:, -1], np.arange(250))
    assert a.onsets == b.onsets and a.truth_regions[0] == "Tha_8_3_L"
    assert 8e-6 < x[:, :-1].std() < 30e-6  # background scaled near 10 uV
