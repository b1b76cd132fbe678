"""Evaluation metrics on hand-made maps (a small 7 mm lattice, no head model needed)."""

from __future__ import annotations

import numpy as np
import pytest

from rtsource.evaluate import (
    auc_close_far,
    emd,
    grid_neighbours,
    local_maxima,
    localisation_error,
    nemd,
    nmse,
    sample_metrics,
    weighted_cosine_error,
)

SPACING = 7.0


@pytest.fixture(scope="module")
def lattice():
    """A 9×9×9 lattice at 7 mm: voxel indices, positions (mm) and neighbours."""
    ijk = np.stack(np.meshgrid(*[np.arange(9)] * 3, indexing="ij"), -1).reshape(-1, 3)
    pos = ijk * SPACING
    return ijk, pos.astype(float), grid_neighbours(ijk)


def blob(pos, centre_idx, sigma_mm=8.0, ori=(0.0, 0.0, 1.0)):
    d2 = ((pos - pos[centre_idx]) ** 2).sum(1)
    prof = np.exp(-d2 / (2 * sigma_mm**2))
    return prof[:, None] * np.asarray(ori)[None]


def index_of(ijk, i, j, k):
    return int(np.flatnonzero((ijk == (i, j, k)).all(1))[0])


def test_perfect_prediction(lattice):
    ijk, pos, nb = lattice
    x = blob(pos, index_of(ijk, 4, 4, 4)) + 0.5 * blob(pos, index_of(ijk, 1, 1, 6), 5.0,
                                                        (1.0, 0.0, 0.0))
    m = sample_metrics(x, x.copy(), pos, nb)
    assert m["nemd"] == pytest.approx(0.0, abs=1e-9)
    assert m["nmse"] == pytest.approx(0.0, abs=1e-12)
    assert m["auc"] == pytest.approx(1.0)
    assert m["mle_mm"] == pytest.approx(0.0)
    assert m["wcos_err"] == pytest.approx(0.0, abs=1e-12)


def test_uniform_map_has_nemd_one(lattice):
    ijk, pos, _ = lattice
    x = blob(pos, index_of(ijk, 2, 5, 3))
    flat = np.ones_like(x)
    assert nemd(x, flat, pos) == pytest.approx(1.0, rel=1e-9)


def test_shifted_peak_mle_equals_shift(lattice):
    ijk, pos, nb = lattice
    x = blob(pos, index_of(ijk, 4, 4, 4), sigma_mm=6.0)
    last = 0.0
    for shift in ((1, 0, 0), (1, 1, 0), (2, 0, 0), (0, 3, -2)):
        y = blob(pos, index_of(ijk, *(np.array((4, 4, 4)) + shift)), sigma_mm=6.0)
        expected = SPACING * np.linalg.norm(shift)
        assert localisation_error(x, y, pos, nb) == pytest.approx(expected)
        # a shifted map moves all its mass by the shift (up to the lattice's edges)
        value = nemd(x, y, pos)
        if max(map(abs, shift)) <= 2:  # further out the lattice's edges cut the blob
            assert value * emd(np.ones(len(pos)), np.linalg.norm(x, axis=1), pos) == \
                pytest.approx(expected, rel=2e-3)
        assert value > last
        last = value


def test_mle_pairs_several_sources(lattice):
    ijk, pos, nb = lattice
    a, b = index_of(ijk, 1, 1, 1), index_of(ijk, 7, 7, 7)
    x = blob(pos, a, 5.0) + blob(pos, b, 5.0)
    # estimate: both peaks moved by one voxel along x, listed in the other order
    y = blob(pos, index_of(ijk, 6, 7, 7), 5.0) + blob(pos, index_of(ijk, 2, 1, 1), 5.0)
    assert localisation_error(x, y, pos, nb) == pytest.approx(SPACING)
    # an estimate with a single peak: the missing source counts its distance to that peak
    z = blob(pos, a, 5.0)
    expected = 0.5 * (0.0 + np.linalg.norm(pos[a] - pos[b]))
    assert localisation_error(x, z, pos, nb) == pytest.approx(expected)


def test_emd_point_masses_and_exactness(lattice):
    _, pos, _ = lattice
    p = np.zeros(len(pos))
    q = np.zeros(len(pos))
    p[0], q[10] = 1.0, 1.0
    assert emd(p, q, pos) == pytest.approx(np.linalg.norm(pos[0] - pos[10]))
    # the difference-support solution equals the full problem (shared mass moves for free)
    import ot
    from scipy.spatial.distance import cdist

    rng = np.random.default_rng(0)
    idx = rng.choice(len(pos), 60, replace=False)
    sub = pos[idx]
    a, b = rng.random(60), rng.random(60)
    full = ot.emd2(a / a.sum(), b / b.sum(), cdist(sub, sub))
    assert emd(a, b, sub) == pytest.approx(full, rel=1e-7)
    assert emd(a, b, sub) == pytest.approx(emd(b, a, sub), rel=1e-7)


def test_nmse_is_scale_free_and_bounded():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 3))
    assert nmse(x, 3.7 * x) == pytest.approx(0.0, abs=1e-12)
    assert nmse(x, -x) == pytest.approx(1.0)  # no positive scale helps: as bad as zero
    assert nmse(x, np.zeros_like(x)) == pytest.approx(1.0)
    assert 0.0 < nmse(x, x + rng.normal(size=x.shape)) < 1.0


def test_weighted_cosine_error():
    x = np.array([[1.0, 0, 0], [0, 3.0, 0], [0, 0, 0]])
    assert weighted_cosine_error(x, -x) == pytest.approx(2.0)
    y = np.array([[1.0, 0, 0], [3.0, 0, 0], [5.0, 5.0, 5.0]])  # second vector orthogonal
    assert weighted_cosine_error(x, y) == pytest.approx(1.0 - 0.25)


def test_auc_detects_reversed_and_blurred_maps(lattice):
    ijk, pos, _ = lattice
    x = blob(pos, index_of(ijk, 4, 4, 4), 6.0)
    mag = np.linalg.norm(x, axis=1)
    assert auc_close_far(x, (mag.max() - mag)[:, None] * [1, 0, 0], pos) == pytest.approx(0.0)
    wide = blob(pos, index_of(ijk, 4, 4, 4), 25.0)
    # a wider blob at the right place still ranks every active source above every inactive one
    assert auc_close_far(x, wide, pos) == pytest.approx(1.0)
    off = blob(pos, index_of(ijk, 7, 7, 7), 6.0)
    assert auc_close_far(x, off, pos) < 0.75


def test_local_maxima_and_neighbours(lattice):
    ijk, pos, nb = lattice
    centre = index_of(ijk, 4, 4, 4)
    assert (nb[centre] >= 0).sum() == 26
    assert (nb[index_of(ijk, 0, 0, 0)] >= 0).sum() == 7
    a, b = index_of(ijk, 1, 1, 1), index_of(ijk, 7, 7, 7)
    m = np.linalg.norm(blob(pos, a, 5.0) + 0.5 * blob(pos, b, 5.0), axis=1)
    assert list(local_maxima(m, nb)) == [a, b]  # strongest first
    assert list(local_maxima(m, nb, rel_threshold=0.6)) == [a]
    assert local_maxima(np.zeros(len(pos)), nb).size == 0


# ----------------------------------------------------------------- evaluation sweep
def test_inverse_crime_is_flagged():
    import warnings

    from rtsource.config import HeadModelConfig
    from rtsource.evaluate import EvalConfig, InverseCrimeWarning, check_inverse_crime
    from rtsource.train import TrainConfig

    header = {"training_config": TrainConfig().to_dict()}
    held_out = EvalConfig()  # sphere 0.332/0.0113/0.332, GSN-HydroCel-129
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_inverse_crime(held_out, {"net": header}) == []
    same = EvalConfig(headmodel=HeadModelConfig(montage="biosemi64", conductor="bem",
                                                conductivity=(0.3, 0.006, 0.3), bem_ico=4))
    with pytest.warns(InverseCrimeWarning, match="inverse crime"):
        msgs = check_inverse_crime(same, {"net": header})
    assert "same montage" in msgs[0]


@pytest.mark.slow
def test_evaluate_command_end_to_end(tmp_path, capsys):
    """`rtsource evaluate` on a (untrained) checkpoint: files, table, inverse-crime warning."""
    import csv

    import torch

    from rtsource.cli import main
    from rtsource.models.checkpoint import save_checkpoint
    from rtsource.models.piunet import PIUNet
    from rtsource.train import TrainConfig

    torch.set_num_threads(1)
    torch.manual_seed(0)
    path = tmp_path / "net.safetensors"
    training = TrainConfig().to_dict()
    training["simulate"]["headmodels"].append(
        {"conductor": "sphere", "conductivity": [0.332, 0.0113, 0.332], "bem_ico": 4})
    save_checkpoint(PIUNet(8), path, spacing_mm=7.0, training_config=training)
    out = tmp_path / "eval"
    rc = main(["evaluate", "--checkpoint", f"untrained={path}", "--sweeps", "snr_db",
               "--n-samples", "1", "--baselines", "eloreta,dspm", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "inverse crime" in text and "| condition |" in text
    for name in ("samples.csv", "summary.csv", "report.md", "meta.json", "sweep_snr_db.png"):
        assert (out / name).stat().st_size > 0
    rows = list(csv.DictReader(open(out / "summary.csv")))
    assert len(rows) == 5 * 3  # five SNRs × (network + two baselines)
    elo = {float(r["snr_db"]): float(r["nemd"]) for r in rows if r["method"] == "eloreta"}
    assert all(0.0 < v < 1.2 for v in elo.values())
    report = (out / "report.md").read_text()
    assert "Warning" in report
    import json

    meta = json.loads((out / "meta.json").read_text())
    assert meta["host"]["cpu"] and meta["host"]["cpu_count"] >= 1 and meta["wall_s"] >= 0
    assert (meta["backend"], meta["precision"]) == ("eager", "fp32")
    assert f"Run on {meta['host']['cpu']}" in report
    # the snr_db sweep holds the one-source rows of the targets (not 3 or 10 sources)
    assert "Targets for untrained" in report and "1 source, 20 dB" in report
    assert "3 sources" not in report


def _summary(values):
    """EvalResult with summary rows {(method, n_sources, snr_db): (nemd, mle_mm, auc)}."""
    from rtsource.evaluate import EvalResult

    rows = [{"sweep": "x", "condition": f"{n} {snr}", "n_sources": n, "extent_mm": "5-40",
             "snr_db": snr, "method": m, "nemd": v[0], "mle_mm": v[1], "auc": v[2]}
            for (m, n, snr), v in values.items()]
    return EvalResult(rows=[], summary=rows, meta={})


def test_peak_targets_reached_and_missed():
    from rtsource.evaluate import peak_targets, targets_markdown

    vals = {}
    for snr in (0.0, 5.0, 10.0, 20.0):
        vals[("eloreta", 1, snr)] = (0.8, 20.0, 0.90)
        vals[("dspm", 1, snr)] = (0.7, 30.0, 0.80)
        vals[("net", 1, snr)] = (0.39, 19.0, 0.91)
    vals[("net", 1, 20.0)] = (0.39, 21.0, 0.91)      # MLE worse than eLORETA at 20 dB
    vals[("net", 1, 5.0)] = (0.60, 25.0, 0.91)       # NEMD beats all, MLE beats dSPM only
    vals[("dspm", 1, 5.0)] = (0.7, 26.0, 0.80)
    for n, net in ((3, (0.70, 40.0, 0.85)), (10, (0.80, 50.0, 0.70))):
        vals[("eloreta", n, 10.0)] = (0.75, 40.0, 0.84)
        vals[("dspm", n, 10.0)] = (0.75, 40.0, 0.84)
        vals[("net", n, 10.0)] = net
    rows = {r["target"].split(":")[0]: r for r in peak_targets(_summary(vals), "net")}
    assert rows["1 source, 10 dB"]["reached"] is True
    assert rows["1 source, 20 dB"]["reached"] is False
    assert rows["3 sources, 10 dB"]["reached"] is True
    assert rows["10 sources, 10 dB"]["reached"] is False   # 0.80 > 0.75
    assert rows["1 source, 0 dB"]["reached"] is True
    assert rows["1 source, 5 dB"]["reached"] is False
    assert rows["1 source, 5 dB"]["reference"] == "NEMD 0.700 (dspm), MLE (mm) 20.0 (eloreta)"
    assert "(½: 0.400)" in rows["1 source, 10 dB"]["reference"]
    assert "| **no** |" in targets_markdown(_summary(vals), "net")
    # conditions not evaluated: no rows
    only = {k: v for k, v in vals.items() if k[1] == 3}
    assert [r["target"][:9] for r in peak_targets(_summary(only), "net")] == ["3 sources"]
