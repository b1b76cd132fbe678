"""The streaming commands (simulate-stream, play, run) as a user runs them: real
subprocesses, real loopback LSL, clean shutdown on SIGTERM."""

from __future__ import annotations

import json
import time
from pathlib import Path

import mne
import numpy as np
import pylsl
import pytest

from rtsource.cli import main
from rtsource.stream.lslio import EEGInlet, resolve_stream


@pytest.mark.parametrize("command", ["simulate-stream", "play", "run"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert {"simulate-stream": "--rate", "play": "--speed", "run": "--backend"}[command] in text


@pytest.mark.lsl
def test_run_with_absent_input_fails_clearly(capsys, lsl):
    name = lsl.unique("absent")
    code = main(["run", "--input", name, "--resolve-timeout", "0.5", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"No LSL stream with name='{name}' appeared within 0.5 s" in err


@pytest.mark.lsl
def test_simulate_stream_and_run_end_to_end(tmp_path: Path, lsl):
    sim_name, out_name = lsl.unique("cli-sim"), lsl.unique("cli-out")
    cfg = tmp_path / "small.toml"
    cfg.write_text(
        '[headmodel]\nmontage = "biosemi32"\nconductor = "sphere"\n'
        '[stream]\nresolve_timeout_s = 60.0\n'
    )
    sim = lsl.cli("simulate-stream", "--montage", "biosemi32", "--rate", "250", "--name", sim_name,
                   "--duration", "120", "--segment", "1")
    run = lsl.cli("run", "--input", sim_name, "--config", str(cfg), "--output", out_name,
                   "--wait-for-consumer", "60")
    regions = markers = None
    try:
        regions = pylsl.StreamInlet(resolve_stream(name=out_name, timeout=90.0))
        markers = pylsl.StreamInlet(resolve_stream(name=f"{out_name}-markers", timeout=10.0))
        info = regions.info(timeout=5.0)
        assert info.type() == "SourceActivation" and info.nominal_srate() == 250.0
        assert info.channel_count() == 246
        markers.open_stream(timeout=5.0)
        regions.open_stream(timeout=5.0)
        got = 0
        t_open = time.monotonic()
        deadline = t_open + 30.0
        # four seconds of data, and at least three of real time (a backlog buffered at
        # start-up is worked off in well under a second)
        while (got < 1000 or time.monotonic() < t_open + 3.0) and time.monotonic() < deadline:
            _, ts = regions.pull_chunk(timeout=0.2, min_samples=1)
            got += len(ts)
        assert got >= 1000
        # status lines about once a second while it runs
        assert lsl.wait_until(lambda: run.poll() is None, timeout=0.1)
    finally:
        if regions is not None:
            regions.close_stream()
        code, out, err = lsl.finish(run)
        items = []
        if markers is not None:
            while True:
                sample, _ = markers.pull_sample(timeout=0.5)
                if sample is None:
                    break
                items.append(json.loads(sample[0]))
            markers.close_stream()
        sim_code, sim_out, sim_err = lsl.finish(sim)
    assert code == 0, err
    assert "Publishing 246 regions" in out and "from MNE loc" in out
    status = [line for line in out.splitlines() if line.startswith("[")]
    assert len(status) >= 2, out
    assert all("Hz" in s and "latency" in s and "drops 0" in s and "eloreta/numpy-cpu" in s
               for s in status[1:])
    assert "Stopped:" in out
    assert any(m["kind"] == "stopped" for m in items), items
    assert sim_code == 0, sim_err
    assert "active:" in sim_out and "Stopped after" in sim_out


@pytest.mark.lsl
def test_play_command_replays_the_file(tmp_path: Path, lsl):
    rng = np.random.default_rng(0)
    mont = mne.channels.make_standard_montage("biosemi32")
    info = mne.create_info(mont.ch_names, 200.0, "eeg")
    raw = mne.io.RawArray(rng.standard_normal((32, 400)) * 1e-5, info, verbose="error")
    raw.set_montage(mont)
    path = tmp_path / "rec_raw.fif"
    raw.save(path, verbose="error")
    name = lsl.unique("cli-play")
    proc = lsl.cli("play", str(path), "--name", name, "--speed", "2", "--loop")
    inlet = None
    try:
        inlet = EEGInlet(resolve_stream(name=name, timeout=60.0))
        assert inlet.sfreq == 200.0 and inlet.labels == mont.ch_names
        assert all(c.position_source == "loc" for c in inlet.channels)
        data, ts = lsl.pull_until(inlet, 300, timeout=20.0)
        assert len(ts) >= 300
        # the loop restarts the file: whatever offset we joined at, samples are the file's
        ref = raw.get_data().T.astype(np.float32)
        start = int(np.argmin(np.abs(ref - data[0]).sum(axis=1)))
        idx = (start + np.arange(300)) % 400
        np.testing.assert_array_equal(data[:300], ref[idx])
        assert np.all(np.diff(ts[:300]) > 0)
    finally:
        if inlet is not None:
            inlet.close()
        code, out, err = lsl.finish(proc)
    assert code == 0, err
    assert f"Playing {path}" in out and "Stopped after" in out
