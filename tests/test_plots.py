"""``rtsource localize --plot`` and the glass-brain projections behind it."""

from __future__ import annotations

import mne
import numpy as np
import pytest

import rtsource
from rtsource.cli import main
from rtsource.headmodel.grid import SourceGrid
from rtsource.viewer.glass import VIEWS, Projector, heat_rgba, template_outline
from rtsource.viewer.plot import peak_time_index, plot_result

SFREQ = 250.0
SOURCE = 2700


def _evoked_like(hm, n_times=150, seed=1):
    """A dipole at grid point SOURCE whose amplitude peaks at sample 90, plus noise (V)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_times)
    env = np.exp(-0.5 * ((t - 90) / 8.0) ** 2)
    topo = hm.gain[:, SOURCE] @ np.array([0.0, 0.6, 0.8])
    x = topo[:, None] * env[None] * (20e-6 / np.abs(topo).max())
    return x + rng.normal(scale=0.2e-6, size=x.shape)


def test_projector_peaks_and_outline(sphere_model):
    grid = SourceGrid.from_headmodel(sphere_model)
    proj = Projector(grid.shape, grid.affine_mri)
    d = np.linalg.norm(grid.pos_mri_mm - grid.pos_mri_mm[SOURCE], axis=1)
    vol = grid.to_volume(np.exp(-(d ** 2) / 300.0))
    true = grid.pos_mri_mm[SOURCE]
    for view, (h_mm, v_mm) in proj.peak_mm(vol).items():
        _, _, h, v = next(x for x in VIEWS if x[0] == view)
        assert (h_mm, v_mm) == pytest.approx((true[h], true[v]), abs=1e-6)
    outline = template_outline(proj)
    assert "BN246" in outline.source and "AAL3" in outline.source
    for view, *_ in VIEWS:
        img = outline.images[view]
        # the brain fills a good part of its box and its edge is drawn
        assert 0.3 < (img > 0).mean() < 0.95 and outline.edges[view].sum() > 100
    with pytest.raises(ValueError, match="axis-aligned"):
        Projector(grid.shape, np.array([[0, 7, 0, 0], [7, 0, 0, 0], [0, 0, 7, 0],
                                        [0, 0, 0, 1.0]]))
    rgba = heat_rgba(np.array([[0.0, 0.4], [0.6, 1.0]]), vmax=1.0, threshold=0.5)
    assert list(rgba[..., 3].ravel()) == [0, 0, 235, 235]  # below the threshold: transparent


def test_plot_result_and_localize_command(sphere_model, tmp_path, capsys):
    x = _evoked_like(sphere_model)
    info = mne.create_info(sphere_model.ch_names, SFREQ, "eeg")
    raw = mne.io.RawArray(x, info, verbose=False)
    raw.set_montage("biosemi128")
    res = rtsource.localize(raw, config={"headmodel": {"conductor": "sphere"},
                                         "stream": {"highpass_hz": None, "lowpass_hz": None,
                                                    "notch_hz": None}})
    assert abs(peak_time_index(res) - 90) <= 3
    fig = plot_result(res, tmp_path / "direct.png", n_top=4)
    assert len(fig.axes) == 5  # three projections, colour bar, time courses
    lines = fig.axes[4].get_lines()
    assert [ln.get_label() for ln in lines[:4]] == [
        res.region_names[j] for j in np.argsort(res.regions.mean(0))[::-1][:4]]
    with pytest.raises(ValueError, match="threshold"):
        plot_result(res, threshold=1.5)

    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose=False)
    png = tmp_path / "plot.png"
    assert main(["localize", str(path), "--conductor", "sphere", "--top", "3",
                 "--plot", str(png)]) == 0
    assert f"saved {png}" in capsys.readouterr().out
    assert png.stat().st_size > 20_000
