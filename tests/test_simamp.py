"""The simulated amplifier: signal content (no LSL) and its LSL streams (real loopback)."""

from __future__ import annotations

import dataclasses
import json
import time

import numpy as np
import pylsl
import pytest
from scipy.signal import welch

from rtsource.config import load_config
from rtsource.online.processing import SourceProcessor
from rtsource.simulate.amplifier import (
    INDEX_LABEL,
    INDEX_MODULO,
    AmplifierSignal,
    SimulatedAmplifier,
)
from rtsource.stream.lslio import EEGInlet, resolve_stream

SFREQ = 250.0


@pytest.fixture(scope="module")
def amp_kwargs():
    return {"montage": "biosemi32", "sfreq": SFREQ, "conductor": "sphere"}


def test_generation_is_chunk_invariant_with_index_channel(amp_kwargs):
    a = SimulatedAmplifier(name="a", seed=7, **amp_kwargs)
    b = AmplifierSignal(seed=7, **amp_kwargs)  # the same signal without LSL
    assert b.ch_names == a.ch_names and b.pool == a.pool
    whole = a.generate(1500)
    parts = np.concatenate([b.generate(n) for n in (1, 9, 490, 3, 997)])
    np.testing.assert_allclose(whole, parts, rtol=1e-10, atol=1e-18)  # BLAS blocking only
    assert whole.shape == (1500, a.n_eeg + 1) and a.n_channels == a.n_eeg + 1 == 33
    np.testing.assert_array_equal(whole[:, -1], np.arange(1500))
    eeg = whole[:, :-1]
    assert np.isfinite(eeg).all()
    std_uv = eeg.std(axis=0) * 1e6
    assert 2.0 < np.median(std_uv) < 200.0  # EEG-like amplitudes in volts
    # segments are drawn in order, each with 1-3 atlas regions
    assert [s.index for s in a.segments] == list(range(len(a.segments)))
    for seg in a.segments:
        assert 1 <= len(seg.sources) <= 3 and set(seg.regions) <= set(a.region_names)
        msg = json.loads(seg.to_json(SFREQ))
        assert msg["kind"] == "truth" and msg["active"] == seg.regions
    assert a.truth_at(0) is a.segments[0]


def test_index_wraps_at_float32_exact_limit(amp_kwargs):
    a = SimulatedAmplifier(name="w", seed=1, **amp_kwargs)
    a.signal._k = INDEX_MODULO - 2  # jump ahead without generating 16 M samples
    x = a.generate(4)
    np.testing.assert_array_equal(x[:, -1], [INDEX_MODULO - 2, INDEX_MODULO - 1, 0, 1])
    assert np.array_equal(x[:, -1].astype(np.float32), x[:, -1])
    # samples generated outside run() would desynchronise the stream from the signal
    with pytest.raises(RuntimeError, match="generate\\(\\) was called outside run\\(\\)"):
        a.run(0.1)


def test_background_has_one_over_f_and_alpha(amp_kwargs):
    a = SimulatedAmplifier(name="bg", seed=2, n_active=(0, 0), noise_uv=0.5, **amp_kwargs)
    x = a.generate(int(60 * SFREQ))[:, :-1]
    x = x - x.mean(axis=1, keepdims=True)  # average reference
    f, p = welch(x, fs=SFREQ, nperseg=int(4 * SFREQ), axis=0)
    p = p.mean(axis=1)

    def band(lo, hi):
        return p[(f >= lo) & (f <= hi)].mean()

    assert band(9, 11) > 2 * band(6, 7) and band(9, 11) > 2 * band(14, 16)  # alpha peak
    assert band(2, 4) > 3 * band(20, 30) > 3 * band(60, 90)  # falling 1/f background


def test_active_regions_are_recovered_by_eloreta(amp_kwargs):
    """Physics: one active region at a time, no background: eLORETA on the same forward
    model ranks the announced region at or near the top."""
    a = SimulatedAmplifier(name="phys", seed=5, n_active=(1, 1), segment_s=1.0,
                           background_uv=0.0, alpha_uv=0.0, noise_uv=0.1, **amp_kwargs)
    cfg = load_config(headmodel={"montage": "biosemi32", "conductor": "sphere"})
    cfg = dataclasses.replace(cfg, stream=dataclasses.replace(
        cfg.stream, highpass_hz=None, lowpass_hz=None, notch_hz=None))
    proc = SourceProcessor(cfg, [*a.ch_names, INDEX_LABEL], SFREQ,
                           ch_types=["eeg"] * a.n_eeg + ["misc"], progress=False)
    names = proc.regions.names
    ranks = []
    for seg in range(12):
        _, regions = proc.process(a.generate(int(SFREQ)).astype(np.float32))
        order = list(np.argsort(regions.mean(axis=0))[::-1])
        ranks.append(order.index(names.index(a.segments[seg].regions[0])) + 1)
    assert max(ranks) <= 6, ranks
    assert np.median(ranks) == 1, ranks


@pytest.mark.lsl
def test_stream_metadata_index_and_truth_markers(amp_kwargs, lsl):
    name = lsl.unique("sim")
    amp = SimulatedAmplifier(name=name, source_id=name, seed=3, segment_s=0.5, **amp_kwargs)
    announced = []
    amp.start(duration_s=2.0, wait_for_consumer_s=10.0, linger_s=3.0,
              on_segment=announced.append)
    truth = pylsl.StreamInlet(resolve_stream(name=f"{name}-truth", timeout=5.0))
    truth.open_stream(timeout=5.0)
    inlet = EEGInlet(resolve_stream(name=name, type="eeg", timeout=5.0), dtype=np.float64)
    try:
        assert inlet.source_id == name and inlet.sfreq == SFREQ
        assert inlet.labels == [*amp.ch_names, INDEX_LABEL]
        assert inlet.types == ["eeg"] * amp.n_eeg + ["misc"]
        assert {c.unit for c in inlet.channels[:-1]} == {"volts"}
        assert all(c.to_volts == 1.0 for c in inlet.channels[:-1])
        assert all(c.position_source == "loc" for c in inlet.channels[:-1])
        assert inlet.channels[-1].position is None
        pos = np.array([c.position for c in inlet.channels[:-1]])
        np.testing.assert_array_equal(pos, amp.ch_pos)  # full precision through the XML
        data, ts = lsl.pull_until(inlet, 500, timeout=15.0)
        assert len(ts) == 500
        np.testing.assert_array_equal(data[:, -1], np.arange(500))  # nothing lost, in order
        np.testing.assert_allclose(ts, amp.t0 + np.arange(500) / SFREQ, atol=2e-4)
        markers = []
        deadline = time.monotonic() + 5.0
        while len(markers) < 4 and time.monotonic() < deadline:
            m, t = truth.pull_sample(timeout=0.2)
            if m is not None:
                markers.append((json.loads(m[0]), t))
        assert len(markers) == 4
        for k, (msg, t) in enumerate(markers):
            seg = amp.segments[k]
            assert msg["kind"] == "truth" and msg["segment"] == k
            assert msg["active"] == seg.regions and msg["start_sample"] == seg.start
            assert t == pytest.approx(amp.t0 + seg.start / SFREQ, abs=1e-6)
            assert all(len(s["centroid_mni"]) == 3 for s in msg["sources"])
    finally:
        inlet.close()
        truth.close_stream()
        amp.stop()
    assert amp.n_pushed == 500
    assert announced == amp.segments[:4]  # each segment once, as its first sample goes out
