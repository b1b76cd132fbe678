"""LSL inlet and outlets over real loopback LSL (no mocks)."""

from __future__ import annotations

import json
import time

import numpy as np
import pylsl
import pytest

from rtsource.stream.lslio import (
    EEGInlet,
    StreamLostError,
    StreamNotFoundError,
    describe_positions,
    positions_array,
    resolve_stream,
)
from rtsource.stream.outlet import MarkerOutlet, RegionOutlet, read_desc, region_source_id

pytestmark = pytest.mark.lsl


def _open(name: str, **kwargs) -> EEGInlet:
    return EEGInlet(resolve_stream(name=name, timeout=5.0), **kwargs)


def test_positions_units_types_from_xdf_and_mne_metadata(lsl):
    name = lsl.unique()
    labels = ["Fz", "Cz", "Pz", "Oz", "TRIG", "AccX"]
    info = lsl.make_info(
        name,
        labels,
        stype="eeg",
        types=["EEG", "eeg", "EEG", None, "trigger", "ACCEL"],
        units=["microvolts", "-6", "V", "uV", None, "g"],
    )
    ch = info.desc().child("channels").child("channel")
    # Fz: XDF location in millimetres
    loc = ch.append_child("location")
    for k, v in zip("XYZ", (1.5, 93.0, 102.5), strict=True):
        loc.append_child_value(k, str(v))
    # Cz: MNE loc in metres (12 values, as mne-lsl writes them)
    ch = ch.next_sibling()
    loc = ch.append_child("loc")
    for k, v in zip(("R0x", "R0y", "R0z", "Exx"), (-0.001, 0.0276, 0.1402, 0.0), strict=True):
        loc.append_child_value(k, repr(v))
    # Pz: both; MNE loc wins
    ch = ch.next_sibling()
    loc = ch.append_child("loc")
    for k, v in zip(("R0x", "R0y", "R0z"), (0.0, -0.06, 0.12), strict=True):
        loc.append_child_value(k, repr(v))
    loc = ch.append_child("location")
    for k, v in zip("XYZ", (9.0, 9.0, 9.0), strict=True):
        loc.append_child_value(k, str(v))
    # Oz: MNE loc of NaN (unknown)
    ch = ch.next_sibling()
    loc = ch.append_child("loc")
    for k in ("R0x", "R0y", "R0z"):
        loc.append_child_value(k, "nan")
    outlet = pylsl.StreamOutlet(info)
    inlet = EEGInlet(resolve_stream(name=name, type="EEG", timeout=5.0), clock_correction=False)
    try:
        chans = inlet.channels
        assert [c.label for c in chans] == labels
        assert [c.type for c in chans] == ["eeg", "eeg", "eeg", None, "trigger", "accel"]
        assert [c.to_volts for c in chans] == [1e-6, 1e-6, 1.0, 1e-6, None, None]
        assert [c.position_source for c in chans] == ["location", "loc", "loc", None, None, None]
        np.testing.assert_allclose(chans[0].position, (0.0015, 0.093, 0.1025))
        np.testing.assert_allclose(chans[1].position, (-0.001, 0.0276, 0.1402))
        np.testing.assert_allclose(chans[2].position, (0.0, -0.06, 0.12))
        pos = positions_array(chans)
        assert np.isnan(pos[3:]).all()
        text = describe_positions(chans)
        assert "3 of 4 EEG channels" in text and "2 from MNE loc" in text
        assert "1 from XDF location" in text
    finally:
        inlet.close()
        del outlet


def test_resolve_is_case_insensitive_and_timeout_lists_visible_streams(lsl):
    name = lsl.unique()
    sid = lsl.unique("sid")
    outlet = pylsl.StreamOutlet(lsl.make_info(name, ["Cz"], stype="eeg", source_id=sid))
    try:
        info = resolve_stream(name=name, type="EEG", timeout=5.0)
        assert info.source_id() == sid
        assert resolve_stream(source_id=sid, timeout=5.0).name() == name
        t0 = time.monotonic()
        with pytest.raises(StreamNotFoundError, match="No LSL stream with name=") as err:
            resolve_stream(name=name + "-typo", timeout=0.3, listing_wait=1.0)
        assert time.monotonic() - t0 < 5.0
        msg = str(err.value)
        assert f"name={name!r}" in msg and f"source_id={sid!r}" in msg
        assert "1 channels, 250 Hz, float32" in msg
        assert "Did you mean" in msg
        assert isinstance(err.value, TimeoutError)
        with pytest.raises(ValueError, match="at least one of"):
            resolve_stream()
    finally:
        del outlet


@pytest.mark.parametrize(
    ("fmt", "np_dtype"), [("float32", np.float32), ("double64", np.float64), ("int32", np.int32)]
)
def test_inlet_receives_everything_exactly_once(fmt, np_dtype, lsl):
    rng = np.random.default_rng(7)
    name = lsl.unique()
    n_total, n_ch = 700, 4
    outlet = pylsl.StreamOutlet(
        lsl.make_info(
            name,
            ["index", "Fz", "Cz", "Pz"],
            fmt=fmt,
            types=["misc", "eeg", "eeg", "eeg"],
            srate=500.0,
        )
    )
    inlet = _open(name, max_chunk=64)
    try:
        assert outlet.wait_for_consumers(5.0)
        data = np.empty((n_total, n_ch), dtype=np_dtype)
        data[:, 0] = np.arange(n_total)
        if np.issubdtype(np_dtype, np.integer):
            data[:, 1:] = rng.integers(-(2**20), 2**20, size=(n_total, n_ch - 1))
        else:
            data[:, 1:] = rng.standard_normal((n_total, n_ch - 1)) * 1e-5
        ts = pylsl.local_clock() + np.arange(n_total) / 500.0
        pos = 0
        while pos < n_total:
            n = int(rng.integers(1, 50))
            outlet.push_chunk(data[pos : pos + n], ts[pos : pos + n])
            pos += n
        got, got_ts = lsl.pull_until(inlet, n_total, timeout=10.0)
        assert got.dtype == np.float32
        assert len(got) == n_total, f"received {len(got)} of {n_total}"
        np.testing.assert_array_equal(got[:, 0], np.arange(n_total))  # no drop, no duplicate
        np.testing.assert_array_equal(got, data.astype(np.float32))
        # clock correction: remote stamps + offset (about 0 on one host)
        np.testing.assert_allclose(got_ts, ts + inlet.clock_offset, rtol=0, atol=1e-9)
        assert abs(inlet.clock_offset) < 0.01
        assert inlet.n_backwards == 0 and inlet.n_received == n_total
        assert inlet.channel_format == fmt
    finally:
        inlet.close()
        del outlet


def test_inlet_reports_backwards_timestamps_and_lost_stream_returns(caplog, lsl):
    name = lsl.unique()
    sid = lsl.unique("sid")
    labels = ["Fz", "Cz"]
    outlet = pylsl.StreamOutlet(lsl.make_info(name, labels, source_id=sid))
    inlet = _open(name, clock_correction=False)
    try:
        assert outlet.wait_for_consumers(5.0)
        now = pylsl.local_clock()
        stamps = now + np.array([0.0, 0.004, 0.008, 0.002, 0.006, 0.010])
        outlet.push_chunk(np.arange(12, dtype=np.float32).reshape(6, 2), stamps)
        with caplog.at_level("WARNING", logger="rtsource"):
            got, got_ts = lsl.pull_until(inlet, 6, timeout=5.0)
        assert len(got) == 6
        np.testing.assert_array_equal(got_ts, stamps)
        assert inlet.n_backwards == 1
        assert "jumped backwards" in caplog.text

        # the sender goes away: pull raises StreamLostError (within a deadline)
        del outlet
        lost = None
        deadline = time.monotonic() + 10.0
        while lost is None and time.monotonic() < deadline:
            try:
                inlet.pull(timeout=0.05)
            except StreamLostError as err:
                lost = err
        assert lost is not None and inlet.lost
        assert sid in str(lost) and "wait_for_return" in str(lost)
        with pytest.raises(StreamLostError):
            inlet.pull()
        assert inlet.wait_for_return(0.2) is False

        # a stream with the same source_id returns: reconnect and read on
        outlet = pylsl.StreamOutlet(lsl.make_info(name, labels, source_id=sid))
        assert inlet.wait_for_return(5.0)
        assert not inlet.lost and inlet.n_reconnects == 1
        assert outlet.wait_for_consumers(5.0)
        outlet.push_chunk(
            np.full((3, 2), 7.0, np.float32), pylsl.local_clock() + np.arange(3) * 0.004
        )
        got, _ = lsl.pull_until(inlet, 3, timeout=5.0)
        np.testing.assert_array_equal(got, np.full((3, 2), 7.0, np.float32))
    finally:
        inlet.close()
        del outlet


def test_region_outlet_metadata_timestamps_and_nan_refused(lsl):
    name = lsl.unique()
    regions = ["A8m_L", "A8m_R", "Tha_8_1_L", "Tha_8_1_R"]
    provenance = {
        "atlas": "bn246",
        "atlas_version": "1.0",
        "inverse": {"method": "eloreta", "lambda2": 1 / 9},
        "window_s": 0.025,
        "hop_s": 0.01,
        "filters": [1.0, 45.0, 50.0],
        "reference": "average",
        "processing_delay_s": 0.0123,
    }
    out = RegionOutlet(
        name,
        regions,
        100.0,
        provenance,
        input_source_id="amp-123",
        config_hash="abc123",
        unit="nAm",
    )
    assert out.source_id == region_source_id("amp-123", "abc123")
    assert region_source_id("amp-123", "abc124") != out.source_id
    info = resolve_stream(name=name, timeout=5.0)
    inlet = pylsl.StreamInlet(info, recover=False)
    try:
        full = inlet.info(timeout=5.0)
        assert full.type() == "SourceActivation"
        assert full.channel_format() == pylsl.cf_float32
        assert full.nominal_srate() == 100.0
        assert full.source_id() == out.source_id
        assert full.get_channel_labels() == regions
        assert full.get_channel_types() == ["region"] * 4
        assert full.get_channel_units() == ["nAm"] * 4
        meta = read_desc(full.desc().child("rtsource"))
        assert meta["atlas"] == "bn246"
        assert meta["inverse"] == {"method": "eloreta", "lambda2": repr(1 / 9)}
        assert json.loads(meta["filters"]) == [1.0, 45.0, 50.0]
        assert float(meta["processing_delay_s"]) == 0.0123
        assert meta["input_source_id"] == "amp-123" and meta["config_hash"] == "abc123"
        assert set(provenance) <= set(meta)
        assert "<type>SourceActivation</type>" in full.as_xml()

        inlet.open_stream(timeout=5.0)
        assert out.wait_for_consumers(5.0)
        x = np.arange(20, dtype=np.float32).reshape(5, 4)
        ts = pylsl.local_clock() - 0.5 + np.array([0.0, 0.01, 0.02, 0.05, 0.06])
        bad = x.copy()
        bad[2, 1] = np.nan
        with pytest.raises(ValueError, match=r"Refusing to publish NaN/Inf.*rows \[2\].*A8m_R"):
            out.push(bad, ts)
        out.push(x, ts)
        got, got_ts = [], []
        deadline = time.monotonic() + 5.0
        while sum(map(len, got)) < 5 and time.monotonic() < deadline:
            d, t = inlet.pull_chunk(timeout=0.05, max_samples=16, as_numpy=True)
            if len(t):
                got.append(d)
                got_ts.append(t)
        got_arr, got_ts_arr = np.concatenate(got), np.concatenate(got_ts)
        np.testing.assert_array_equal(got_arr, x)  # only the finite chunk arrived
        np.testing.assert_array_equal(got_ts_arr, ts)  # capture stamps, not publish time
        assert out.n_pushed == 5
    finally:
        inlet.close_stream()
        del inlet
        out.close()


def test_marker_outlet_json_payloads(lsl):
    name = lsl.unique()
    markers = MarkerOutlet(name, source_id=name + "-markers")
    info = resolve_stream(name=name, type="markers", timeout=5.0)
    inlet = pylsl.StreamInlet(info, recover=False)
    try:
        inlet.open_stream(timeout=5.0)
        assert markers.wait_for_consumers(5.0)
        sent = markers.push("Stream lost", kind="stream_lost", source_id="amp-1", channels=["Fz"])
        sample, ts = inlet.pull_sample(timeout=5.0)
        assert sample == [sent]
        assert json.loads(sample[0]) == {
            "kind": "stream_lost",
            "message": "Stream lost",
            "source_id": "amp-1",
            "channels": ["Fz"],
        }
        full = inlet.info(timeout=5.0)
        assert full.type() == "Markers" and full.nominal_srate() == pylsl.IRREGULAR_RATE
        assert full.channel_format() == pylsl.cf_string
    finally:
        inlet.close_stream()
        del inlet
        markers.close()


def test_wait_until_helper_is_a_deadline_loop(lsl):
    t0 = time.monotonic()
    assert not lsl.wait_until(lambda: False, timeout=0.05)
    assert time.monotonic() - t0 < 1.0
