"""The live pipeline over real loopback LSL: no drops, metadata, timestamps, equality with
``rtsource.localize``, and every fault the issue lists (no mocks)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import mne
import numpy as np
import pylsl
import pytest

import rtsource
from rtsource.config import load_config
from rtsource.online.pipeline import InputSpec, Pipeline, parse_input
from rtsource.simulate.amplifier import INDEX_LABEL, SimulatedAmplifier
from rtsource.stream.lslio import StreamLostError, StreamNotFoundError
from rtsource.stream.outlet import read_desc, region_source_id
from rtsource.stream.player import Player

SFREQ = 250.0
MONTAGE = "biosemi32"


def small_cfg(name: str, out: str, montage: str = MONTAGE, **stream):
    """Fast configuration: sphere head model, 32 channels."""
    return load_config(
        headmodel={"montage": montage, "conductor": "sphere"},
        stream={"input": name, "output": out, "resolve_timeout_s": 10.0, **stream},
    )


# -- helpers --------------------------------------------------------------------------
class Pusher:
    """Push prepared samples on a real LSL outlet from a thread (paced by ``speed``).

    The outlet is created by :meth:`start` (and is then discoverable); :meth:`stop`
    destroys it, which an inlet sees as a lost stream.
    """

    def __init__(self, name, source_id, labels, types, data, timestamps, *, sfreq=SFREQ,
                 chunk=5, speed=4.0, wait_for_consumer_s=20.0):
        self.name, self.source_id = name, source_id
        self.labels, self.types = labels, types
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.ts = np.asarray(timestamps, dtype=np.float64)
        self.sfreq, self.chunk, self.speed = sfreq, chunk, speed
        self.wait_for_consumer_s = wait_for_consumer_s
        self._stop = threading.Event()
        self.done = threading.Event()
        self.error = None

    def start(self) -> Pusher:
        info = pylsl.StreamInfo(self.name, "EEG", len(self.labels), self.sfreq, "float32",
                                self.source_id)
        chans = info.desc().append_child("channels")
        for lab, typ in zip(self.labels, self.types, strict=True):
            ch = chans.append_child("channel")
            ch.append_child_value("label", lab)
            ch.append_child_value("type", typ)
            ch.append_child_value("unit", "volts" if typ == "eeg" else "none")
        self._outlet = pylsl.StreamOutlet(info, chunk_size=0, max_buffered=60)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self):
        try:
            deadline = time.monotonic() + self.wait_for_consumer_s
            while not self._outlet.have_consumers() and time.monotonic() < deadline:
                if self._stop.wait(0.005):
                    return
            t_start = time.monotonic()
            for k in range(0, len(self.data), self.chunk):
                due = t_start + k / (self.sfreq * self.speed)
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    return
                self._outlet.push_chunk(self.data[k:k + self.chunk], self.ts[k:k + self.chunk])
        except BaseException as err:  # surfaced by the test through .error
            self.error = err
        finally:
            self.done.set()

    def stop(self):
        self._stop.set()
        self._thread.join(10.0)
        del self._outlet  # the stream disappears
        assert self.error is None, self.error


def sim_data(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """Realistic 32-channel EEG (volts) plus the sample-index column."""
    amp = SimulatedAmplifier(MONTAGE, SFREQ, "gen", conductor="sphere", seed=seed)
    return amp.ch_names, amp.generate(n)


# -- end to end: nothing dropped or duplicated, capture timestamps ---------------------
def _end_to_end(lsl, montage: str, sfreq: float, duration_s: float, chunk: int) -> None:
    name, out = lsl.unique("sim"), lsl.unique("out")
    amp = SimulatedAmplifier(montage, sfreq, name, source_id=name, conductor="sphere",
                             chunk_size=chunk, seed=11)
    n_total = round(duration_s * sfreq)
    amp.start(duration_s=duration_s, wait_for_consumer_s=60.0, linger_s=120.0)
    cfg = load_config(headmodel={"montage": montage, "conductor": "sphere"},
                      stream={"input": name, "output": out})
    pipe, reader, markers = lsl.open_pipeline(cfg)
    n_out = n_total - 1  # the filters' first sample carries no data: not published
    try:
        assert reader.wait_for(n_out, timeout=duration_s * 3 + 30), (reader.n, n_out)
        reader.poll(timeout=0.5)  # nothing more may arrive
    finally:
        lsl.close_all(pipe, reader, markers)
        amp.stop()
    st = pipe.status()  # final counts, after the processing thread ended
    ts = reader.ts
    assert len(ts) == n_out and amp.n_pushed == n_total
    # Every output sample maps to exactly one input sample, in order: none dropped, none
    # duplicated (the input's sample_index channel was checked by the pipeline as well).
    pos = (ts - amp.t0) * sfreq
    np.testing.assert_array_equal(np.round(pos), np.arange(1, n_total))
    # ... and carries that sample's capture time (up to LSL's same-host clock offset)
    np.testing.assert_allclose(ts, amp.t0 + np.arange(1, n_total) / sfreq, rtol=0,
                               atol=2e-4)
    assert st.n_in == n_total and st.n_out == n_out and st.n_flagged == 1
    assert st.n_dropped == st.n_duplicated == 0
    assert st.n_ts_gaps == 0 and st.n_backwards == 0
    data = reader.data
    assert data.shape == (n_out, len(pipe.processor.regions.names))
    assert np.isfinite(data).all() and (data >= 0).all() and data.max() > 0


@pytest.mark.lsl
def test_no_sample_dropped_or_duplicated_fast(lsl):
    _end_to_end(lsl, MONTAGE, 500.0, 4.0, chunk=5)


@pytest.mark.lsl
@pytest.mark.slow
def test_no_sample_dropped_or_duplicated_60s_128ch_1khz(lsl):
    _end_to_end(lsl, "biosemi128", 1000.0, 60.0, chunk=10)


# -- metadata ---------------------------------------------------------------------------
@pytest.mark.lsl
def test_outlet_metadata_complete_and_source_id_stable(lsl):
    name = lsl.unique("meta")
    labels, x = sim_data(50)
    pusher = Pusher(name, name, [*labels, INDEX_LABEL], ["eeg"] * 32 + ["misc"], x,
                    np.arange(50) / SFREQ + 1.0, wait_for_consumer_s=0.0).start()
    out = lsl.unique("out")
    cfg = small_cfg(name, out)
    pipe = Pipeline(cfg).open()
    try:
        reader = lsl.RegionReader(out)
        markers = lsl.MarkerReader(pipe.marker_name)
        info = reader.info
        proc = pipe.processor
        n_reg = len(proc.regions.names)
        assert info.type() == "SourceActivation"
        assert info.channel_format() == pylsl.cf_float32
        assert info.nominal_srate() == SFREQ
        assert info.channel_count() == n_reg == 246
        assert info.source_id() == region_source_id(name, pipe.config_hash)
        ch = info.desc().child("channels").child("channel")
        labels_out, types_out, units_out = [], [], []
        while not ch.empty():
            labels_out.append(ch.child_value("label"))
            types_out.append(ch.child_value("type"))
            units_out.append(ch.child_value("unit"))
            ch = ch.next_sibling("channel")
        assert labels_out == list(proc.regions.names)
        assert set(types_out) == {"region"} and all(units_out)
        desc = read_desc(info.desc().child("rtsource"))
        for key in ("atlas", "atlas_version", "source_grid", "headmodel", "headmodel_hash",
                    "inverse_method", "lambda2", "inverse_hash", "backend", "window_s",
                    "hop_s", "filters", "reference", "input_source_id", "processing_delay_s",
                    "timestamps", "positions", "channel_mapping", "config_hash",
                    "rtsource_version", "bad_data"):
            assert desc.get(key), key
        assert desc["input_source_id"] == name and desc["atlas"].startswith("Brainnetome")
        assert desc["inverse_method"] == "eloreta"
        assert float(desc["processing_delay_s"]) == pytest.approx(proc.filter.delay_s, abs=1e-6)
        assert float(desc["processing_delay_s"]) > 0
        assert float(desc["window_s"]) == pytest.approx(0.024) and float(desc["hop_s"]) == 0.012
        assert "configured montage biosemi32" in desc["positions"]
        assert "sample_index (misc)" in desc["channel_mapping"]
        assert markers.info.type() == "Markers"
        assert markers.info.source_id() == f"{info.source_id()}-markers"
        sid = info.source_id()
    finally:
        lsl.close_all(pipe, reader, markers)
    # the same input and configuration give the same source_id after a restart
    try:
        pipe2 = Pipeline(cfg).open()
        try:
            assert pipe2.outlet.source_id == sid
        finally:
            pipe2.close()
        # ... and a different configuration another one
        pipe3 = Pipeline(small_cfg(name, lsl.unique("out"), highpass_hz=0.5)).open()
        try:
            assert pipe3.outlet.source_id != sid
        finally:
            pipe3.close()
    finally:
        pusher.stop()


# -- rtsource run == rtsource.localize ---------------------------------------------------
@pytest.mark.lsl
def test_published_regions_equal_localize(tmp_path: Path, lsl):
    n = 1000
    labels, x = sim_data(n, seed=3)
    info = mne.create_info([*labels, INDEX_LABEL], SFREQ, ["eeg"] * 32 + ["misc"])
    raw = mne.io.RawArray(x.T, info, verbose="error")
    raw.set_montage(mne.channels.make_standard_montage(MONTAGE))
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    name, out = lsl.unique("play"), lsl.unique("out")
    cfg = small_cfg(name, out)
    player = Player(path, name=name, source_id=name, wait_for_consumer_s=30.0, linger_s=30.0)
    player.start()
    pipe, reader, markers = lsl.open_pipeline(cfg)
    try:
        assert reader.wait_for(n - 1, timeout=60.0), reader.n  # the first: no data
        assert "positions" in pipe.provenance and "from MNE loc" in pipe.positions_used
    finally:
        lsl.close_all(pipe, reader, markers)
        player.stop()
    # the same filter settings on both paths (offline filters only when asked for)
    res = rtsource.localize(mne.io.read_raw_fif(path, verbose="error"), config=cfg,
                            filters=True)
    assert res.region_names == list(pipe.processor.regions.names)
    assert res.provenance["inverse_hash"] == pipe.provenance["inverse_hash"]
    assert res.provenance["headmodel_hash"] == pipe.provenance["headmodel_hash"]
    assert res.provenance["filters_applied"] == pipe.provenance["filters"] != "none"
    live = reader.data
    # live never publishes the filters' first sample (zero to rounding); offline keeps
    # every time point
    assert live.shape == res.regions[1:].shape == (n - 1, 246)
    scale = np.abs(res.regions).max()
    assert np.abs(res.regions[0]).max() < 1e-6 * scale
    np.testing.assert_allclose(live, res.regions[1:], rtol=1e-4, atol=1e-6 * scale)


# -- faults -------------------------------------------------------------------------------
def test_parse_input():
    assert parse_input("BioSemi") == InputSpec(name="BioSemi")
    assert parse_input("type=EEG") == InputSpec(type="EEG")
    assert parse_input("name=a b, source_id=x1") == InputSpec(name="a b", source_id="x1")
    with pytest.raises(ValueError, match="type=TYPE"):
        parse_input("colour=red")


@pytest.mark.lsl
def test_input_not_found_is_a_clear_error_after_the_timeout(lsl):
    name = lsl.unique("absent")
    pipe = Pipeline(small_cfg(name, lsl.unique("out"), resolve_timeout_s=0.5))
    with pytest.raises(StreamNotFoundError, match=rf"No LSL stream with name='{name}'.*0\.5 s"):
        pipe.open()
    with pytest.raises(StreamNotFoundError, match="type='nonexistent-type'"):
        Pipeline(small_cfg("x", "y", resolve_timeout_s=0.3), input="type=nonexistent-type").open()


@pytest.mark.lsl
def test_rate_or_channel_count_differing_from_the_configuration(lsl):
    name = lsl.unique("mismatch")
    labels, x = sim_data(10)
    pusher = Pusher(name, name, [*labels, INDEX_LABEL], ["eeg"] * 32 + ["misc"], x,
                    np.arange(10) + 1.0, wait_for_consumer_s=0.0).start()
    try:
        with pytest.raises(ValueError, match=r"samples at 250 Hz .* expects 500 Hz"):
            Pipeline(small_cfg(name, lsl.unique("out"), expected_srate=500.0)).open()
        with pytest.raises(ValueError, match=r"has 33 channels .* expects 64"):
            Pipeline(small_cfg(name, lsl.unique("out"), expected_channels=64)).open()
        pipe = Pipeline(small_cfg(name, lsl.unique("out"), expected_srate=250.0,
                                  expected_channels=33)).open()
        pipe.close()
    finally:
        pusher.stop()


@pytest.mark.lsl
def test_input_disappears_then_returns_with_the_same_source_id(lsl):
    name, sid = lsl.unique("lost"), lsl.unique("sid")
    labels, x = sim_data(500, seed=4)
    types = ["eeg"] * 32 + ["misc"]
    ts = 100.0 + np.arange(500) / SFREQ
    first = Pusher(name, sid, [*labels, INDEX_LABEL], types, x[:250], ts[:250]).start()
    pipe, reader, markers = lsl.open_pipeline(small_cfg(name, lsl.unique("out"), lost_timeout_s=30.0))
    second = None
    try:
        assert reader.wait_for(249, timeout=20.0)  # the filters' first sample: no data
        first.stop()  # the amplifier app quits
        lost = markers.wait_for("stream_lost", timeout=10.0)
        assert lost and sid in lost[0]["message"]
        assert lsl.wait_until(lambda: pipe.status().state == "waiting", timeout=5.0)
        second = Pusher(name, sid, [*labels, INDEX_LABEL], types, x[250:], ts[250:]).start()
        assert markers.wait_for("stream_returned", timeout=15.0)
        assert reader.wait_for(498, timeout=20.0), reader.n
        st = pipe.status()
        assert st.state == "running" and st.n_reconnects == 1
        # all, in order, but the first sample of each segment (the filters restart there)
        np.testing.assert_allclose(reader.ts, np.r_[ts[1:250], ts[251:]], atol=2e-4)
    finally:
        lsl.close_all(pipe, reader, markers)
        if second is not None:
            second.stop()
    assert pipe.error is None


@pytest.mark.lsl
def test_input_gone_for_good_stops_with_a_clear_message(lsl):
    name = lsl.unique("gone")
    labels, x = sim_data(100)
    pusher = Pusher(name, name, [*labels, INDEX_LABEL], ["eeg"] * 32 + ["misc"], x,
                    10.0 + np.arange(100) / SFREQ).start()
    pipe, reader, markers = lsl.open_pipeline(small_cfg(name, lsl.unique("out"), lost_timeout_s=1.0))
    try:
        assert reader.wait_for(99, timeout=20.0)
        pusher.stop()
        assert markers.wait_for("stream_lost", timeout=10.0)
        assert pipe.wait(timeout=15.0)  # the processing thread ends by itself
        err = markers.wait_for("error", timeout=5.0)
        assert err and "did not return within" in err[0]["message"]
        assert pipe.status().state == "failed"
    finally:
        reader.close()
        markers.close()
        with pytest.raises(StreamLostError, match=r"did not return within .*lost_timeout_s = 1 s"):
            pipe.stop()


def _bad_stream(lsl, mode: str, x: np.ndarray, labels: list[str]):
    name = lsl.unique(f"bad-{mode}")
    n = len(x)
    ts = 50.0 + np.arange(n) / SFREQ
    pusher = Pusher(name, name, [*labels, INDEX_LABEL], ["eeg"] * 32 + ["misc"], x, ts).start()
    pipe, reader, markers = lsl.open_pipeline(small_cfg(name, lsl.unique("out"), bad_data=mode))
    return pusher, pipe, reader, markers, ts


@pytest.mark.lsl
def test_bad_data_flagged_and_withheld(lsl):
    n = 750
    labels, x = sim_data(n, seed=6)
    x[200:203, labels.index("C3")] = np.nan
    x[350:420, labels.index("Pz")] = x[350, labels.index("Pz")]  # flat (from 374: 0.1 s)
    x[500:530, labels.index("O1")] = x[:, labels.index("O1")].max()  # a rail (from 512)
    x[600, labels.index("O2")] = np.inf
    pusher, pipe, reader, markers, ts = _bad_stream(lsl, "flag", x, labels)
    try:
        assert lsl.wait_until(lambda: (reader.poll() or True) and
                          pipe.status().n_in == n and
                          reader.n + pipe.status().n_flagged >= n, timeout=30.0)
        reader.poll(timeout=0.3)
        markers.wait_for("bad_data_end", count=4, timeout=5.0)
    finally:
        lsl.close_all(pipe, reader, markers)
        pusher.stop()
    st = pipe.status()  # final counts, after the processing thread ended
    bad = markers.of("bad_data")
    text = " ".join(m["message"] for m in bad)
    assert "NaN/Inf in C3" in text and "flat: Pz" in text and "saturated: O1" in text
    assert "NaN/Inf in O2" in text
    assert {c for m in bad for c in m["channels"]} == {"C3", "Pz", "O1", "O2"}
    assert len(markers.of("bad_data_end")) == 4
    # every sample is either published or withheld (and counted), never both
    published = np.round((reader.ts - 50.0) * SFREQ).astype(int)
    assert len(np.unique(published)) == len(published) == st.n_out
    assert st.n_out + st.n_flagged == n and st.n_flagged > 0
    for bad_samples in (range(200, 203), range(374, 420), range(512, 530), [600]):
        assert not set(bad_samples) & set(published.tolist())
    assert set(range(1, 190)) <= set(published.tolist())  # clean data flows
    assert np.isfinite(reader.data).all()


@pytest.mark.lsl
def test_bad_channel_excluded_and_kernel_recomputed(lsl):
    n = 750
    labels, x = sim_data(n, seed=8)
    x[300:, labels.index("C3")] = np.nan  # the electrode falls off for good
    pusher, pipe, reader, markers, ts = _bad_stream(lsl, "exclude", x, labels)
    try:
        # not published: the first sample and the new chain's first (filters start there)
        assert reader.wait_for(n - 2, timeout=60.0), reader.n
        markers.wait_for("kernel_ready", timeout=5.0)
    finally:
        lsl.close_all(pipe, reader, markers)
        pusher.stop()
    st = pipe.status()  # final counts, after the processing thread ended
    excl = markers.of("channel_excluded")
    assert len(excl) == 1 and excl[0]["channels"] == ["C3"]
    assert markers.of("kernel_ready")
    assert st.excluded == ["C3"] and st.n_channels == 31
    assert st.n_out == n - 2 and st.n_flagged == 2  # nothing withheld for the bad channel
    published = np.round((reader.ts - 50.0) * SFREQ).astype(int)
    missing = sorted(set(range(n)) - set(published.tolist()))
    assert missing[0] == 0 and 300 - pipe.hop < missing[1] <= 300 and len(missing) == 2
    assert np.isfinite(reader.data).all()
    assert "C3" not in pipe.processor.mapper.mapping.used_labels


@pytest.mark.lsl
def test_timestamps_jumping_backwards_are_reported_and_kept(lsl):
    n = 500
    labels, x = sim_data(n, seed=9)
    name = lsl.unique("back")
    ts = 20.0 + np.arange(n) / SFREQ
    ts[300:] -= 0.5  # the sender's clock jumps back
    pusher = Pusher(name, name, [*labels, INDEX_LABEL], ["eeg"] * 32 + ["misc"], x, ts).start()
    pipe, reader, markers = lsl.open_pipeline(small_cfg(name, lsl.unique("out")))
    try:
        assert reader.wait_for(n - 1, timeout=30.0), reader.n
        back = markers.wait_for("timestamps_backwards", timeout=5.0)
    finally:
        lsl.close_all(pipe, reader, markers)
        pusher.stop()
    st = pipe.status()  # final counts, after the processing thread ended
    assert back and "backwards" in back[0]["message"] and back[0]["count"] >= 1
    assert st.n_backwards >= 1 and st.n_out == n - 1 and st.n_dropped == 0
    np.testing.assert_allclose(reader.ts, ts[1:], atol=2e-4)  # each keeps its capture time
