"""File player: a FIF written by MNE replayed on real LSL and read back exactly."""

from __future__ import annotations

import time

import mne
import numpy as np
import pytest

from rtsource.stream.lslio import EEGInlet, StreamLostError, resolve_stream
from rtsource.stream.player import Player

pytestmark = pytest.mark.lsl

EEG = ["Fp1", "Fz", "Cz", "T7", "O2"]


def _write_fif(path, n_times: int = 250, sfreq: float = 250.0):
    rng = np.random.default_rng(11)
    names = [*EEG, "index", "STI 014"]
    info = mne.create_info(names, sfreq, ["eeg"] * len(EEG) + ["misc", "stim"])
    data = np.zeros((len(names), n_times))
    data[: len(EEG)] = rng.standard_normal((len(EEG), n_times)) * 2e-5
    data[len(EEG)] = np.arange(n_times)  # sample index: proves no drop / duplicate
    data[len(EEG) + 1, ::50] = 3
    raw = mne.io.RawArray(data, info, verbose="error")
    raw.set_montage("colin27_1005", verbose="error")
    fname = path / "rec_raw.fif"
    raw.save(fname, verbose="error")
    return fname, mne.io.read_raw_fif(fname, preload=True, verbose="error")


def test_player_loops_and_reproduces_samples_and_metadata(tmp_path, lsl):
    fname, raw = _write_fif(tmp_path)
    expected = raw.get_data().T.astype(np.float32)
    n_times = len(expected)
    name = lsl.unique("rts-play")
    player = Player(fname, name=name, speed=5.0, loop=True, source_id=name).start()
    try:
        inlet = EEGInlet(resolve_stream(name=name, timeout=5.0))
        try:
            assert inlet.sfreq == raw.info["sfreq"]
            assert inlet.labels == raw.ch_names
            assert inlet.types == ["eeg"] * len(EEG) + ["misc", "stim"]
            assert [c.to_volts for c in inlet.channels[: len(EEG)]] == [1.0] * len(EEG)
            for ch, mne_ch in zip(inlet.channels, raw.info["chs"], strict=True):
                if ch.type == "eeg":
                    assert ch.position_source == "loc"
                    np.testing.assert_array_equal(ch.position, mne_ch["loc"][:3])
                else:
                    assert ch.position is None
            # pull a bit more than one full cycle (1 s of data at 5x: 0.2 s per cycle)
            got, ts = lsl.pull_until(inlet, n_times + 60, timeout=10.0)
        finally:
            inlet.close()
    finally:
        player.stop()
    assert len(got) >= n_times + 60
    idx = got[:, len(EEG)].astype(int)
    assert np.all(np.diff(idx) % n_times == 1)  # consecutive, wrapping at the end of file
    assert set(idx) == set(range(n_times))  # every sample seen
    np.testing.assert_array_equal(got, expected[idx])  # bit-exact float32 volts
    assert np.all(np.diff(ts) > 0)  # timestamps keep increasing across the loop
    np.testing.assert_allclose(np.median(np.diff(ts)), 1 / (250.0 * 5.0), rtol=1e-6)


def test_player_double64_plays_once_from_first_sample(tmp_path, lsl):
    fname, raw = _write_fif(tmp_path, n_times=200)
    name = lsl.unique("rts-play")
    # 0.4 s of replay, then the outlet lingers 1.5 s so the inlet can drain it
    player = Player(
        fname,
        name=name,
        speed=2.0,
        loop=False,
        source_id=name,
        dtype="double64",
        wait_for_consumer_s=5.0,
        linger_s=1.5,
    ).start()
    inlet = EEGInlet(resolve_stream(name=name, timeout=5.0), dtype=np.float64)
    try:
        assert inlet.channel_format == "double64"
        got, _ = lsl.pull_until(inlet, 200, timeout=10.0)
        np.testing.assert_array_equal(got, raw.get_data().T)  # exact file values (volts)
        assert player.wait(timeout=10.0) and player.n_pushed == 200
        deadline = time.monotonic() + 5.0
        with pytest.raises(StreamLostError):  # the stream ends with the file
            while time.monotonic() < deadline:
                inlet.pull(timeout=0.05)
    finally:
        inlet.close()
        player.stop()


def test_player_rejects_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Player(tmp_path / "missing_raw.fif")
    fname, _ = _write_fif(tmp_path, n_times=10)
    with pytest.raises(ValueError, match="speed must be a positive"):
        Player(fname, speed=0)
    with pytest.raises(ValueError, match="dtype='int8' is not valid"):
        Player(fname, dtype="int8")
