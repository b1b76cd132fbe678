"""Channel mapping, causal filtering, average reference and bad-data checks (no LSL)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from rtsource.online.preprocess import (
    CausalFilter,
    ChannelMapper,
    average_reference,
    normalize_label,
)
from rtsource.online.quality import SignalCheck


def test_channel_mapper_aliases_case_and_non_eeg(caplog):
    stream_labels = [
        "FP1",
        "fz",
        "T3",
        "T4",
        "STI 014",
        "Acc_X",
        "TRIGGER",
        "Cz",
        "EEG O1-REF",
        "Xyz",
        "fz",
        "EOG1",
    ]
    stream_types = [
        "EEG",
        "eeg",
        "EEG",
        "eeg",
        "stim",
        "accel",
        None,
        "",
        "EEG",
        "EEG",
        "EEG",
        "EOG",
    ]
    model = ["Fp1", "Fz", "Cz", "T7", "T8", "O1", "O2", "Pz"]
    with caplog.at_level(logging.INFO, logger="rtsource"):
        mapper = ChannelMapper(stream_labels, stream_types, model)
    m = mapper.mapping
    assert m.used_labels == ["Fp1", "Fz", "Cz", "T7", "T8", "O1"]
    assert m.stream_index.tolist() == [0, 1, 7, 2, 3, 8]
    assert m.missing_model == ["O2", "Pz"]
    assert m.unmapped_eeg == ["Xyz"]
    assert m.duplicates == ["fz"]
    assert m.aliased == {"T3": "T7", "T4": "T8"}
    assert ("STI 014", "stim") in m.skipped
    assert ("Acc_X", "accel") in m.skipped
    assert ("TRIGGER", None) in m.skipped
    assert ("EOG1", "eog") in m.skipped
    warnings = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "O2, Pz" in warnings and "kernel" in warnings
    assert "Xyz" in warnings
    x = np.arange(5 * 12, dtype=np.float32).reshape(5, 12)
    np.testing.assert_array_equal(mapper(x), x[:, [0, 1, 7, 2, 3, 8]])
    out = np.empty((5, 6), np.float32)
    assert mapper(x, out=out) is out
    assert "Missing head-model channels: O2, Pz" in mapper.describe()


def test_channel_mapper_reverse_alias_identity_and_errors():
    # a model with old names accepts new names too
    mapper = ChannelMapper(["T7", "Cz"], ["eeg", "eeg"], ["T3", "Cz"])
    assert mapper.mapping.used_labels == ["T3", "Cz"]
    x = np.ones((2, 2), np.float32)
    assert mapper(x) is x  # identity mapping: no copy
    with pytest.raises(ValueError, match="None of the stream's channels matches"):
        ChannelMapper(["a", "b"], ["eeg", "misc"], ["Cz"])
    with pytest.raises(ValueError, match="stream_types has 1"):
        ChannelMapper(["a", "b"], ["eeg"], ["Cz"])
    assert normalize_label("EEG Fp1-REF") == "fp1"
    assert normalize_label("FCz") == "fcz"


@pytest.mark.parametrize("init", ["first_sample", "zeros"])
def test_causal_filter_chunked_equals_whole(init):
    rng = np.random.default_rng(1)
    sfreq, n_ch = 250.0, 5
    x = (rng.standard_normal((2000, n_ch)) * 1e-5 + 3e-3).astype(np.float32)  # DC offset
    kw = dict(highpass=1.0, lowpass=45.0, notch=50.0, init=init)
    whole = CausalFilter(sfreq, n_ch, **kw)(x)
    filt = CausalFilter(sfreq, n_ch, **kw)
    parts, pos = [], 0
    while pos < len(x):
        n = int(rng.integers(1, 60))
        parts.append(filt(x[pos : pos + n]))
        pos += n
    chunked = np.concatenate(parts)
    assert chunked.dtype == np.float32
    np.testing.assert_allclose(chunked, whole, rtol=0, atol=1e-12)
    filt.reset()
    np.testing.assert_array_equal(filt(x), whole)


def test_causal_filter_removes_line_noise_and_dc():
    sfreq = 500.0
    t = np.arange(5000) / sfreq
    alpha = np.sin(2 * np.pi * 10 * t)
    x = (alpha + np.sin(2 * np.pi * 50 * t) + 5.0)[:, None].astype(np.float32)
    y = CausalFilter(sfreq, 1, highpass=1.0, lowpass=45.0, notch=50.0)(x)[2500:, 0]
    ref = alpha[2500:]
    # 10 Hz kept (up to the causal phase shift), 50 Hz and DC removed
    assert abs(y.std() - ref.std()) < 0.05
    assert abs(y.mean()) < 0.01
    spec = np.abs(np.fft.rfft(y))
    freqs = np.fft.rfftfreq(len(y), 1 / sfreq)
    assert spec[np.argmin(abs(freqs - 50))] < 0.01 * spec[np.argmin(abs(freqs - 10))]


def test_causal_filter_validates():
    with pytest.raises(ValueError, match="lowpass=200 Hz is not valid at sfreq=250.0 Hz"):
        CausalFilter(250.0, 2, highpass=1.0, lowpass=200)
    with pytest.raises(ValueError, match="highpass=40 Hz must be below lowpass=30 Hz"):
        CausalFilter(250.0, 2, highpass=40, lowpass=30)
    with pytest.raises(ValueError, match=r"\(n_samples, 2\)"):
        CausalFilter(250.0, 2)(np.zeros((4, 3), np.float32))
    passthrough = CausalFilter(250.0, 2, highpass=None, lowpass=None, notch=None)
    x = np.ones((3, 2), np.float32)
    np.testing.assert_array_equal(passthrough(x), x)


def test_average_reference_in_place():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((10, 6)).astype(np.float32)
    orig = x.copy()
    y = average_reference(x)
    assert y is x
    np.testing.assert_allclose(x.mean(axis=1), 0, atol=1e-6)
    np.testing.assert_allclose(x, orig - orig.mean(axis=1, keepdims=True), atol=1e-6)
    x = orig.copy()
    good = np.array([True, True, True, True, False, False])
    average_reference(x, good)
    np.testing.assert_allclose(x, orig - orig[:, :4].mean(axis=1, keepdims=True), atol=1e-6)


def test_signal_check_names_channels_and_samples():
    rng = np.random.default_rng(3)
    names = ["Fp1", "Fz", "Cz", "Pz", "Oz"]
    x = (rng.standard_normal((200, 5)) * 1e-5).astype(np.float32)
    check = SignalCheck(names, 500.0, range_uv=5000.0)
    assert check(x).ok and check(x).message() == ""
    check.reset()
    x[3:5, 1] = np.nan
    x[9, 1] = np.inf
    x[:, 2] = 1e-6  # flat (lasts more than flat_s = 0.1 s = 50 samples)
    x[7, 3] = 0.01  # beyond the stated range
    x[8, 3] = -0.02
    rep = check(x)
    assert not rep.ok
    assert rep.nonfinite == {"Fz": [3, 4, 9]}
    assert rep.flat == ["Cz"]
    assert rep.saturated == {"Pz": [7, 8]}
    assert rep.bad_channels == ["Fz", "Cz", "Pz"]
    msg = rep.message()
    assert "Fz (samples 3-4, 9)" in msg and "flat: Cz" in msg and "Pz (samples 7-8)" in msg


def test_signal_check_piece_by_piece_equals_whole():
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((600, 4)) * 1e-5).astype(np.float32)
    x[100:300, 1] = x[100, 1]
    x[400:, 2] = x[:, 2].max()
    whole = SignalCheck(list("abcd"), 1000.0)(x)
    check = SignalCheck(list("abcd"), 1000.0)
    flat, sat = set(), {}
    for i in range(0, 600, 7):
        rep = check(x[i:i + 7])
        flat |= set(rep.flat)
        for k, v in rep.saturated.items():
            sat.setdefault(k, []).extend(j + i for j in v)
    assert flat == set(whole.flat) == {"b"} and list(sat) == list(whole.saturated) == ["c"]
    # at once, the rail is reported from its first sample; piece by piece, from the sample
    # at which it has lasted clip_s (earlier pieces were already seen), to the same end
    assert whole.saturated["c"][0] == 400 and whole.saturated["c"][-1] == sat["c"][-1] == 599
    assert set(sat["c"]) <= set(whole.saturated["c"]) and sat["c"][0] <= 400 + 50


def test_filter_from_config_disables_edges_above_nyquist(caplog):
    from rtsource.config import StreamConfig

    cfg = StreamConfig(highpass_hz=1.0, lowpass_hz=45.0, notch_hz=50.0)
    with caplog.at_level(logging.WARNING, logger="rtsource"):
        filt = CausalFilter.from_config(cfg, 80.0, 2)
    assert filt.lowpass is None and filt.notch is None and filt.highpass == 1.0
    assert "lowpass_hz=45" in caplog.text and "notch_hz=50" in caplog.text
    full = CausalFilter.from_config(cfg, 250.0, 2)
    assert (full.highpass, full.lowpass, full.notch) == (1.0, 45.0, 50.0)
    assert 0 < full.delay_s < 0.1
