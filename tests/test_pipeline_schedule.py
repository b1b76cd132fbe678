"""Scheduling of the live pipeline over real loopback LSL: decimated 3D-PIUNet refinement
(declared rate, capture timestamps, rate markers), falling behind is reported, and the
"arrival" and "hop" schedules publish the same samples."""

from __future__ import annotations

import numpy as np
import pytest

from rtsource.bench import AmplifierPusher
from rtsource.config import load_config
from rtsource.simulate.amplifier import SimulatedAmplifier
from rtsource.stream.outlet import read_desc

SFREQ = 250.0
MONTAGE = "biosemi32"


@pytest.fixture(scope="module")
def rand8(tmp_path_factory) -> str:
    """A width-8 3D-PIUNet with random weights (timing and plumbing only)."""
    import torch

    from rtsource.models import PIUNet
    from rtsource.models.checkpoint import save_checkpoint

    torch.manual_seed(0)  # the same weights each run: the ONNX export is cached
    path = tmp_path_factory.mktemp("ckpt") / "rand8.safetensors"
    save_checkpoint(PIUNet(8).eval(), path, spacing_mm=7.0)
    return str(path)


def piunet_cfg(name: str, out: str, ckpt: str, decimate, **stream):
    return load_config(
        method="piunet",
        headmodel={"montage": MONTAGE, "conductor": "sphere"},
        refine={"checkpoint": ckpt, "backend": "onnx", "decimate": decimate},
        stream={"input": name, "output": out, "hop_s": 0.04, "window_s": 0.06, **stream},
    )


@pytest.mark.lsl
def test_decimated_refinement_declares_its_rate_and_stamps_capture_times(rand8, lsl):
    duration = 6.0
    name = lsl.unique("sim")
    amp = SimulatedAmplifier(MONTAGE, SFREQ, name, source_id=name, conductor="sphere",
                             chunk_size=5, seed=3)
    amp.start(duration_s=duration, wait_for_consumer_s=120.0, linger_s=120.0)
    pipe, reader, markers = lsl.open_pipeline(piunet_cfg(name, lsl.unique("out"), rand8, "auto"))
    try:
        n_dec = pipe.decimate
        hop = pipe.hop
        # auto: a divisor of the hop (a batch per hop) or a multiple of it (one sample per hop)
        assert n_dec >= 1 and (hop % n_dec == 0 or n_dec % hop == 0)
        n_total = round(duration * SFREQ)
        phase = n_dec - 1  # published: input samples k with (k + 1) % N == 0
        expected = np.arange(phase, n_total, n_dec)
        expected = expected[expected > 0]  # sample 0 starts the filters: never published
        assert reader.wait_for(len(expected), timeout=120.0), (reader.n, len(expected))
        reader.poll(timeout=0.3)  # nothing more may arrive
        markers.wait_for("rate", timeout=5.0)
        info, desc = reader.info, read_desc(reader.info.desc().child("rtsource"))
    finally:
        lsl.close_all(pipe, reader, markers)
        amp.stop()
    # declared: nominal rate = input rate / N, in the stream header and the metadata
    assert info.nominal_srate() == pytest.approx(SFREQ / n_dec)
    assert float(desc["output_rate_hz"]) == pytest.approx(SFREQ / n_dec)
    assert desc["decimate"] == str(n_dec) and "refinement takes" in desc["decimation"]
    assert float(desc["refine_ms_per_volume"]) > 0
    # published: each sample carries the capture time of the input sample it refines,
    # exactly the declared grid, none dropped or duplicated
    ts = reader.ts
    np.testing.assert_allclose(ts, amp.t0 + expected / SFREQ, rtol=0, atol=2e-4)
    np.testing.assert_allclose(np.diff(ts), n_dec / SFREQ, atol=2e-4)
    st = pipe.status()
    assert st.n_in == n_total and st.n_out == len(expected)
    assert st.n_dropped == 0 and st.n_flagged == (1 if phase == 0 else 0)
    assert st.decimate == n_dec
    data = reader.data
    assert data.shape == (len(expected), len(pipe.processor.regions.names))
    assert np.isfinite(data).all()
    # the marker stream says what was chosen and the rates achieved
    dec = markers.of("decimation")
    assert dec and dec[0]["decimate"] == n_dec and dec[0]["refine_ms_per_volume"] > 0
    rate = markers.of("rate")[0]
    assert rate["declared_rate_hz"] == pytest.approx(SFREQ / n_dec)
    assert rate["decimate"] == n_dec and rate["out_rate_hz"] >= 0
    if n_dec > 1:
        assert f"(1/{n_dec} refined)" in st.line()


@pytest.mark.lsl
@pytest.mark.slow
def test_falling_behind_is_reported_not_silent(rand8, lsl):
    """Refining every sample at 250 Hz on the CPU cannot keep up: status and markers say so."""
    name = lsl.unique("sim")
    amp = SimulatedAmplifier(MONTAGE, SFREQ, name, source_id=name, conductor="sphere",
                             chunk_size=5, seed=4)
    amp.start(duration_s=30.0, wait_for_consumer_s=120.0, linger_s=5.0)
    pipe, reader, markers = lsl.open_pipeline(piunet_cfg(name, lsl.unique("out"), rand8, 1))
    try:
        assert pipe.decimate == 1 and reader.info.nominal_srate() == SFREQ
        dec = markers.wait_for("decimation", timeout=5.0)
        assert dec and "cannot keep up" in dec[0]["message"]
        behind = markers.wait_for("falling_behind", timeout=30.0)
        assert behind, [m["kind"] for m in markers.items]
        b = behind[0]
        assert b["lag_ms"] > 250 and b["decimate"] == 1
        assert b["out_rate_expected_hz"] >= b["out_rate_hz"]
        assert lsl.wait_until(lambda: pipe.status().behind, timeout=5.0)
        assert "BEHIND" in pipe.status().line()
    finally:
        amp.stop()
        reader.close()
        pipe.stop()  # the backlog is not worked through for ever: stop returns promptly
        markers.poll()
        markers.close()
    assert markers.of("stop_discarded") and markers.of("stop_discarded")[0]["n_samples"] > 0


@pytest.mark.lsl
def test_arrival_and_hop_schedules_publish_the_same_samples(lsl):
    """Two pipelines on one stream pushed in chunks that straddle the hops: the same
    values and timestamps, every sample once."""
    duration = 3.0
    name = lsl.unique("sim")
    # pushes once both pipelines listen; 7-sample blocks straddle the 3-sample hops
    pusher = AmplifierPusher(MONTAGE, SFREQ, duration, 7, name, seed=5)
    n_total = pusher.n
    runs = {}
    try:
        for schedule in ("hop", "arrival"):
            cfg = load_config(headmodel={"montage": MONTAGE, "conductor": "sphere"},
                              stream={"input": name, "output": lsl.unique(f"out-{schedule}")})
            runs[schedule] = lsl.open_pipeline(cfg, schedule=schedule)
        pusher.go()
        for _, reader, _ in runs.values():
            assert reader.wait_for(n_total - 1, timeout=60.0), reader.n  # first: no data
            reader.poll(timeout=0.3)
    finally:
        for pipe, reader, markers in runs.values():
            lsl.close_all(pipe, reader, markers)
        pusher.close()
    (_, hop_r, _), (pipe_a, arr_r, _) = runs["hop"], runs["arrival"]
    np.testing.assert_allclose(hop_r.ts, arr_r.ts, rtol=0, atol=2e-4)  # clock offsets differ
    np.testing.assert_allclose(hop_r.ts, pusher.t0 + np.arange(1, n_total) / SFREQ,
                               atol=2e-4)
    scale = np.abs(hop_r.data).max()
    np.testing.assert_allclose(arr_r.data, hop_r.data, rtol=1e-5, atol=1e-6 * scale)
    assert pipe_a.status().n_out == n_total - 1 and pipe_a.status().n_dropped == 0
    assert "arrival" in pipe_a.provenance["schedule"]
