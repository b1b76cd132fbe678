"""LiveSender: a trivial generated signal sent in real time on real LSL over loopback."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pylsl
import pytest

from rtsource.stream.lslio import (
    INDEX_LABEL,
    INDEX_MODULO,
    EEGInlet,
    StreamLostError,
    parse_channels,
    resolve_stream,
)
from rtsource.stream.sender import LiveSender, eeg_stream_info

RATE = 500.0
LABELS = ["C3", "C4"]
POS = np.array([[0.0512345678901234, 0.001, 0.0801], [-0.0498765432109876, -0.002, 0.0799]])


class Ramp(LiveSender):
    """Two EEG channels (+k and -k microvolts at sample k), the sample index, and a JSON
    marker every ``every`` samples."""

    _what = "Ramp sender"

    def __init__(self, name: str, every: int = 40, rate: float = RATE, **kwargs) -> None:
        super().__init__(name, rate, len(LABELS) + 1, name, **kwargs)
        self.every = every
        self.generated = 0

    def generate(self, n, out):
        k = np.arange(self.generated, self.generated + n)
        out[:, 0] = k * 1e-6
        out[:, 1] = -k * 1e-6
        out[:, 2] = k % INDEX_MODULO
        self.generated += n
        return out

    def stream_info(self):
        return eeg_stream_info(self.name, LABELS, RATE, self.source_id, ch_pos=POS,
                               dtype=self.dtype, manufacturer="rtsource tests")

    def marker_info(self):
        return pylsl.StreamInfo(f"{self.name}-markers", "Markers", 1, pylsl.IRREGULAR_RATE,
                                pylsl.cf_string, f"{self.source_id}-markers")

    def markers(self, start, stop):
        first = -(-start // self.every) * self.every
        return [(json.dumps({"sample": j, "timestamp": self.sample_time(j)}), j)
                for j in range(first, stop, self.every)]


def _expected(n: int, dtype=np.float32) -> np.ndarray:
    k = np.arange(n)
    return np.stack([k * 1e-6, -k * 1e-6, k % INDEX_MODULO], axis=1).astype(dtype)


def test_eeg_stream_info_describes_channels_positions_and_index(lsl):
    info = eeg_stream_info("s", LABELS, RATE, "sid", ch_pos=POS, manufacturer="maker")
    assert info.channel_count() == 3 and info.nominal_srate() == RATE
    assert info.channel_format() == pylsl.cf_float32 and info.type() == "EEG"
    assert info.desc().child_value("manufacturer") == "maker"
    chans = parse_channels(info)
    assert [c.label for c in chans] == [*LABELS, INDEX_LABEL]
    assert [c.type for c in chans] == ["eeg", "eeg", "misc"]
    assert [c.unit for c in chans] == ["volts", "volts", "none"]
    assert [c.position_source for c in chans[:2]] == ["loc", "loc"]
    np.testing.assert_array_equal([c.position for c in chans[:2]], POS)  # full precision
    assert chans[2].position is None
    # no index channel, double64, one electrode without a position
    pos = POS.copy()
    pos[1, 0] = np.nan
    info = eeg_stream_info("s", LABELS, RATE, "sid", ch_pos=pos, dtype="double64",
                           index_channel=False)
    chans = parse_channels(info)
    assert info.channel_count() == 2 and info.channel_format() == pylsl.cf_double64
    assert chans[0].position is not None and chans[1].position is None
    with pytest.raises(ValueError, match=r"ch_pos has shape \(1, 3\); expected \(2, 3\)"):
        eeg_stream_info("s", LABELS, RATE, "sid", ch_pos=POS[:1])
    with pytest.raises(ValueError, match="dtype='int16' is not valid"):
        eeg_stream_info("s", LABELS, RATE, "sid", dtype="int16")


def test_live_sender_rejects_bad_settings(lsl):
    with pytest.raises(TypeError, match="abstract"):
        LiveSender("x", RATE, 3, "x")  # generate and stream_info are hooks to fill
    with pytest.raises(ValueError, match="rate must be a positive"):
        Ramp(lsl.unique("bad"), rate=0.0)
    with pytest.raises(ValueError, match="dtype='int8' is not valid"):
        Ramp(lsl.unique("bad"), dtype="int8")
    with pytest.raises(ValueError, match="chunk_size must be at least 1 sample, got 0"):
        Ramp(lsl.unique("bad"), chunk_size=0)


def test_mismatched_stream_info_fails_the_start_clearly(lsl):
    class Wrong(Ramp):
        def stream_info(self):
            return eeg_stream_info(self.name, ["Cz"], RATE, self.source_id)

    sender = Wrong(lsl.unique("wrong"))
    with pytest.raises(RuntimeError, match="describes 2 channels .* sends 3 channels"):
        sender.start(duration_s=0.1)
    assert sender.wait(timeout=5.0) and sender.n_pushed == 0


@pytest.mark.lsl
def test_live_sender_pushes_every_sample_stamped_with_markers(lsl):
    name = lsl.unique("ramp")
    sender = Ramp(name, every=40, chunk_size=7)
    seen: list[tuple[str, int]] = []
    sender.start(duration_s=1.0, wait_for_consumer_s=10.0, linger_s=3.0,
                 record_push_times=True, on_marker=lambda text, k: seen.append((text, k)))
    markers = pylsl.StreamInlet(resolve_stream(name=f"{name}-markers", timeout=5.0))
    markers.open_stream(timeout=5.0)
    inlet = EEGInlet(resolve_stream(name=name, type="eeg", timeout=5.0))
    try:
        assert inlet.source_id == name and inlet.sfreq == RATE
        assert inlet.labels == [*LABELS, INDEX_LABEL]
        data, ts = lsl.pull_until(inlet, 500, timeout=15.0)
        assert len(ts) == 500
        np.testing.assert_array_equal(data, _expected(500))  # nothing lost, in order
        t0 = sender.t0
        np.testing.assert_allclose(ts, t0 + np.arange(500) / RATE, atol=2e-4)
        got = []
        deadline = time.monotonic() + 5.0
        while len(got) < 13 and time.monotonic() < deadline:
            m, t = markers.pull_sample(timeout=0.2)
            if m is not None:
                got.append((json.loads(m[0]), t))
        assert [msg["sample"] for msg, _ in got] == list(range(0, 500, 40))
        for msg, t in got:
            assert t == pytest.approx(t0 + msg["sample"] / RATE, abs=1e-6)
            assert msg["timestamp"] == pytest.approx(t0 + msg["sample"] / RATE, abs=1e-9)
    finally:
        inlet.close()
        markers.close_stream()
        sender.stop()
    assert sender.n_pushed == 500
    assert [k for _, k in seen] == list(range(0, 500, 40))
    log = list(sender.push_log)
    assert [k for k, _, _ in log] == list(range(0, 500, 7))
    assert [n for _, n, _ in log] == [7] * 71 + [3]
    # a chunk is pushed once the capture time of its last sample has come
    late = [t - (t0 + (k + n - 1) / RATE) for k, n, t in log]
    assert min(late) > -1e-3


@pytest.mark.lsl
def test_stop_then_run_again_continues_the_stream_double64(lsl):
    name = lsl.unique("ramp64")
    sender = Ramp(name, dtype="double64").start(wait_for_consumer_s=10.0)
    inlet = EEGInlet(resolve_stream(name=name, timeout=5.0), dtype=np.float64)
    try:
        assert inlet.channel_format == "double64"
        data, _ = lsl.pull_until(inlet, 50, timeout=10.0)
        assert len(data) >= 50
        np.testing.assert_array_equal(data, _expected(len(data), np.float64))  # exact
        sender.stop()
        assert not sender.running and sender.error is None
        with pytest.raises(StreamLostError):  # the outlet is gone with the thread
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline:
                inlet.pull(timeout=0.05)
    finally:
        inlet.close()
    before = sender.n_pushed
    # a chunk generated but not yet due when stopped is kept, never skipped
    assert sender.generated == before + sender.n_pending
    # a second run continues the sample count from the first sample not pushed
    started = pylsl.local_clock()
    stop, ready = threading.Event(), threading.Event()
    thread = threading.Thread(target=sender.run, args=(0.1,), daemon=True, kwargs=dict(
        stop_event=stop, ready_event=ready, wait_for_consumer_s=10.0, linger_s=3.0))
    thread.start()
    try:
        assert ready.wait(5.0)
        inlet = EEGInlet(resolve_stream(name=name, timeout=5.0), dtype=np.float64)
        try:
            data, ts = lsl.pull_until(inlet, 50, timeout=10.0)
        finally:
            inlet.close()
    finally:
        stop.set()
        thread.join(10.0)
    assert not thread.is_alive()
    np.testing.assert_array_equal(data, _expected(before + 50, np.float64)[before:])
    assert sender.n_pushed == sender.generated == before + 50 and sender.n_pending == 0
    assert ts[0] >= started - 2e-4  # stamped from the second run's start, not the first's
