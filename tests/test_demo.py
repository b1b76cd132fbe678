"""The live demo end to end: simulated amplifier (its own process) -> pipeline -> subscriber,
all over real LSL on loopback (the demo names its streams with a random tag)."""

from __future__ import annotations

import math

import pytest

from rtsource.config import load_config
from rtsource.demo import live_demo

pytestmark = [pytest.mark.lsl, pytest.mark.slow]


def test_live_demo_reports_segments_latency_and_the_first_segments_backlog():
    lines: list[str] = []
    cfg = load_config(headmodel={"conductor": "sphere"})
    summary = live_demo(8.0, montage="biosemi32", rate=250.0, config=cfg, segment_s=2.0,
                        report=lines.append)
    segments = [line for line in lines if line.startswith("segment ")]
    # 8 s of 2 s segments: the first and the last may be cut short
    assert summary.segments == len(segments) >= 3
    assert "start-up backlog included" in segments[0]
    assert all("start-up backlog" not in s for s in segments[1:])
    assert all("announced: " in s and "latency capture->arrival: median" in s for s in segments)
    # every region sample of about 8 s at 250 Hz arrived (the output rate is the input's)
    assert summary.n_samples >= 0.5 * 8.0 * 250.0
    assert summary.status.n_dropped == 0
    lat = summary.latency_ms
    assert set(lat) == {"median", "p95", "p99", "max"}
    assert all(math.isfinite(v) and v > 0 for v in lat.values())
    assert lat["median"] <= lat["p99"] <= lat["max"]
    assert lines[-1].startswith("Demo done: ") and f"{summary.n_samples} region samples" in lines[-1]
