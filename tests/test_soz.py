"""Seizure-onset-zone ranking (rtsource.soz, ``rtsource soz``): the detector on simulated
spikes and on spike-free background, the ranking with the temporal network on the held-out
head model, the command end to end, and clear errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest

from rtsource.config import HeadModelConfig, InverseConfig

#: The evaluation's held-out head model and montage (never used in training).
HELD_OUT = HeadModelConfig(montage="GSN-HydroCel-129", conductor="sphere",
                           conductivity=(0.332, 0.0113, 0.332))


@pytest.fixture(scope="module")
def projector():
    from rtsource.simulate import load_entry
    from rtsource.simulate.dynamics import RegionProjector, brain_nodes

    _, hm = load_entry(HELD_OUT, None, InverseConfig(method="eloreta"))
    return RegionProjector(hm, brain_nodes())


@pytest.fixture(scope="module")
def interictal():
    """Two 10 s interictal runs at 250 Hz (run 0: a cortical focus, run 1: a thalamic one),
    seed 2024 (the evaluation's; training uses 11); cached after the first build."""
    from rtsource.simulate.dynamics import LibraryConfig, build_library

    return build_library(LibraryConfig(regime="interictal", n_runs=2, duration_s=10.0,
                                       sfreq=250.0, seed=2024), progress=False)


@pytest.fixture(scope="module")
def background(projector):
    """10 s of the spontaneous (alpha) brain model through the held-out head model, white
    sensor noise at 10 dB: no epileptiform activity."""
    from rtsource.simulate.dynamics import LibraryConfig, build_library

    lib = build_library(LibraryConfig(regime="spontaneous", n_runs=1, duration_s=10.0,
                                      sfreq=250.0, seed=2024), progress=False)
    rng = np.random.default_rng(5)
    u = rng.standard_normal((16, 3))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    eeg = projector.leadfield(u) @ lib.waveforms[0].T.astype(float)
    eeg -= eeg.mean(axis=0)
    return eeg + eeg.std() / np.sqrt(10.0) * rng.standard_normal(eeg.shape)


def _record(interictal, projector, run: int, snr_db: float = 8.0):
    from rtsource.soz import simulate_recording

    return simulate_recording(interictal, run, projector, np.random.default_rng(0),
                              focus_snr_db=(snr_db, snr_db), spread_mm=(0.0, 0.0))


def _save_fif(path, eeg, ch_names, ch_pos, sfreq):
    import mne

    raw = mne.io.RawArray(eeg, mne.create_info(list(ch_names), sfreq, "eeg"), verbose="error")
    raw.set_montage(mne.channels.make_dig_montage(dict(zip(ch_names, ch_pos, strict=True)),
                                                  coord_frame="head"))
    raw.save(path, overwrite=True, verbose="error")
    return path


def test_detector_finds_spikes_at_their_times(interictal, projector):
    from rtsource.soz import detect_events

    rec = _record(interictal, projector, run=1)  # thalamic focus: sporadic spikes
    assert rec.focus_kind == "thalamic"
    ev = detect_events(rec.eeg, rec.sfreq)
    inside = rec.spikes_s[(rec.spikes_s > 0.3) & (rec.spikes_s < 9.7)]
    assert len(inside) >= 2
    # every true spike found within 30 ms, nothing else
    d_true = np.abs(inside[:, None] - ev.peak_s[None, :]).min(axis=1)
    assert (d_true <= 0.03).all(), (inside, ev.peak_s)
    assert len(ev) == len(inside)
    # the onset precedes the peak by a spike's rise (a few to 100 ms)
    rise = ev.peak_s - ev.onset_s
    assert ((rise > 0) & (rise < 0.1)).all(), rise
    assert set(ev.kind) == {"spike"}


def test_detector_quiet_on_background(background):
    from rtsource.soz import detect_events

    ev = detect_events(background, 250.0)
    assert len(ev) == 0
    assert 1.0 < ev.max_ratio < ev.config.threshold
    msg = ev.none_found()
    assert "No epileptiform event found" in msg and "threshold" in msg


def test_detector_labels_rhythmic_discharges():
    """A 5 Hz train of sharp transients is one discharge; lone transients are spikes."""
    from rtsource.soz import detect_events

    fs, n_ch = 250.0, 16
    rng = np.random.default_rng(1)
    t = np.arange(int(12 * fs)) / fs
    topo = rng.standard_normal(n_ch)
    s = np.zeros_like(t)
    peaks = [1.5, 4.0] + list(6.0 + 0.2 * np.arange(10))  # 2 lone spikes, a 2 s discharge
    for p in peaks:
        s += np.exp(-0.5 * ((t - p) / 0.015) ** 2)
    eeg = topo[:, None] * s[None] + 0.05 * rng.standard_normal((n_ch, len(t)))
    ev = detect_events(eeg, fs)
    assert np.allclose(ev.peak_s, peaks, atol=0.01)
    assert list(ev.kind[:2]) == ["spike", "spike"] and set(ev.kind[2:]) == {"discharge"}


def test_ranking_puts_focus_in_top3_with_temporal(interictal, projector):
    from rtsource.online.temporal import SHIPPED
    from rtsource.soz import localize_soz

    if not SHIPPED.exists():
        pytest.skip("the temporal network's weights are not installed")
    rec = _record(interictal, projector, run=0)  # cortical focus
    inv = {"headmodel": {"conductor": "sphere", "conductivity": [0.332, 0.0113, 0.332]}}
    res = localize_soz(rec.eeg, rec.ch_names, rec.sfreq, HELD_OUT.montage, "temporal",
                       config=inv)
    assert res.method == "temporal" and len(res.regions) == 226
    assert rec.focus_name in res.regions[:3], res.table(5)
    assert res.n_events >= 3
    assert np.all(np.diff(res.score) <= 0) and res.score[0] == pytest.approx(1.0, abs=0.2)
    assert res.average.shape == (226, len(res.lags_s))
    assert set(res.kinds) == {"cortical", "thalamic"}


def test_evaluation_scores_every_method_on_the_same_recordings(interictal):
    """evaluate_soz end to end on the two 10 s runs (the fixture's cached library): one row
    per recording and method, the summary from those rows, the network's runtime recorded."""
    from rtsource.online.temporal import SHIPPED
    from rtsource.soz import SOZEvalConfig, evaluate_soz

    if not SHIPPED.exists():
        pytest.skip("the temporal network's weights are not installed")
    cfg = SOZEvalConfig(regimes=("interictal",), n_recordings=2, duration_s=10.0)
    res = evaluate_soz(cfg, methods=("temporal", "eloreta"), progress=False)
    assert [(r["run"], r["method"]) for r in res.rows] == [
        (0, "temporal"), (0, "eloreta"), (1, "temporal"), (1, "eloreta")]
    assert {r["focus_kind"] for r in res.rows} == {"cortical", "thalamic"}
    assert res.rows[0]["focus"] == res.rows[1]["focus"] == interictal.names[
        interictal.foci[0, 0]]
    for row in res.summary:
        sel = [r for r in res.rows if r["method"] == row["method"]
               and r["focus_kind"] == row["focus_kind"]]
        assert row["n"] == len(sel) == 1
        assert row["top3_hit_rate"] == float(sel[0]["hit"])
    net = res.meta["network"]
    assert net["sha256"] and (net["backend"], net["precision"]) == ("onnx", "fp32")


def test_ranking_same_rule_for_linear_methods(interictal, projector):
    from rtsource.soz import localize_soz

    rec = _record(interictal, projector, run=0)
    inv = {"headmodel": {"conductor": "sphere", "conductivity": [0.332, 0.0113, 0.332]}}
    res = localize_soz(rec.eeg, rec.ch_names, rec.sfreq, HELD_OUT.montage, "eloreta",
                       config=inv)
    assert res.method == "eloreta" and len(res.regions) == 226  # the node rows of BN246
    assert rec.focus_name in res.regions[:3], res.table(5)


def test_segments_of_a_long_recording_match_one_pass(interictal, projector):
    """Segments (bounded memory) give a stateless method's numbers exactly, on one time axis."""
    from rtsource.soz import region_activity

    rec = _record(interictal, projector, run=0)
    inv = {"headmodel": {"conductor": "sphere", "conductivity": [0.332, 0.0113, 0.332]}}
    one = region_activity(rec.eeg, rec.ch_names, rec.sfreq, HELD_OUT.montage, "eloreta",
                          config=inv)
    seg = region_activity(rec.eeg, rec.ch_names, rec.sfreq, HELD_OUT.montage, "eloreta",
                          config=inv, segment_s=3.0, warmup_s=1.0)
    assert one.data.shape == seg.data.shape == (2500, 226)
    np.testing.assert_allclose(seg.times, one.times, atol=1e-9)
    np.testing.assert_allclose(seg.data, one.data, rtol=1e-5, atol=1e-6 * np.abs(one.data).max())
    assert "3 segments" in seg.provenance["soz_segments"]


def test_cli_end_to_end(tmp_path, interictal, projector, capsys):
    from rtsource.cli import main

    rec = _record(interictal, projector, run=0)
    path = _save_fif(tmp_path / "rec_raw.fif", rec.eeg, rec.ch_names,
                     projector.headmodel.ch_pos, rec.sfreq)
    out = tmp_path / "soz"
    code = main(["soz", str(path), "--method", "eloreta", "--conductor", "sphere", "--top",
                 "4", "--out", str(out), "--plot", str(tmp_path / "soz.svg")])
    text = capsys.readouterr().out
    assert code == 0, text
    assert "129 EEG channels, 10.0 s at 250 Hz" in text
    assert "Detected " in text and "the 4 regions most likely to lead" in text
    table = [ln for ln in text.splitlines() if ln.strip()[:2] in {"1 ", "2 ", "3 ", "4 "}]
    assert len(table) == 4 and "cortical" in table[0]
    assert (out / "soz.png").stat().st_size > 10_000 and (tmp_path / "soz.svg").exists()
    import csv

    rows = list(csv.DictReader(open(out / "soz_regions.csv")))
    assert len(rows) == 226 and rows[0]["rank"] == "1"
    assert {"region", "kind", "score", "latency_ms", "x_mm"} <= set(rows[0])
    events = list(csv.DictReader(open(out / "soz_events.csv")))
    assert len(events) >= 3 and float(events[0]["peak_s"]) >= float(events[0]["onset_s"])


def test_cli_errors_are_clear(tmp_path, background, projector, capsys):
    from rtsource.cli import main

    hm = projector.headmodel
    # unreadable file
    bad = tmp_path / "broken_raw.fif"
    bad.write_bytes(b"not a recording")
    assert main(["soz", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rtsource soz: error: Cannot read") and "Traceback" not in err
    # missing file
    assert main(["soz", str(tmp_path / "nothing_raw.fif")]) == 1
    assert "does not exist" in capsys.readouterr().err
    # too short
    short = _save_fif(tmp_path / "short_raw.fif", background[:, :500], hm.ch_names, hm.ch_pos,
                      250.0)
    assert main(["soz", str(short), "--method", "eloreta", "--conductor", "sphere"]) == 1
    err = capsys.readouterr().err
    assert "2.00 s long" in err and "at least 3 s" in err
    # no events: says so, with the threshold and what to try
    quiet = _save_fif(tmp_path / "quiet_raw.fif", background, hm.ch_names, hm.ch_pos, 250.0)
    assert main(["soz", str(quiet), "--method", "eloreta", "--conductor", "sphere"]) == 1
    err = capsys.readouterr().err
    assert "No epileptiform event found" in err and "threshold" in err
    # spike-free: no advice to lower the threshold into the background's range
    assert "within what spike-free EEG reaches" in err and "--band" in err
    assert "Try a lower threshold" not in err
    # what localisation would refuse is refused before detection, not hidden behind it
    assert main(["soz", str(quiet), "--conductor", "sphere", "--checkpoint",
                 str(tmp_path / "none.safetensors")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "No epileptiform" not in err
    microvolts = _save_fif(tmp_path / "uv_raw.fif", background * 1e6, hm.ch_names, hm.ch_pos,
                           250.0)  # microvolt values in a file that says volts
    assert main(["soz", str(microvolts), "--method", "eloreta", "--conductor", "sphere"]) == 1
    err = capsys.readouterr().err
    assert "should be in volts" in err and "--units uV" in err and "'V'" not in err


def test_no_event_advice_stays_above_the_background_ratio(interictal, projector):
    from rtsource.soz import NOISE_RATIO, DetectorConfig, detect_events

    rec = _record(interictal, projector, run=1)
    ev = detect_events(rec.eeg, rec.sfreq, DetectorConfig(threshold=1000.0))
    assert len(ev) == 0 and ev.max_ratio >= NOISE_RATIO
    msg = ev.none_found()
    suggested = float(msg.split("--threshold, e.g. ")[1].split(";")[0])
    assert NOISE_RATIO <= suggested <= ev.max_ratio


def test_api_errors():
    from rtsource.soz import DetectorConfig, NoEventsError, detect_events, localize_soz

    with pytest.raises(ValueError, match="at least 3 s"):
        detect_events(np.zeros((8, 100)), 250.0)
    with pytest.raises(ValueError, match="shape"):
        detect_events(np.zeros(1000), 250.0)
    with pytest.raises(ValueError, match="NaN"):
        detect_events(np.full((8, 1000), np.nan), 250.0)
    with pytest.raises(ValueError, match="peak-to-trough ratio"):
        DetectorConfig(threshold=0.5)
    with pytest.warns(UserWarning, match="spike-free EEG"):
        DetectorConfig(threshold=1.3)
    with pytest.raises(ValueError, match="epochs"):
        localize_soz(np.zeros((2, 8, 1000)), [f"E{i}" for i in range(8)], 250.0)
    rng = np.random.default_rng(0)
    with pytest.raises(NoEventsError, match="No epileptiform event"):
        localize_soz(rng.standard_normal((8, 2000)) * 1e-6, [f"E{i}" for i in range(8)], 250.0)


@pytest.mark.parametrize("bad, says", [
    ({"focus_snr_db": (10.0, float("nan"))}, "focus_snr_db.*--focus-snr"),
    ({"focus_snr_db": (10.0, 0.0)}, "LO <= HI"),
    ({"spread_mm": (-5.0, 20.0)}, "spread_mm.*--spread"),
    ({"snr_db": float("inf")}, "snr_db.*--snr"),
])
def test_soz_evaluation_settings_are_checked(bad, says):
    from rtsource.soz import SOZEvalConfig

    with pytest.raises(ValueError, match=says):
        SOZEvalConfig(**bad)
