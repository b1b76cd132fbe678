"""The source-volume outlet (``run --publish-volume``) over real loopback LSL, and the
brain viewer reading it (Qt offscreen)."""

from __future__ import annotations

import dataclasses

import mne
import numpy as np
import pylsl
import pytest

import rtsource
from rtsource.config import HeadModelConfig, load_config
from rtsource.headmodel import build_headmodel
from rtsource.headmodel.grid import SourceGrid
from rtsource.stream.player import Player
from rtsource.stream.volume_outlet import VolumeOutlet, read_volume_layout

SFREQ = 250.0
MONTAGE = "biosemi32"
SOURCE = 3100  # the simulated dipole's grid point


@pytest.fixture(scope="module")
def model32():
    return build_headmodel(HeadModelConfig(montage=MONTAGE, conductor="sphere"),
                           progress=False)


def dipole_raw(hm, n_times=int(30 * SFREQ), src=SOURCE, rotating=False) -> mne.io.RawArray:
    """A 10 Hz dipole at grid point ``src``, about 20 µV at the strongest electrode;
    ``rotating``: its orientation turns at 10 Hz, so its strength never passes through 0."""
    q = np.array([0.3, -0.5, 0.8])
    q2 = np.cross(q, [1.0, 0.0, 0.0])
    t = np.arange(n_times) / SFREQ
    topo = hm.gain[:, src] @ (q / np.linalg.norm(q))
    data = topo[:, None] * np.sin(2 * np.pi * 10 * t)[None]
    if rotating:
        topo2 = hm.gain[:, src] @ (q2 / np.linalg.norm(q2))
        data = data + topo2[:, None] * np.cos(2 * np.pi * 10 * t)[None]
    data *= 20e-6 / np.abs(data).max()
    raw = mne.io.RawArray(data, mne.create_info(hm.ch_names, SFREQ, "eeg"), verbose=False)
    raw.set_montage(MONTAGE)
    return raw


def live_cfg(lsl, name, **stream):
    """Sphere head model, 32 channels; no flat-channel check (a noiseless dipole leaves
    some channels nearly flat)."""
    cfg = load_config(headmodel={"montage": MONTAGE, "conductor": "sphere"},
                      stream={"input": name, "output": lsl.unique("out"), **stream})
    return dataclasses.replace(cfg, stream=dataclasses.replace(cfg.stream, flat_uv=None))


@pytest.fixture(scope="module")
def live(lsl, model32):
    """One live session for the tests below: a looping rotating dipole played on LSL, the
    pipeline with ``volume_hz = 10`` (one volume per 25 samples at 250 Hz) reading it."""
    raw = dipole_raw(model32, rotating=True)
    name = lsl.unique("dip")
    player = Player("dipole.fif", name=name, raw=raw, source_id=name, loop=True,
                    wait_for_consumer_s=30.0)
    player.start()
    cfg = live_cfg(lsl, name, volume_hz=10.0)
    pipe, regions, markers = lsl.open_pipeline(cfg, montage=MONTAGE)
    try:
        yield pipe, regions, player, raw, cfg
    finally:
        lsl.close_all(pipe, regions, markers)
        player.stop()


@pytest.mark.lsl
def test_pipeline_publishes_the_source_volume(lsl, model32, live):
    pipe, regions, player, raw, cfg = live
    info = rtsource.stream.resolve_stream(name=f"{pipe.output_name}-volume", timeout=10)
    inlet = pylsl.StreamInlet(info, max_buflen=30)
    try:
        full = inlet.info(timeout=5.0)
        inlet.open_stream(timeout=5.0)
        vols, stamps = [], []

        def pulled_enough():
            chunk, ts = inlet.pull_chunk(timeout=0.05)
            if ts:
                vols.extend(chunk)
                stamps.extend(ts)
            regions.poll(timeout=0.0)
            return len(stamps) >= 6

        assert lsl.wait_until(pulled_enough, timeout=30.0), len(stamps)
    finally:
        inlet.close_stream()
    # the contract: type, rate, channel count and layout, provenance
    layout = read_volume_layout(full)
    grid = SourceGrid.from_headmodel(model32)
    assert full.type() == "SourceVolume" and full.channel_format() == pylsl.cf_float32
    assert full.nominal_srate() == pytest.approx(SFREQ / 25)  # 250 Hz / round(250 / 10)
    assert layout["shape"] == grid.shape and full.channel_count() == np.prod(grid.shape)
    np.testing.assert_array_equal(layout["source_index"], grid.flat_index)
    np.testing.assert_allclose(layout["affine_mni152"], grid.affine_mni152, atol=1e-5)
    assert full.source_id() == f"{pipe.outlet.source_id}-volume"
    # each volume: one per 25 published region samples, stamped with that sample's
    # capture time (input sample 0 starts the filters and is not published, so the c-th
    # published sample is input sample k = c)
    vols = np.asarray(vols).reshape(-1, *grid.shape)
    k = np.round((np.asarray(stamps) - player.t0) * SFREQ).astype(int)
    assert (k % 25 == 0).all(), k
    assert k.max() < raw.n_times  # still the recording's first pass
    # values: |J| of exactly what rtsource.localize computes for those samples
    res = rtsource.localize(raw.get_data()[:, : k.max() + 1], ch_names=raw.ch_names,
                            sfreq=SFREQ, montage=MONTAGE, config=cfg, filters=True)
    expect = grid.to_volume(np.linalg.norm(res.sources[k], axis=-1))
    np.testing.assert_allclose(vols, expect, rtol=2e-4, atol=2e-4 * expect.max())
    # the brightest voxel is the dipole's
    for v in vols:
        assert np.unravel_index(v.argmax(), grid.shape) == tuple(grid.ijk[SOURCE])


def test_volume_outlet_rejects_bad_input(lsl):
    with pytest.raises(ValueError, match="rate > 0"):
        VolumeOutlet(lsl.unique("v"), (2, 2, 2), [0, 3], 0.0, {}, {}, lsl.unique("s"))
    with pytest.raises(ValueError, match="distinct flat indices"):
        VolumeOutlet(lsl.unique("v"), (2, 2, 2), [0, 8], 5.0, {}, {}, lsl.unique("s"))
    out = VolumeOutlet(lsl.unique("v"), (2, 2, 2), [0, 3], 5.0, {}, {}, lsl.unique("s"))
    try:
        with pytest.raises(ValueError, match=r"\(n_volumes, 2\)"):
            out.push(np.zeros((1, 3)), [1.0])
        with pytest.raises(ValueError, match="NaN"):
            out.push(np.array([[np.nan, 1.0]]), [1.0])
    finally:
        out.close()
    with pytest.raises(ValueError, match="stream.volume_hz = -1"):
        load_config(stream={"volume_hz": -1})


# -- the brain viewer ---------------------------------------------------------------------
def _viewport_rgba(viewer) -> np.ndarray:
    """The rendered window (its graphics viewport) as an (h, w, 4) uint8 array."""
    from pyqtgraph.Qt import QtGui

    img = viewer.win.viewport().grab().toImage().convertToFormat(
        QtGui.QImage.Format.Format_RGBA8888)
    w, h = img.width(), img.height()
    arr = np.frombuffer(img.constBits(), np.uint8).reshape(h, img.bytesPerLine() // 4, 4)
    return arr[:, :w].copy()


def _hottest_mm(viewer, rgba, view):
    """MRI mm (horizontal, vertical) of the hottest pixel drawn in ``view``, read from the
    rendered picture (colour table: R + G - 2B rises with the value)."""
    from pyqtgraph.Qt import QtCore

    vb = viewer.views[view].getViewBox()
    rect = viewer.win.mapFromScene(vb.sceneBoundingRect()).boundingRect()
    x0, y0 = max(rect.left(), 0), max(rect.top(), 0)
    crop = rgba[y0: rect.bottom(), x0: rect.right()].astype(int)
    score = crop[..., 0] + crop[..., 1] - 2 * crop[..., 2]
    assert score.max() > 100, f"{view}: nothing hot drawn (max score {score.max()})"
    ys, xs = np.nonzero(score >= score.max() - 10)
    px = QtCore.QPoint(int(round(xs.mean())) + x0, int(round(ys.mean())) + y0)
    pt = vb.mapSceneToView(viewer.win.mapToScene(px))
    return np.array([pt.x(), pt.y()]), crop


@pytest.mark.lsl
def test_brain_viewer_shows_the_simulated_source(lsl, model32, live, tmp_path):
    pytest.importorskip("pyqtgraph")
    pytest.importorskip("PySide6")
    from rtsource.viewer.brain import BrainViewer
    from rtsource.viewer.glass import VIEWS

    pipe, regions = live[0], live[1]
    viewer = None
    try:
        resolve = rtsource.stream.resolve_stream
        viewer = BrainViewer(resolve(name=f"{pipe.output_name}-volume", timeout=10),
                             resolve(name=pipe.output_name, timeout=10),
                             resolve(name=pipe.marker_name, timeout=10), threshold=0.6)

        def drawn():
            viewer.update()
            viewer.app.processEvents()
            regions.poll(timeout=0.0)
            return viewer.n_volumes >= 5 and viewer.n_region_samples > 100

        assert lsl.wait_until(drawn, timeout=30.0, interval=0.02)
        rgba = _viewport_rgba(viewer)
        viewer.win.grab().save(str(tmp_path / "brain.png"))
        # not blank: the outline and the heat are drawn, many colours
        assert len(np.unique(rgba.reshape(-1, 4), axis=0)) > 50
        true_mm = model32.src_pos_mri[SOURCE] * 1e3
        for view, _, h, v in VIEWS:
            got, crop = _hottest_mm(viewer, rgba, view)
            dist = np.linalg.norm(got - true_mm[[h, v]])
            assert dist < 15.0, (view, got, true_mm[[h, v]], dist)
            assert (crop[..., :3].sum(-1) > 100).mean() > 0.05  # the outline's fill, edge
        # the top regions are listed by name; the status line shows the rates
        assert viewer.labels[viewer.top[0]] in viewer.top_label.text
        assert "frames/s" in viewer.status.text and "volumes" in viewer.status.text
    finally:
        if viewer is not None:
            viewer.close()


@pytest.mark.lsl
def test_brain_viewer_survives_a_lost_stream(lsl, model32):
    pytest.importorskip("pyqtgraph")
    pytest.importorskip("PySide6")
    from rtsource.viewer.brain import BrainViewer

    grid = SourceGrid.from_headmodel(model32)
    layout = {k: v for k, v in grid.describe().items()
              if k not in ("shape", "order", "source_index")}
    name, sid = lsl.unique("vol"), lsl.unique("vol-sid")

    def outlet():
        return VolumeOutlet(name, grid.shape, grid.flat_index, 10.0, layout, {}, sid, "A*m")

    values = np.linspace(0, 1, grid.n_sources, dtype=np.float32)[None]
    out = outlet()
    viewer = BrainViewer(rtsource.stream.resolve_stream(name=name, timeout=10),
                         lost_after_s=0.3, size=(800, 400))
    try:
        def step(cond):
            def go():
                if out._outlet is not None and out.have_consumers():
                    out.push(values, [pylsl.local_clock()])
                viewer.update()
                return cond()
            return go

        assert lsl.wait_until(step(lambda: viewer.n_volumes >= 3), timeout=10, interval=0.02)
        out.close()  # the stream disappears
        assert lsl.wait_until(step(lambda: viewer.lost), timeout=10, interval=0.02)
        viewer.update()  # the status line of a frame drawn while lost
        assert "no volume for" in viewer.status.text
        n_before = viewer.n_volumes
        out = outlet()  # it returns with the same source_id
        assert lsl.wait_until(step(lambda: viewer.n_volumes > n_before + 2), timeout=20,
                              interval=0.02)
        assert not viewer.lost and "no volume" not in viewer.status.text
        np.testing.assert_allclose(viewer.volume, grid.to_volume(values[0]))
    finally:
        viewer.close()
        out.close()


def test_publish_volume_option():
    from rtsource.cli import build_parser
    from rtsource.commands.run import _config

    parser = build_parser()
    assert _config(parser.parse_args(["run", "--publish-volume"])).stream.volume_hz == 10.0
    assert _config(parser.parse_args(["run", "--publish-volume", "4"])).stream.volume_hz == 4.0
    assert _config(parser.parse_args(["run"])).stream.volume_hz is None


@pytest.mark.lsl
def test_view_command_saves_a_screenshot(lsl, model32, tmp_path, capsys):
    """``rtsource view --screenshot`` against a region and a volume outlet fed from a thread."""
    pytest.importorskip("pyqtgraph")
    pytest.importorskip("PySide6")
    import threading

    from rtsource.cli import main
    from rtsource.stream import RegionOutlet

    grid = SourceGrid.from_headmodel(model32)
    layout = {k: v for k, v in grid.describe().items()
              if k not in ("shape", "order", "source_index")}
    name = lsl.unique("view")
    regions = RegionOutlet(name, [f"R{i}" for i in range(6)], 100.0, {}, "in", "cfg",
                           unit="A*m")
    volume = VolumeOutlet(f"{name}-volume", grid.shape, grid.flat_index, 10.0, layout, {},
                          lsl.unique("vsid"), "A*m")
    stop = threading.Event()

    def feed():
        values = np.linspace(0, 1, grid.n_sources, dtype=np.float32)[None]
        k = 0
        while not stop.wait(0.05):
            now = pylsl.local_clock()
            regions.push(np.full((5, 6), k % 7, np.float32), now - np.arange(5)[::-1] * 0.01)
            volume.push(values, [now])
            k += 1

    thread = threading.Thread(target=feed, daemon=True)
    thread.start()
    png = tmp_path / "view.png"
    try:
        assert main(["view", "--input", name, "--screenshot", str(png), "--duration", "1.5",
                     "--timeout", "5"]) == 0
    finally:
        stop.set()
        thread.join(5)
        regions.close()
        volume.close()
    assert f"Saved {png}" in capsys.readouterr().out
    assert png.stat().st_size > 20_000
    with pytest.raises(SystemExit):
        main(["view", "--threshold"])  # argparse: a value is needed
    assert main(["view", "--input", name, "--threshold", "1.5", "--timeout", "1"]) == 1
    assert "--threshold 1.5 must be a fraction" in capsys.readouterr().err
