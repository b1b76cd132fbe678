"""``rtsource simulate-stream --dynamics`` live, and ``rtsource run`` on it: real
subprocesses, real loopback LSL; the truth stream names the foci."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pylsl
import pytest

from rtsource.stream.lslio import resolve_stream


@pytest.mark.lsl
@pytest.mark.slow
def test_interictal_stream_runs_live_and_run_publishes_regions(tmp_path: Path, lsl):
    sim_name, out_name = lsl.unique("dyn-sim"), lsl.unique("dyn-out")
    cfg = tmp_path / "small.toml"
    cfg.write_text('[headmodel]\nmontage = "biosemi32"\nconductor = "sphere"\n'
                   '[stream]\nresolve_timeout_s = 90.0\n')
    sim = lsl.cli("simulate-stream", "--dynamics", "interictal", "--foci", "PrG_6_3_L",
                   "--montage", "biosemi32", "--rate", "250", "--name", sim_name,
                   "--duration", "150")
    run = lsl.cli("run", "--input", sim_name, "--config", str(cfg), "--output", out_name,
                   "--wait-for-consumer", "90")
    truth = regions = None
    items: list[dict] = []
    try:
        truth = pylsl.StreamInlet(resolve_stream(name=f"{sim_name}-truth", timeout=90.0))
        truth.open_stream(timeout=5.0)
        regions = pylsl.StreamInlet(resolve_stream(name=out_name, timeout=90.0))
        info = regions.info(timeout=5.0)
        assert info.type() == "SourceActivation" and info.channel_count() == 246
        labels = []
        ch = info.desc().child("channels").child("channel")
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        assert "PrG_6_3_L" in labels and "Tha_8_3_L" in labels
        regions.open_stream(timeout=5.0)
        got = 0
        deadline = time.monotonic() + 40.0
        while (got < 1000 or not items) and time.monotonic() < deadline:
            _, ts = regions.pull_chunk(timeout=0.2, min_samples=1)
            got += len(ts)
            sample, _ = truth.pull_sample(timeout=0.0)
            if sample is not None:
                items.append(json.loads(sample[0]))
        assert got >= 1000  # four seconds of regions, live
        assert lsl.wait_until(lambda: run.poll() is None, timeout=0.1)
    finally:
        if regions is not None:
            regions.close_stream()
        if truth is not None:
            truth.close_stream()
        code, out, err = lsl.finish(run)
        sim_code, sim_out, sim_err = lsl.finish(sim)
    assert code == 0, err
    assert "Publishing 246 regions" in out
    truths = [m for m in items if m["kind"] == "truth"]
    assert truths, items
    assert truths[0]["regime"] == "interictal"
    assert truths[0]["onset_regions"] == ["PrG_6_3_L"]
    assert truths[0]["active"][0] == "PrG_6_3_L"
    assert truths[0]["region_kinds"]["PrG_6_3_L"] == "cortical"
    assert sim_code == 0, sim_err
    assert "Onset regions: PrG_6_3_L" in sim_out and "Stopped after" in sim_out
