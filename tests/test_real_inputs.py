"""Inputs as real amplifiers and files deliver them (issue 12's numbered cases), each run
through the live pipeline (real LSL over loopback, what ``rtsource run`` runs) and through
``rtsource.localize`` where both apply. The README's bad-input table points here."""

from __future__ import annotations

import dataclasses
import logging
import subprocess
import sys
import time

import mne
import numpy as np
import pylsl
import pytest

import rtsource
from rtsource.bench.offline import dipole_peak_errors
from rtsource.config import load_config
from rtsource.headmodel import build_headmodel
from rtsource.headmodel.montage import get_montage
from rtsource.online.inputs import guess_volts_factor
from rtsource.online.pipeline import Pipeline
from rtsource.online.preprocess import ChannelMapper, normalize_labels
from rtsource.simulate.amplifier import AmplifierSignal
from rtsource.stream.lslio import resolve_stream
from rtsource.stream.player import Player

MONTAGE = "biosemi32"


def _cfg(name: str, out: str, montage: str = MONTAGE, **stream):
    return load_config(headmodel={"montage": montage, "conductor": "sphere"},
                       stream={"input": name, "output": out, **stream})


def _offline_cfg(**stream):
    return load_config(headmodel={"montage": MONTAGE, "conductor": "sphere"}, stream=stream)


def _eeg(n: int, sfreq: float, seed: int = 0) -> tuple[list[str], np.ndarray]:
    """(n, 32) realistic EEG in volts (simulated sources + background) and its labels."""
    sig = AmplifierSignal(MONTAGE, sfreq, conductor="sphere", seed=seed)
    return list(sig.ch_names), sig.generate(n)[:, :32].astype(np.float32)


def _info(lsl, name, labels, sfreq, units="volts", source_id=None):
    return lsl.make_info(name, labels, srate=sfreq, types=["eeg"] * len(labels),
                         units=[units] * len(labels), source_id=source_id or name)


def _stamps(n: int, sfreq: float, ahead_s: float = 0.0) -> np.ndarray:
    """LSL-clock capture stamps ending ``ahead_s`` after now (what a sender writes)."""
    return pylsl.local_clock() + ahead_s - (n - 1) / sfreq + np.arange(n) / sfreq


def _run(lsl, cfg, info, data, stamps, n_expect, *, timeout=30.0, speed=4.0, chunk=8):
    """Stream ``data`` through a Pipeline; returns (pipe, reader, markers) after the
    expected number of output samples arrived (or the deadline)."""
    sender = lsl.StreamSender(info, data, stamps, speed=speed, chunk=chunk).start()
    pipe, reader, markers = lsl.open_pipeline(cfg)
    try:
        reader.wait_for(n_expect, timeout=timeout)
        lsl.wait_until(lambda: sender.n_pushed == len(data) and
                       pipe.status().n_in == len(data), timeout=10.0)
        reader.poll(timeout=0.2)
        markers.poll()
    finally:
        lsl.close_all(pipe, reader, markers)
        sender.stop()
    return pipe, reader, markers


# -- 1. DC offsets are not saturation --------------------------------------------------
@pytest.mark.lsl
def test_case01_dc_offsets_are_not_saturation(lsl):
    """32 channels (biosemi32), microvolts, 512 Hz, steady offsets of -5,400 to -800 uV
    plus EEG: published live, localised offline, nothing called saturated either way."""
    sfreq, n = 512.0, 1024
    labels, x = _eeg(n, sfreq, seed=1)
    xu = x * 1e6 + np.linspace(-5400.0, -800.0, 32, dtype=np.float32)
    name = lsl.unique("dc")
    pipe, reader, markers = _run(lsl, _cfg(name, lsl.unique("out")),
                                 _info(lsl, name, labels, sfreq, "microvolts"), xu,
                                 _stamps(n, sfreq), n - 1)
    assert reader.n == n - 1 and not markers.of("bad_data")
    assert np.isfinite(reader.data).all() and reader.data.max() > 0
    res = rtsource.localize(xu.T, labels, sfreq, montage=MONTAGE, units="uV",
                            config=_offline_cfg())
    assert res.provenance["signal_check"] == "ok" and np.isfinite(res.regions).all()
    # the same rule flags a real rail both ways
    xr = xu.copy()
    xr[600:700, labels.index("Cz")] = xr[:, labels.index("Cz")].max()
    with pytest.raises(ValueError, match=r"Cz saturated at 1\.17\d-1\.36\d s"):
        rtsource.localize(xr.T, labels, sfreq, montage=MONTAGE, units="uV",
                          config=_offline_cfg())
    name = lsl.unique("rail")
    _, _, markers = _run(lsl, _cfg(name, lsl.unique("out")),
                         _info(lsl, name, labels, sfreq, "microvolts"), xr,
                         _stamps(n, sfreq), n - 80)
    bad = markers.of("bad_data")
    assert bad and {c for m in bad for c in m["channels"]} == {"Cz"}


@pytest.mark.lsl
def test_case01_through_the_commands(lsl, tmp_path, capsys):
    """The same input through `rtsource localize FILE` and `rtsource run` (the commands)."""
    from rtsource.cli import main

    sfreq, n = 512.0, 1024
    labels, x = _eeg(n, sfreq, seed=1)
    xu = x * 1e6 + np.linspace(-5400.0, -800.0, 32, dtype=np.float32)
    info = mne.create_info(labels, sfreq, "eeg")
    raw = mne.io.RawArray(xu.T.astype(np.float64) * 1e-6, info, verbose="error")  # volts
    raw.set_montage(MONTAGE)
    path = tmp_path / "dc_raw.fif"
    raw.save(path, verbose="error")
    assert main(["localize", str(path), "--conductor", "sphere", "--top", "3"]) == 0
    assert "top 3 regions" in capsys.readouterr().out
    cfg = tmp_path / "small.toml"
    cfg.write_text('[headmodel]\nmontage = "biosemi32"\nconductor = "sphere"\n')
    name, out = lsl.unique("dc-cli"), lsl.unique("dc-cli-out")
    sender = lsl.StreamSender(_info(lsl, name, labels, sfreq, "microvolts"), xu,
                              _stamps(n, sfreq), speed=1.0).start()
    run = subprocess.Popen([sys.executable, "-m", "rtsource.cli", "run", "--input", name,
                            "--config", str(cfg), "--output", out, "--duration", "4"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
        sender.stop()
    assert run.returncode == 0, stderr
    assert "Stopped:" in stdout and "saturated" not in stdout + stderr
    stopped = [ln for ln in stdout.splitlines() if ln.startswith("Stopped:")][0]
    n_out = int(stopped.split(" in, ")[1].split(" out")[0])
    assert n_out > 0


# -- 2. offline input in microvolts ------------------------------------------------------
def test_case02_microvolts_offline_one_rule_with_live(caplog):
    sfreq = 250.0
    labels, x = _eeg(250, sfreq, seed=2)
    cfg = _offline_cfg()
    ref = rtsource.localize(x.T, labels, sfreq, montage=MONTAGE, config=cfg)
    with caplog.at_level(logging.WARNING, logger="rtsource"):
        res = rtsource.localize(x.T * 1e6, labels, sfreq, montage=MONTAGE, config=cfg)
    assert "microvolts" in caplog.text and "units='uV'" in caplog.text
    assert "microvolts" in res.provenance["units"]
    np.testing.assert_allclose(res.regions, ref.regions, rtol=1e-3,
                               atol=1e-5 * np.abs(ref.regions).max())
    stated = rtsource.localize(x.T * 1e6, labels, sfreq, montage=MONTAGE, units="uV",
                               config=cfg)
    np.testing.assert_allclose(stated.regions, ref.regions, rtol=1e-3,
                               atol=1e-5 * np.abs(ref.regions).max())
    with pytest.raises(ValueError, match=r"units = 'V'.*look like microvolts.*units='uV'"):
        rtsource.localize(x.T * 1e6, labels, sfreq, montage=MONTAGE, units="V", config=cfg)
    with pytest.raises(ValueError, match=r"units = 'uV'.*look like volts"):
        rtsource.localize(x.T, labels, sfreq, montage=MONTAGE, units="uV", config=cfg)
    # the live path decides unit-less channels with the same function
    assert guess_volts_factor(x * 1e6)[0] == 1e-6 and guess_volts_factor(x)[0] == 1.0
    # an MNE object holding microvolts: 'auto' means volts there, and the message says so
    # (not "units = 'V'", which the user never gave) with the unit to pass
    raw = mne.io.RawArray(x.T.astype(np.float64) * 1e6, mne.create_info(labels, sfreq, "eeg"),
                          verbose="error")
    raw.set_montage(MONTAGE)
    with pytest.raises(ValueError, match=r"should be in volts.*units='uV'.*--units uV") as err:
        rtsource.localize(raw, config=cfg)
    assert "units = 'V'" not in str(err.value)
    np.testing.assert_allclose(rtsource.localize(raw, config=cfg, units="uV").regions,
                               ref.regions, rtol=1e-3, atol=1e-5 * np.abs(ref.regions).max())


@pytest.mark.lsl
def test_case02_unitless_microvolt_stream_live(lsl):
    sfreq, n = 250.0, 500
    labels, x = _eeg(n, sfreq, seed=3)
    name = lsl.unique("nounit")
    info = lsl.make_info(name, labels, srate=sfreq, types=["eeg"] * 32)  # no unit
    _, reader, markers = _run(lsl, _cfg(name, lsl.unique("out")), info, x * 1e6,
                              _stamps(n, sfreq), n - 1)
    units = markers.of("units")
    assert units and units[0]["factor"] == 1e-6 and "microvolts" in units[0]["message"]
    assert reader.n == n - 1


# -- 3. declared rate is not the delivered rate -------------------------------------------
@pytest.mark.lsl
def test_case03_declared_250_delivers_125(lsl):
    """8 channels declaring 250 Hz whose stamps advance at 125 samples/s: named in a marker
    and the status, filters and outlet follow 125 Hz, nothing lost."""
    labels = ["Fp1", "Fp2", "C3", "C4", "P3", "P4", "O1", "O2"]
    all_labels, x = _eeg(1000, 125.0, seed=4)
    x = x[:, [all_labels.index(c) for c in labels]]
    name, out = lsl.unique("rate"), lsl.unique("out")
    info = _info(lsl, name, labels, 250.0)
    stamps = _stamps(1000, 125.0)  # 8 s of capture times, delivered quickly
    sender = lsl.StreamSender(info, x, stamps, speed=4.0).start()
    pipe, reader, markers = lsl.open_pipeline(_cfg(name, out))
    try:
        mism = markers.wait_for("rate_mismatch", timeout=20.0)
        adopted = markers.wait_for("rate_adopted", timeout=10.0)
        assert lsl.wait_until(lambda: pipe.status().n_in == 1000, timeout=20.0)
        st = pipe.status()
        fresh = pylsl.StreamInlet(resolve_stream(name=out, timeout=5.0))
        declared_out = fresh.info(timeout=5.0).nominal_srate()
        fresh.close_stream()
    finally:
        lsl.close_all(pipe, reader, markers)
        sender.stop()
    assert mism and "declares 250 Hz" in mism[0]["message"] and "125" in mism[0]["message"]
    assert mism[0]["adopted_hz"] == 125.0 and adopted[0]["adopted_hz"] == 125.0
    assert st.sfreq == 125.0 and st.declared_hz == 250.0 and st.warnings
    assert pipe.processor.filter.sfreq == 125.0
    assert float(pipe.provenance["output_rate_hz"]) == 125.0
    assert declared_out == 125.0  # never declares a rate it does not produce
    assert st.n_out + st.n_flagged == 1000


# -- 4. a clock that is not LSL's --------------------------------------------------------
@pytest.mark.lsl
def test_case04_unix_time_stamps(lsl):
    sfreq, n = 250.0, 500
    labels, x = _eeg(n, sfreq, seed=5)
    unix = time.time() + np.arange(n) / sfreq
    name = lsl.unique("unix")
    pipe, reader, markers = _run(lsl, _cfg(name, lsl.unique("out")),
                                 _info(lsl, name, labels, sfreq), x, unix, n - 1)
    fc = markers.of("foreign_clock")
    assert fc and "stream.timestamps" in fc[0]["message"]
    st = pipe.status()
    assert st.clock == "foreign" and np.isnan(st.latency_ms[0]) and "unknown" in st.line()
    assert reader.n == n - 1 and abs(reader.ts[-1] - unix[-1]) < 1e-3  # source stamps kept
    # re-stamped on arrival: output on the LSL clock, nothing said about the clock
    name = lsl.unique("unix-arrival")
    pipe, reader, markers = _run(lsl, _cfg(name, lsl.unique("out"), timestamps="arrival"),
                                 _info(lsl, name, labels, sfreq), x, unix, n - 1)
    assert reader.n == n - 1 and not markers.of("foreign_clock")
    assert abs(reader.ts[-1] - pylsl.local_clock()) < 30.0 and np.all(np.diff(reader.ts) > 0)
    assert pipe.status().clock == "arrival"


# -- 5. bad channels ---------------------------------------------------------------------
def _raw_with_broken_c3(sfreq: float = 250.0, n: int = 500):
    labels, x = _eeg(n, sfreq, seed=6)
    broken = x.copy()
    rng = np.random.default_rng(0)
    broken[:, labels.index("C3")] += (rng.normal(size=n) * 300e-6).astype(np.float32)
    raw = mne.io.RawArray(broken.T.astype(np.float64),
                          mne.create_info(labels, sfreq, "eeg"), verbose="error")
    raw.set_montage(MONTAGE)
    raw.info["bads"] = ["C3"]
    return labels, x, raw


def test_case05_bads_left_out_offline():
    labels, clean, raw = _raw_with_broken_c3()
    cfg = _offline_cfg()
    res = rtsource.localize(raw, config=cfg)
    assert res.provenance["excluded_channels"] == "C3"
    keep = [c for c in labels if c != "C3"]
    ref = rtsource.localize(clean.T[[labels.index(c) for c in keep]], keep, 250.0,
                            montage=MONTAGE, config=cfg)
    np.testing.assert_allclose(res.regions, ref.regions, rtol=1e-3,
                               atol=1e-5 * np.abs(ref.regions).max())
    used = rtsource.localize(raw, config=cfg, exclude=())  # the opt-out
    assert used.provenance["excluded_channels"] == "none"
    # with the broken channel the regions are far from the clean ones
    assert np.abs(used.regions - ref.regions).max() > 0.2 * np.abs(ref.regions).max()


@pytest.mark.lsl
def test_case05_play_carries_bads_and_run_honours_them(lsl, tmp_path):
    _, _, raw = _raw_with_broken_c3()
    path = tmp_path / "bads_raw.fif"
    raw.save(path, verbose="error")
    name = lsl.unique("play-bads")
    player = Player(path, name=name, source_id=name, wait_for_consumer_s=30.0, linger_s=10.0)
    player.start()
    pipe, reader, markers = lsl.open_pipeline(_cfg(name, lsl.unique("out")))
    try:
        assert reader.wait_for(100, timeout=30.0)
    finally:
        lsl.close_all(pipe, reader, markers)
        player.stop()
    assert "C3 (marked bad in the stream's metadata)" in pipe.provenance["bad_channels"]
    assert "C3" not in pipe.processor.mapper.mapping.used_labels
    assert pipe.status().n_channels == 31


@pytest.mark.lsl
def test_case05_stream_bads_setting(lsl):
    sfreq, n = 250.0, 300
    labels, x = _eeg(n, sfreq, seed=7)
    name = lsl.unique("bads")
    sender = lsl.StreamSender(_info(lsl, name, labels, sfreq), x, _stamps(n, sfreq)).start()
    try:
        with pytest.raises(ValueError, match=r"stream.bads names \['C33'\].*C3"):
            Pipeline(_cfg(name, lsl.unique("out"), bads=["C33"])).open()
        pipe = Pipeline(_cfg(name, lsl.unique("out"), bads=["c3", "Pz"])).open()
        pipe.close()
    finally:
        sender.stop()
    assert pipe.processor.mapper.n_used == 30 and "C3, Pz (stream.bads)" in \
        pipe.provenance["bad_channels"]


# -- 6. montage names --------------------------------------------------------------------
def test_case06_montage_names_mne_renamed():
    old, new = get_montage("standard_1020"), get_montage("colin27_1020")
    assert old.ch_names == new.ch_names
    np.testing.assert_allclose(np.array(list(old.get_positions()["ch_pos"].values())),
                               np.array(list(new.get_positions()["ch_pos"].values())))
    with pytest.raises(ValueError, match=r"Did you mean 'colin27_1020' \(formerly "
                                         r"'standard_1020'\)"):
        get_montage("standard_102O")
    labels = ["Fp1", "Fp2", "F3", "F4", "C3", "C4", "P3", "P4", "O1", "O2", "Cz", "Pz"]
    x = np.random.default_rng(1).normal(size=(12, 100)) * 1e-5
    cfg = load_config(headmodel={"conductor": "sphere"})
    a = rtsource.localize(x, labels, 250.0, montage="standard_1020", config=cfg)
    b = rtsource.localize(x, labels, 250.0, montage="colin27_1020", config=cfg)
    np.testing.assert_allclose(a.regions, b.regions, rtol=1e-4)
    raw = mne.io.RawArray(x, mne.create_info(labels, 250.0, "eeg"), verbose="error")
    with pytest.raises(ValueError, match="colin27_1005"):  # the advice works as given
        rtsource.localize(raw, config=cfg)
    assert rtsource.localize(raw, montage="colin27_1005", config=cfg).regions.shape[0] == 100


@pytest.mark.lsl
def test_case06_montage_names_live(lsl):
    sfreq, n = 250.0, 300
    labels, x = _eeg(n, sfreq, seed=8)
    keep = [c for c in labels if c in get_montage("colin27_1020").ch_names]
    x = x[:, [labels.index(c) for c in keep]]
    name = lsl.unique("m1020")
    pipe, reader, _ = _run(lsl, _cfg(name, lsl.unique("out"), montage="standard_1020"),
                           _info(lsl, name, keep, sfreq), x, _stamps(n, sfreq), n - 1)
    assert reader.n == n - 1 and pipe.processor.mapper.n_used == len(keep)


# -- 7. channel labels in the wild -----------------------------------------------------
def test_case07_label_conventions():
    assert normalize_labels(["Fc5.", "Cz..", "T9.."]) == ["fc5", "cz", "t9"]
    assert normalize_labels(["EEG Fp1-CPz", "EEG C3-CPz", "EEG CPz-CPz", "ECG"]) == \
        ["fp1", "c3", "cpz", "ecg"]
    assert normalize_labels(["EEG Fp1-REF", "EEG-O2", "eeg_T3-A1"]) == ["fp1", "o2", "t3"]
    # bipolar derivations keep their second electrode: they match no single electrode
    assert normalize_labels(["Fp1-F7", "F7-T7", "T7-P7"]) == ["fp1-f7", "f7-t7", "t7-p7"]
    model = get_montage(MONTAGE).ch_names
    edf = [f"{c}." for c in model]
    assert ChannelMapper(edf, ["eeg"] * 32, model).n_used == 32
    ref = [f"EEG {c}-CPz" for c in model]
    assert ChannelMapper(ref, [None] * 32, model).n_used == 32


def test_case07_edf_labels_offline():
    labels, x = _eeg(200, 250.0, seed=9)
    res = rtsource.localize(x.T, [f"EEG {c}-CPz" for c in labels], 250.0, montage=MONTAGE,
                            config=_offline_cfg())
    assert res.provenance["channels_used"] == "32"


@pytest.mark.lsl
def test_case07_stream_without_labels(lsl):
    sfreq, n = 250.0, 300
    _, x = _eeg(n, sfreq, seed=10)
    name = lsl.unique("nolabels")
    info = pylsl.StreamInfo(name, "EEG", 32, sfreq, "float32", name)  # no desc at all
    sender = lsl.StreamSender(info, x, _stamps(n, sfreq)).start()
    try:
        with pytest.raises(ValueError, match=r"carries no channel labels \(32 channels.*"
                                             r"--channel-labels"):
            Pipeline(_cfg(name, lsl.unique("out"))).open()
        with pytest.raises(ValueError, match="3 channel labels given.*has 32 channels"):
            Pipeline(_cfg(name, lsl.unique("out"), channel_labels=["Fp1", "Fz", "Cz"])).open()
    finally:
        sender.stop()
    name = lsl.unique("nolabels-montage")
    info = pylsl.StreamInfo(name, "EEG", 32, sfreq, "float32", name)
    pipe, reader, _ = _run(lsl, _cfg(name, lsl.unique("out"), channel_labels=["montage"],
                                     units="V"), info, x, _stamps(n, sfreq), n - 1)
    assert reader.n == n - 1 and pipe.processor.mapper.n_used == 32
    assert "montage biosemi32's channel order" in pipe.provenance["channel_labels"]


@pytest.mark.lsl
def test_case07_edf_style_labels_live(lsl):
    sfreq, n = 250.0, 300
    labels, x = _eeg(n, sfreq, seed=11)
    name = lsl.unique("edf")
    pipe, reader, _ = _run(lsl, _cfg(name, lsl.unique("out")),
                           _info(lsl, name, [f"{c}." for c in labels], sfreq), x,
                           _stamps(n, sfreq), n - 1)
    assert reader.n == n - 1 and pipe.processor.mapper.n_used == 32


# -- 8. warnings reach users, once ------------------------------------------------------
def test_case08_offline_warnings_reach_users_once(tmp_path):
    """A fresh interpreter with no logging configured: the warning is printed, once."""
    script = (
        "import numpy as np, rtsource\n"
        "from rtsource.config import load_config\n"
        "from rtsource.headmodel.montage import get_montage\n"
        "labels = get_montage('biosemi32').ch_names[:31] + ['XYZ']\n"
        "x = np.random.default_rng(0).normal(size=(32, 50)) * 1e-5\n"
        "cfg = load_config(headmodel={'montage': 'biosemi32', 'conductor': 'sphere'})\n"
        "for _ in range(2):\n"
        "    rtsource.localize(x, labels, 250.0, config=cfg, on_missing='drop')\n"
        "    rtsource.localize(x * 1e6, labels, 250.0, config=cfg, on_missing='drop')\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count("XYZ") == 1 and "match no head-model channel" in out.stderr
    assert out.stderr.count("look like microvolts") == 1


@pytest.mark.lsl
def test_case08_several_matching_streams_always_named(lsl, caplog):
    name = lsl.unique("twin")
    outlets = [pylsl.StreamOutlet(lsl.make_info(name, ["Cz"], source_id=f"{name}-{k}"))
               for k in range(2)]
    try:
        for _ in range(3):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="rtsource"):
                resolve_stream(name=name, timeout=5.0)
            assert "2 LSL streams match" in caplog.text
    finally:
        del outlets


@pytest.mark.lsl
def test_case08_no_falling_behind_at_start_up(lsl):
    """The input buffered while the pipeline waited (here 1.5 s of it) is worked off at
    start-up: no falling_behind marker blames speed."""
    sfreq, n = 250.0, 1500
    labels, x = _eeg(n, sfreq, seed=12)
    name = lsl.unique("startup")
    sender = lsl.StreamSender(_info(lsl, name, labels, sfreq), x, _stamps(n, sfreq, 6.0 - 0.0),
                              speed=1.0, chunk=5).start()
    pipe = Pipeline(_cfg(name, lsl.unique("out"))).open()  # subscribed: input buffers
    reader = lsl.RegionReader(pipe.output_name)
    markers = lsl.MarkerReader(pipe.marker_name)
    try:
        assert lsl.wait_until(lambda: sender.n_pushed >= 1.5 * sfreq, timeout=20.0)
        pipe.start()
        assert reader.wait_for(n - 1, timeout=30.0)
        markers.poll()
    finally:
        lsl.close_all(pipe, reader, markers)
        sender.stop()
    assert not markers.of("falling_behind"), markers.of("falling_behind")
    assert pipe.status().n_out == n - 1


# -- 10. offline filters ---------------------------------------------------------------
def _peak_errors(filters: bool, n: int = 30) -> np.ndarray:
    """Single dipoles, 20-sample windows at 500 Hz, 10 dB, simulated with a head model
    the inverse was not built from (other conductivities); peak errors in mm."""
    cfg = load_config(headmodel={"montage": "biosemi128", "conductor": "sphere"})
    sim = build_headmodel(dataclasses.replace(cfg.headmodel,
                                              conductivity=(0.33, 0.0042, 0.33)),
                          progress=False)
    loc = rtsource.Localizer(sim.ch_names, 500.0, config=cfg, filters=filters)
    return dipole_peak_errors(loc, sim, n, snr_db=10.0, seed=3)


def test_case10_offline_filters_off_by_default():
    off = _peak_errors(filters=False)
    on = _peak_errors(filters=True)
    # here (30 windows, 128 channels, sphere): median 0.0 / p90 9.9 mm off, 7.0 / 21.1 mm
    # on; the figures are re-measured in bench/bench_offline_filters.py
    assert np.median(off) <= 5.0 and np.percentile(off, 90) < 15.0
    assert np.median(on) > np.median(off) + 3.0
    assert np.percentile(on, 90) > 1.5 * np.percentile(off, 90)
    res = rtsource.localize(np.random.default_rng(0).normal(size=(32, 20)) * 1e-5,
                            get_montage(MONTAGE).ch_names, 500.0, config=_offline_cfg())
    assert res.provenance["filters_applied"].startswith("none")


# -- other bad inputs (the README's table) ---------------------------------------------
@pytest.mark.lsl
@pytest.mark.parametrize(("n_ch", "rate", "fmt", "match"), [
    (32, 0.0, "float32", "irregular sampling rate"),
    (32, 250.0, "string", "carries strings.*marker stream"),
    (0, 250.0, "float32", "has no channels"),
])
def test_unusable_streams_are_refused_clearly(lsl, n_ch, rate, fmt, match):
    name = lsl.unique("unusable")
    labels = get_montage(MONTAGE).ch_names[:n_ch]
    outlet = pylsl.StreamOutlet(lsl.make_info(name, labels, srate=rate, fmt=fmt,
                                              types=["eeg"] * n_ch))
    try:
        with pytest.raises(ValueError, match=match):
            Pipeline(_cfg(name, lsl.unique("out"))).open()
    finally:
        del outlet


def test_corrupt_config_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[stream\nhop_s = 0.01\n")
    with pytest.raises(ValueError, match=r"broken\.toml' is not valid TOML.*line 1"):
        load_config(path)


def test_kernel_of_another_montage_is_never_reused():
    """Same labels, other positions: another head model and kernel (cache keys hold the
    positions), so a cached kernel of one montage never serves another."""
    labels = get_montage(MONTAGE).ch_names
    pos = np.array(list(get_montage(MONTAGE).get_positions()["ch_pos"].values()))
    moved = pos.copy()
    moved[:, 2] += 0.005  # the cap sits 5 mm higher
    cfg = load_config(headmodel={"conductor": "sphere"})
    x = np.random.default_rng(2).normal(size=(32, 30)) * 1e-5
    a = rtsource.localize(x, labels, 250.0, montage=(labels, pos), config=cfg)
    b = rtsource.localize(x, labels, 250.0, montage=(labels, moved), config=cfg)
    assert a.provenance["headmodel_hash"] != b.provenance["headmodel_hash"]
    assert a.provenance["inverse_hash"] != b.provenance["inverse_hash"]


@pytest.mark.lsl
def test_a_consumer_that_stops_reading_does_not_stall_the_pipeline(lsl):
    sfreq, n = 250.0, 1500
    labels, x = _eeg(n, sfreq, seed=13)
    name = lsl.unique("stalled")
    sender = lsl.StreamSender(_info(lsl, name, labels, sfreq), x, _stamps(n, sfreq),
                              speed=6.0).start()
    pipe, reader, markers = lsl.open_pipeline(_cfg(name, lsl.unique("out")))
    try:
        assert reader.wait_for(50, timeout=20.0)  # then it stops pulling
        assert lsl.wait_until(lambda: pipe.status().n_out == n - 1, timeout=30.0)
        assert pipe.running and pipe.error is None and pipe.status().n_dropped == 0
    finally:
        lsl.close_all(pipe, reader, markers)
        sender.stop()


def test_too_few_channels_and_unpositioned_eeg_channels():
    cfg = load_config(headmodel={"conductor": "sphere"})
    x = np.random.default_rng(3).normal(size=(3, 100)) * 1e-5
    with pytest.raises(ValueError, match=r"Only 1 channel\(s\) \(Fp1\) match.*at least 3"):
        rtsource.localize(x, ["Fp1", "XX1", "XX2"], 250.0, montage=MONTAGE, config=cfg,
                          on_missing="drop")
    # BioSemi's EXG channels typed EEG, without positions
    labels = get_montage(MONTAGE).ch_names
    names = labels + ["EXG1", "EXG2"]
    data = np.random.default_rng(4).normal(size=(34, 200)) * 1e-5
    raw = mne.io.RawArray(data, mne.create_info(names, 250.0, "eeg"), verbose="error")
    raw.set_montage(MONTAGE, on_missing="ignore")
    with pytest.raises(ValueError, match=r"\['EXG1', 'EXG2'\] have no electrode position.*"
                                         r"--bads EXG1,EXG2"):
        rtsource.localize(raw, config=cfg)
    res = rtsource.localize(raw, config=cfg, exclude=["EXG1", "EXG2"])
    assert res.provenance["channels_used"] == "32"
    assert rtsource.localize(raw, config=cfg, on_missing="drop").regions.shape == (200, 246)


def test_localize_command_reads_epochs_and_picks_a_template(tmp_path, capsys):
    from rtsource.cli import main

    labels = ["Fp1", "Fp2", "F7", "F3", "Fz", "F4", "F8", "T7", "C3", "Cz", "C4", "T8",
              "P7", "P3", "Pz", "P4", "P8", "O1", "Oz", "O2"]
    rng = np.random.default_rng(5)
    raw = mne.io.RawArray(rng.normal(size=(20, 1000)) * 1e-5,
                          mne.create_info(labels, 250.0, "eeg"), verbose="error")
    path = tmp_path / "nopos_raw.fif"
    raw.save(path, verbose="error")
    assert main(["localize", str(path), "--conductor", "sphere", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "using montage 'colin27_1005'" in out  # biosemi128 holds 2 of these labels
    raw.set_montage("colin27_1005")
    epochs = mne.make_fixed_length_epochs(raw, duration=1.0, preload=True, verbose="error")
    epo = tmp_path / "x-epo.fif"
    epochs.save(epo, verbose="error")
    assert main(["localize", str(epo), "--conductor", "sphere", "--top", "2"]) == 0
    assert "on 1000 samples; top 2 regions" in capsys.readouterr().out
