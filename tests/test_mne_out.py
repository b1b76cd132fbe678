"""LocalizeResult out as MNE objects: volume source estimates and region signals."""

from __future__ import annotations

import dataclasses

import matplotlib
import mne
import numpy as np
import pytest

import rtsource
from rtsource.config import load_config
from rtsource.headmodel.grid import SourceGrid

SFREQ = 250.0


@pytest.fixture(scope="module")
def fast_cfg():
    cfg = load_config(headmodel={"conductor": "sphere"})
    return dataclasses.replace(cfg, stream=dataclasses.replace(  # noiseless: no flat check
        cfg.stream, highpass_hz=None, lowpass_hz=None, notch_hz=None, flat_uv=None))


def _dipole(hm, src, n_times=40, seed=0):
    q = np.random.default_rng(seed).normal(size=3)
    wave = np.sin(2 * np.pi * 10 * np.arange(n_times) / SFREQ) * 1e-8
    return (hm.gain[:, src] @ (q / np.linalg.norm(q)))[:, None] * wave[None]


def test_grid_volume_layout(sphere_model):
    grid = SourceGrid.from_headmodel(sphere_model)
    assert grid.n_sources == sphere_model.n_sources
    # the affine reproduces every source position (MRI mm) and its MNI152 position
    np.testing.assert_allclose(grid.pos_mri_mm, sphere_model.src_pos_mri * 1e3, atol=1e-3)
    ijk1 = np.c_[grid.ijk, np.ones(grid.n_sources)]
    np.testing.assert_allclose(ijk1 @ grid.affine_mni152[:3].T, sphere_model.src_pos_mni,
                               atol=1e-3)
    vals = np.arange(grid.n_sources, dtype=float) + 1
    vol = grid.to_volume(vals)
    assert vol.shape == grid.shape and np.count_nonzero(vol) == grid.n_sources
    i, j, k = grid.ijk[17]
    assert vol[i, j, k] == vals[17]
    with pytest.raises(ValueError, match=r"\(\.\.\., 5218\)"):
        grid.to_volume(vals[:-1])


def test_to_stc_round_trip_and_mne_plot(sphere_model, fast_cfg, tmp_path):
    matplotlib.use("Agg")
    src_idx = 2400
    x = _dipole(sphere_model, src_idx)
    res = rtsource.localize(x, ch_names=sphere_model.ch_names, sfreq=SFREQ, config=fast_cfg)
    stc = res.to_stc()
    src = res.source_spaces()
    assert isinstance(stc, mne.VolSourceEstimate) and src.kind == "volume"
    assert stc.tstep == pytest.approx(1 / SFREQ) and stc.times[0] == res.times[0]
    # values: stc rows are the sources in MNE vertex order
    order = np.argsort(res.grid.mne_vertno)
    tol = 1e-6 * np.abs(res.sources).max()
    np.testing.assert_allclose(stc.data, np.linalg.norm(res.sources, axis=-1)[:, order].T,
                               rtol=1e-6, atol=tol)
    vec = res.to_stc(vector=True)
    np.testing.assert_allclose(vec.data, res.sources[:, order].transpose(1, 2, 0), rtol=1e-6,
                               atol=tol)
    # MNE's own geometry: the peak vertex lies at the dipole's position
    vert, t_idx = stc.get_peak(vert_as_index=True, time_as_index=True)
    pos = src[0]["rr"][stc.vertices[0][vert]]
    np.testing.assert_allclose(pos, sphere_model.src_pos_mri[src_idx], atol=1e-6)
    # as_volume: a NIfTI whose voxel at the dipole holds its value
    img = stc.as_volume(src)
    assert img.shape == (*res.grid.shape, len(stc.times))
    ijk = np.round(np.linalg.inv(img.affine) @ np.r_[pos * 1e3, 1])[:3].astype(int)
    assert img.get_fdata()[(*ijk, t_idx)] == pytest.approx(stc.data[vert, t_idx], rel=1e-6)
    # MNE's matplotlib volume plot (nilearn) runs headlessly on it
    pytest.importorskip("nilearn")
    from rtsource.online.mne_out import template_image

    fig = stc.plot(src, mode="stat_map", bg_img=template_image(), show=False)
    fig.savefig(tmp_path / "stc.png")
    assert (tmp_path / "stc.png").stat().st_size > 5000
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_region_signals_keep_events_and_times(sphere_model, fast_cfg):
    x = _dipole(sphere_model, 1500, n_times=50)
    n_ep = 4
    info = mne.create_info(sphere_model.ch_names, SFREQ, "eeg")
    info.set_montage("biosemi128")
    events = np.c_[[100, 300, 500, 700], np.zeros(n_ep, int), [1, 2, 1, 2]]
    data = np.stack([x * (i + 1) for i in range(n_ep)])
    epochs = mne.EpochsArray(data, info, events=events, tmin=-0.04,
                             event_id={"left": 1, "right": 2})
    res = rtsource.localize(epochs, config=fast_cfg)
    ep = res.regions_to_mne()
    assert isinstance(ep, mne.EpochsArray)
    np.testing.assert_array_equal(ep.events, events)
    assert ep.event_id == {"left": 1, "right": 2}
    np.testing.assert_allclose(ep.times, epochs.times)
    assert ep.ch_names == res.region_names
    ev = ep["left"].average(picks="misc")
    np.testing.assert_allclose(ev.data, res.regions[[0, 2]].mean(0).T, rtol=1e-5)
    stcs = res.to_stc()
    assert len(stcs) == n_ep and stcs[0].tmin == pytest.approx(-0.04)

    evoked = epochs.average()
    res_ev = rtsource.localize(evoked, config=fast_cfg)
    out = res_ev.regions_to_mne()
    assert isinstance(out, mne.EvokedArray) and out.nave == n_ep
    np.testing.assert_allclose(out.times, evoked.times)

    # a Raw: annotations and stim channel carried over, so it can be epoched and averaged
    cont = np.tile(x, 6)
    stim = np.zeros((1, cont.shape[1]))
    stim[0, [50, 150]] = 3
    raw = mne.io.RawArray(np.vstack([cont, stim]), mne.create_info(
        sphere_model.ch_names + ["STI"], SFREQ, ["eeg"] * 128 + ["stim"]), first_samp=25)
    raw.set_montage("biosemi128")
    raw.set_annotations(mne.Annotations([0.4], [0.1], ["blink"]))
    res_raw = rtsource.localize(raw, config=fast_cfg)
    rr = res_raw.regions_to_mne()
    assert isinstance(rr, mne.io.RawArray) and rr.first_samp == 25
    assert list(rr.annotations.description) == ["blink"]
    found = mne.find_events(rr, stim_channel="STI", verbose=False)
    np.testing.assert_array_equal(found[:, 0], [75, 175])
    avg = mne.Epochs(rr, found, tmin=0, tmax=0.1, baseline=None,
                     verbose=False).average(picks="misc")
    assert avg.data.shape == (len(res_raw.region_names), 26)
    np.testing.assert_allclose(avg.data[:, 0], res_raw.regions[[50, 150]].mean(0), rtol=1e-5)
