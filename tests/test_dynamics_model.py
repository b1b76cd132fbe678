"""Brain dynamics: nodes, connectome, neural masses and the four regimes, checked on what a
neurophysiologist would look at (alpha peak, focal spikes, thalamo-cortical latency)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.signal import welch

from rtsource.simulate.dynamics import (
    EDR_LAMBDA_PER_MM,
    BrainModel,
    Connectome,
    NodeParams,
    RegimeSimulation,
    brain_nodes,
    default_connectome,
    detect_spikes,
    load_tvb_connectome,
    write_tvb_zip,
)

FS = 500.0


@pytest.fixture(scope="module")
def nodes():
    return brain_nodes()


@pytest.fixture(scope="module")
def conn(nodes):
    return default_connectome(nodes)


def test_nodes_are_bn246_cortex_and_thalamus(nodes):
    assert nodes.n_nodes == 226 and nodes.cortical.sum() == 210 and nodes.thalamic.sum() == 16
    assert brain_nodes(subcortical=True).n_nodes == 246
    c = nodes.centroids_mni
    left = nodes.hemispheres == "L"
    assert np.all(c[left & nodes.cortical, 0] < 0) and np.all(c[~left & nodes.cortical, 0] > 0)
    th = c[nodes.thalamic]  # the thalamus: near the midline, behind the anterior commissure
    assert np.all(np.abs(th[:, 0]) < 25) and np.all((th[:, 1] > -35) & (th[:, 1] < 0))
    assert nodes.index("Stha_L") == nodes.names.index("Tha_8_3_L")
    with pytest.raises(ValueError, match="not a node.*Stha_L"):
        nodes.index("Sthal_L")


def test_default_connectome_follows_the_distance_rule_and_thalamic_names(nodes, conn):
    w, d = conn.weights, nodes.distances_mm()
    cort = np.flatnonzero(nodes.cortical)
    i, j, k = cort[0], *np.flatnonzero(w[cort[0], cort] > 0)[:2]
    j, k = cort[j], cort[k]
    # ratio of two weights of one row: exp(-lambda (d_ij - d_ik)), independent of scaling
    assert w[i, j] / w[i, k] == pytest.approx(np.exp(-EDR_LAMBDA_PER_MM * (d[i, j] - d[i, k])))
    assert np.allclose(conn.delays_ms, d / 3.0)
    stha = nodes.index("Stha_L")
    targets = {nodes.names[t] for t in np.flatnonzero(w[:, stha] > 0)}
    assert "PoG_4_1_L" in targets and not any(t.endswith("_R") for t in targets)
    assert not any(t.startswith(("MVOcC", "LOcC")) for t in targets)
    otha = nodes.index("Otha_R")
    assert all(nodes.names[t].startswith(("MVOcC", "LOcC")) and nodes.names[t].endswith("_R")
               for t in np.flatnonzero(w[:, otha] > 0))
    # both directions, deterministic
    assert np.all((w[:, stha] > 0) == (w[stha, :] > 0))
    assert np.array_equal(default_connectome(nodes).weights, w)


def test_tvb_zip_is_mapped_by_nearest_centroid(tmp_path, nodes):
    c = nodes.centroids_mni
    # four TVB regions: the centres of the left/right frontal and occipital halves
    front, left = c[:, 1] > -20, c[:, 0] < 0
    groups = [front & left, front & ~left, ~front & left, ~front & ~left]
    centres = np.array([c[g].mean(0) for g in groups])
    W = np.array([[0, 1, 2, 3], [1, 0, 4, 5], [2, 4, 0, 6], [3, 5, 6, 0]], float)
    L = 10.0 * (W + 1) * (1 - np.eye(4))
    path = tmp_path / "tiny_connectivity.zip"
    write_tvb_zip(path, W, L, ["lf", "rf", "lo", "ro"], centres)
    got = load_tvb_connectome(path, nodes)
    m = np.sqrt(((c[:, None] - centres[None]) ** 2).sum(-1)).argmin(1)
    share = np.bincount(m, minlength=4)
    a, b = np.flatnonzero(m == 0)[0], np.flatnonzero(m == 3)[0]
    assert got.weights[a, b] == pytest.approx(W[0, 3] / share[3])
    assert got.lengths_mm[a, b] == pytest.approx(L[0, 3])
    same = np.flatnonzero(m == 1)[:2]
    assert got.weights[same[0], same[1]] == 0.0
    # a region's output is shared among the nodes that take it: column sums match TVB's
    assert got.weights[a].sum() == pytest.approx(W[0, 1] + W[0, 2] + W[0, 3])
    bad = tmp_path / "bad.zip"
    import zipfile

    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("weights.txt", "0 1\n1 0\n")
    with pytest.raises(ValueError, match="tract_lengths.txt"):
        load_tvb_connectome(bad, nodes)


def _jr_rhs(t, y, A, B, mu, a=0.1, b=0.05, e0=0.0025, v0=6.0, r=0.56, C=135.0):
    """Jansen-Rit, TVB's form, written out independently (6 states)."""
    def S(v):
        return 2 * e0 / (1 + np.exp(r * (v0 - v)))
    y0, y1, y2, y3, y4, y5 = y
    return [y3, y4, y5,
            A * a * S(y1 - y2) - 2 * a * y3 - a * a * y0,
            A * a * (mu + 0.8 * C * S(C * y0)) - 2 * a * y4 - a * a * y1,
            B * b * 0.25 * C * S(0.25 * C * y0) - 2 * b * y5 - b * b * y2]


def test_heun_integration_matches_an_independent_ode_solver():
    """Noise off, one node: the Numba Heun scheme against scipy's RK45 at tight tolerance."""
    conn = Connectome(weights=np.zeros((1, 1)), lengths_mm=np.zeros((1, 1)), velocity=3.0,
                      source="one node")
    p = NodeParams.default(1, mu=0.22, noise=0.0)
    m = BrainModel(conn, p, coupling=0.0, sfreq=2000.0, seed=3)
    y_init = m.y[0, [0, 1, 2, 5, 6, 7]].copy()
    v = m.run(800)[:, 0]  # 400 ms
    t = np.arange(1, 801) * 0.5
    ref = solve_ivp(_jr_rhs, (0, 400), y_init, t_eval=t, args=(3.25, 22.0, 0.22),
                    rtol=1e-9, atol=1e-9)
    v_ref = ref.y[1] - ref.y[2]
    assert np.max(np.abs(v - v_ref)) < 0.05 * np.ptp(v_ref)


def _cortical_spectrum(v, nodes):
    x = v[:, nodes.cortical] - v[:, nodes.cortical].mean(0)
    f, p = welch(x, fs=FS, nperseg=int(2 * FS), axis=0)
    return f, np.median(p, axis=1)


def test_spontaneous_background_has_an_alpha_peak(nodes, conn):
    sim = RegimeSimulation("spontaneous", FS, seed=11, nodes=nodes, connectome=conn)
    sim.run(int(FS))
    v = sim.run(int(6 * FS))
    f, p = _cortical_spectrum(v, nodes)
    band = (f >= 2) & (f <= 40)
    peak = f[band][np.argmax(p[band])]
    assert 8.0 <= peak <= 12.5
    alpha = p[(f >= 8) & (f <= 12.5)].mean()
    assert alpha > 5 * p[(f >= 2) & (f <= 5)].mean() and alpha > 5 * p[(f >= 20) & (f <= 30)].mean()
    assert sum(len(detect_spikes(v[:, i])) for i in range(nodes.n_nodes)) <= 2


@pytest.mark.parametrize("focus", ["PrG_6_3_L", "Tha_8_5_R"])
def test_interictal_focus_spikes_and_remote_regions_do_not(nodes, conn, focus):
    sim = RegimeSimulation("interictal", FS, seed=4, foci=[focus], nodes=nodes, connectome=conn)
    sim.run(int(FS))
    v = sim.run(int(10 * FS))
    i = nodes.index(focus)
    n_spikes = np.array([len(detect_spikes(v[:, k])) for k in range(nodes.n_nodes)])
    assert n_spikes[i] >= 5  # at least one spike every two seconds
    remote = nodes.distances_mm()[i] > 40.0
    assert n_spikes[remote].sum() == 0
    # spikes are brief, large transients: the focus' peaks stand far above its median
    peaks = detect_spikes(v[:, i])
    assert np.median(v[peaks, i]) - np.median(v[:, i]) > 8.0


def test_ictal_focus_discharges_rhythmically(nodes, conn):
    sim = RegimeSimulation("ictal", FS, seed=5, foci=["STG_6_3_R"], nodes=nodes, connectome=conn)
    sim.run(int(FS))
    v = sim.run(int(8 * FS))
    i = nodes.index("STG_6_3_R")
    x = v[:, i] - v[:, i].mean()
    f, p = welch(x, fs=FS, nperseg=int(2 * FS))
    band = (f >= 1) & (f <= 40)
    peak = f[band][np.argmax(p[band])]
    assert 2.0 <= peak <= 8.0  # a slow rhythmic discharge, not the alpha background
    near_peak = (np.abs(f - peak) <= 1.0)
    assert p[near_peak].sum() > 0.5 * p[band].sum()
    background_sd = np.median(v[:, nodes.cortical].std(0))
    assert x.std() > 3 * background_sd
    remote = nodes.distances_mm()[i] > 40.0
    assert sum(len(detect_spikes(v[:, k])) for k in np.flatnonzero(remote)) == 0


def test_evoked_thalamic_input_reaches_its_cortex_with_a_delay(nodes, conn):
    sim = RegimeSimulation("evoked", FS, seed=2, foci=["Stha_L"], nodes=nodes, connectome=conn)
    v = sim.run(int(16 * FS))
    onsets = [o for o in sim.onsets if int(0.2 * FS) <= o < len(v) - int(0.4 * FS)]
    assert len(onsets) >= 10
    pre, post = int(0.1 * FS), int(0.3 * FS)
    ep = np.stack([v[o - pre:o + post] for o in onsets])
    erp = ep.mean(0) - ep[:, :pre].mean((0, 1))
    th = nodes.index("Stha_L")
    targets = [nodes.index(t) for t in sim.truth_regions[1:]]
    assert targets and all(nodes.names[t].startswith(("PoG", "PCL")) for t in targets)
    far = [k for k in np.flatnonzero(nodes.cortical)
           if nodes.names[k].startswith(("MVOcC", "LOcC")) and nodes.names[k].endswith("_R")]
    ctx = np.abs(erp[:, targets]).mean(1)
    remote = np.abs(erp[:, far]).mean(1)
    t_th = (np.argmax(np.abs(erp[:, th])) - pre) / FS * 1000
    t_ctx = (np.argmax(ctx) - pre) / FS * 1000
    baseline = ctx[:pre].max()
    assert np.abs(erp[:, th]).max() > 3.0  # the relay bursts (mV)
    assert ctx.max() > 3 * baseline and ctx.max() > 2 * remote.max()
    # the cortex answers after the thalamus, within a plausible thalamo-cortical latency
    assert 0 < t_th < t_ctx and 10.0 <= t_ctx <= 200.0


def test_regimes_are_reproducible_and_validated(nodes, conn):
    a = RegimeSimulation("interictal", FS, seed=9, nodes=nodes, connectome=conn)
    b = RegimeSimulation("interictal", FS, seed=9, nodes=nodes, connectome=conn)
    assert a.foci == b.foci and np.array_equal(a.run(200), b.run(200))
    with pytest.raises(ValueError, match="dynamics.*'ictal'"):
        RegimeSimulation("ictall", FS, nodes=nodes, connectome=conn)
    with pytest.raises(ValueError, match="thalamic"):
        RegimeSimulation("evoked", FS, foci=["PrG_6_3_L"], nodes=nodes, connectome=conn)
    with pytest.raises(ValueError, match="sfreq = 300.*divide"):
        RegimeSimulation("spontaneous", 300.0, nodes=nodes, connectome=conn)
