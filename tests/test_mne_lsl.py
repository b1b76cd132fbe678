"""A real, widely used LSL client against rtsource: mne-lsl's ``PlayerLSL`` feeds
``rtsource run`` (the command, in its own process, with ``--publish-volume``) and its
``StreamLSL`` reads the region and volume outlets (labels, units, rate, timestamps, values)
over loopback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import mne
import numpy as np
import pylsl
import pytest

from rtsource.config import HeadModelConfig
from rtsource.headmodel import build_headmodel
from rtsource.headmodel.grid import SourceGrid
from rtsource.regions import load_atlas
from rtsource.stream.lslio import resolve_stream
from rtsource.stream.volume_outlet import read_volume_layout

mne_lsl = pytest.importorskip("mne_lsl")

SFREQ = 250.0
MONTAGE = "biosemi32"
SOURCE = 2950


@pytest.fixture(scope="module")
def model32():
    return build_headmodel(HeadModelConfig(montage=MONTAGE, conductor="sphere"),
                           progress=False)


def _run_command(*args: str) -> subprocess.Popen:
    """``rtsource run ...`` as a user starts it (a subprocess)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "rtsource.cli", "run", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _stop(proc: subprocess.Popen) -> tuple[int, str, str]:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
    return proc.returncode, out, err


@pytest.mark.lsl
def test_mne_lsl_player_feeds_run_and_stream_reads_it(lsl, model32, tmp_path):
    from mne_lsl.player import PlayerLSL
    from mne_lsl.stream import StreamLSL

    # a dipole whose orientation turns at 11 Hz (its strength never passes through zero,
    # so every volume peaks at it), plus sensor noise
    q1, q2 = np.array([0.5, 0.5, 0.7]), np.array([0.7, -0.7, 0.0])
    n = int(20 * SFREQ)
    t = np.arange(n) / SFREQ
    data = (np.outer(model32.gain[:, SOURCE] @ (q1 / np.linalg.norm(q1)), np.sin(22 * np.pi * t))
            + np.outer(model32.gain[:, SOURCE] @ (q2 / np.linalg.norm(q2)),
                       np.cos(22 * np.pi * t)))
    rng = np.random.default_rng(0)
    data = data * (20e-6 / np.abs(data).max()) + rng.normal(scale=0.5e-6, size=data.shape)
    raw = mne.io.RawArray(data, mne.create_info(model32.ch_names, SFREQ, "eeg"),
                          verbose=False)
    raw.set_montage(MONTAGE)
    name, out_name = lsl.unique("mnelsl-play"), lsl.unique("mnelsl-out")
    player = PlayerLSL(raw, chunk_size=10, name=name, source_id=name, annotations=False)
    player.start()
    cfg = tmp_path / "small.toml"  # no flat-channel check: a dipole leaves some nearly flat
    cfg.write_text('[headmodel]\nmontage = "biosemi32"\nconductor = "sphere"\n'
                   '[stream]\nresolve_timeout_s = 60.0\nflat_uv = false\n')
    eeg_in = pylsl.StreamInlet(resolve_stream(name=name, timeout=10.0), max_buflen=120)
    eeg_in.open_stream(timeout=5.0)
    run = _run_command("--input", name, "--config", str(cfg), "--output", out_name,
                       "--publish-volume", "5", "--wait-for-consumer", "60")
    streams, regions = [], None
    try:
        resolve_stream(name=out_name, timeout=90.0)  # the command is up
        regions = lsl.RegionReader(out_name)
        out = StreamLSL(bufsize=10.0, name=out_name).connect(timeout=10.0)
        resolve_stream(name=f"{out_name}-volume", timeout=60.0)  # announced after the regions
        vol = StreamLSL(bufsize=3.0, name=f"{out_name}-volume").connect(timeout=10.0)
        streams = [out, vol]
        in_ts: list[float] = []

        def enough():
            _, ts = eeg_in.pull_chunk(timeout=0.0, max_samples=4096)
            in_ts.extend(ts)
            regions.poll(timeout=0.0)
            return out.n_new_samples >= 500 and vol.n_new_samples >= 3
        assert lsl.wait_until(enough, timeout=60.0, interval=0.02)
        got, got_ts = out.get_data(winsize=1.0)  # (n_regions, n_times), (n_times,)
        vdata, vts = vol.get_data(winsize=0.4)
        # the input stamps up to the newest volume (it may refine samples pulled after the
        # last enough() call: a busy machine showed a 4 ms = one-sample gap)
        assert lsl.wait_until(lambda: in_ts.extend(eeg_in.pull_chunk(
            timeout=0.0, max_samples=4096)[1]) or (in_ts and in_ts[-1] >= vts[-1]),
            timeout=10.0, interval=0.02)
        out_info, vol_info = out.info, vol.info
        ch_names = list(out.ch_names)
        assert lsl.wait_until(lambda: (regions.poll(timeout=0.0) or True)
                              and len(regions.ts) > 0 and regions.ts[-1] >= got_ts[-1],
                              timeout=10.0)
        labels = [regions.info.desc().child("channels").child("channel")]
        while len(labels) < regions.info.channel_count():
            labels.append(labels[-1].next_sibling())
        region_names = [c.child_value("label") for c in labels]
        # mne-lsl's own liblsl binding reads the outlet's channel metadata
        from mne_lsl.lsl import StreamInlet, resolve_streams

        m_inlet = StreamInlet(resolve_streams(name=out_name, timeout=5.0)[0])
        m_inlet.open_stream(timeout=5.0)
        m_sinfo = m_inlet.get_sinfo(timeout=5.0)
        m_units, m_types = m_sinfo.get_channel_units(), m_sinfo.get_channel_types()
        m_stype, m_format = m_sinfo.stype, m_sinfo.dtype
        m_inlet.close_stream()
        volume_sinfo = pylsl.StreamInlet(resolve_stream(
            name=f"{out_name}-volume", timeout=5.0)).info(5.0)
    finally:
        for st in streams:
            st.disconnect()
        eeg_in.close_stream()
        if regions is not None:
            regions.close()
        code, stdout, stderr = _stop(run)
        player.stop()
    assert code == 0, stderr
    # PlayerLSL's stream was accepted with its electrode positions (mne-lsl's loc)
    assert "32 of 32 EEG channels: 32 from MNE loc" in stdout, stdout
    assert f"Publishing the source volume (21x26x21 voxels, 11466 channels) on " \
           f"'{out_name}-volume' at 5 Hz" in stdout, stdout
    # labels, rate, type: StreamLSL builds an mne.Info from rtsource's metadata
    assert ch_names == region_names and len(ch_names) == 246
    assert set(ch_names) == set(load_atlas("bn246").names)
    assert out_info["sfreq"] == SFREQ
    assert set(out_info.get_channel_types()) == {"misc"}  # "region" is no MNE type
    assert m_units == ["A*m (mean current-density magnitude)"] * len(region_names)
    assert m_types == ["region"] * len(region_names)
    assert m_stype == "SourceActivation" and m_format == np.float32
    # timestamps: each output sample carries the capture time of an input sample (the
    # pipeline's inlet applies LSL's clock correction: same host, microseconds)
    in_ts_arr = np.sort(np.asarray(in_ts))

    def nearest_input_gap(ts):
        i = np.clip(np.searchsorted(in_ts_arr, ts), 1, len(in_ts_arr) - 1)
        return np.minimum(np.abs(in_ts_arr[i] - ts), np.abs(in_ts_arr[i - 1] - ts))

    assert nearest_input_gap(got_ts).max() < 1e-3  # a sample period is 4 ms
    np.testing.assert_allclose(np.diff(got_ts), 1 / SFREQ, rtol=0.05)
    # values: what mne-lsl holds is what a plain pylsl inlet received for the same stamps
    idx = np.searchsorted(regions.ts, got_ts)
    np.testing.assert_array_equal(regions.ts[idx], got_ts)
    np.testing.assert_allclose(got.T, regions.data[idx], rtol=1e-6)
    # the volume stream: rate, channel count, and the reshaped volume peaks at the dipole
    layout = read_volume_layout(volume_sinfo)
    grid = SourceGrid.from_headmodel(model32)
    assert vol_info["sfreq"] == SFREQ / 50 and len(vol_info["ch_names"]) == np.prod(grid.shape)
    assert nearest_input_gap(vts).max() < 1e-3
    for v in vdata.T:
        peak = np.unravel_index(np.argmax(v.reshape(layout["shape"])), layout["shape"])
        assert np.linalg.norm(np.subtract(peak, grid.ijk[SOURCE])) <= 1.0
