"""An amplifier outage over real loopback LSL: the upstream stream (a simulated amplifier
with a source_id) disappears for 5 s and comes back with the same source_id, as when the
amplifier's app is restarted. The pipeline must say so on its marker stream, publish
nothing stamped inside the gap, and resume publishing."""

from __future__ import annotations

import numpy as np
import pylsl
import pytest

from rtsource.config import load_config
from rtsource.simulate.amplifier import SimulatedAmplifier

SFREQ = 250.0
MONTAGE = "biosemi32"
GAP_S = 5.0


@pytest.mark.lsl
@pytest.mark.slow
def test_amplifier_gone_for_5s_then_back_with_the_same_source_id(lsl):
    name, sid, out = lsl.unique("outage"), lsl.unique("amp-sid"), lsl.unique("out")
    # both "runs" of the amplifier app: same stream name and source_id, built beforehand
    first, second = (SimulatedAmplifier(MONTAGE, SFREQ, name, source_id=sid,
                                        conductor="sphere", chunk_size=5, seed=seed)
                     for seed in (3, 4))
    cfg = load_config(headmodel={"montage": MONTAGE, "conductor": "sphere"},
                      stream={"input": name, "output": out, "resolve_timeout_s": 10.0,
                              "lost_timeout_s": 30.0})
    first.start(wait_for_consumer_s=30.0)
    pipe, reader, markers = lsl.open_pipeline(cfg)
    try:
        # 1. streaming: 0.4 s of output
        assert reader.wait_for(int(0.4 * SFREQ), timeout=20.0), reader.n
        # 2. the amplifier app quits: its outlet is destroyed
        first.stop()
        t_gone = pylsl.local_clock()
        last_first = first.sample_time(first.n_pushed - 1)  # newest sample it captured
        lost = markers.wait_for("stream_lost", timeout=10.0)
        assert lost, markers.items
        assert lost[0]["source_id"] == sid and sid in lost[0]["message"]
        assert lsl.wait_until(lambda: pipe.status().state == "waiting", timeout=5.0)
        # 3. the gap: no amplifier for GAP_S seconds; output and markers are read meanwhile
        while pylsl.local_clock() < t_gone + GAP_S:
            reader.poll(timeout=0.05)
            markers.poll()
        assert not markers.of("stream_returned")
        assert pipe.status().state == "waiting"
        # 4. the app starts again with the same source_id (its sample index restarts at 0)
        second.start(wait_for_consumer_s=30.0)
        returned = markers.wait_for("stream_returned", timeout=15.0)
        assert returned and returned[0]["source_id"] == sid, markers.items
        assert second.t0 is not None and second.t0 - last_first >= GAP_S
        # 5. output resumes: 0.4 s of the returned stream arrives
        assert lsl.wait_until(
            lambda: reader.poll(timeout=0.02) >= 0 and len(reader.ts)
            and reader.ts[-1] >= second.t0 + 0.4, timeout=20.0), reader.ts[-3:]
    finally:
        lsl.close_all(pipe, reader, markers)
        second.stop()
        first.stop()
    assert pipe.error is None
    ts = reader.ts
    period = 1.0 / SFREQ
    tol = 2e-4  # same-host LSL clock offsets
    # nothing stamped inside the gap
    inside = (ts > last_first + tol) & (ts < second.t0 - tol)
    assert not inside.any(), ts[inside][:5]
    before, after = ts[ts <= last_first + tol], ts[ts >= second.t0 - tol]
    assert len(before) + len(after) == len(ts)
    # every output sample carries the capture time of one input sample of either run, in
    # order, once: the output is the two runs' samples, nothing invented
    k1 = (before - first.t0) / period
    k2 = (after - second.t0) / period
    np.testing.assert_allclose(k1, np.round(k1), atol=0.05)
    np.testing.assert_allclose(k2, np.round(k2), atol=0.05)
    assert np.all(np.diff(np.round(k1)) == 1) and np.all(np.diff(np.round(k2)) == 1)
    # the output resumed close to the return (within a hop and the filters' first row)
    assert np.round(k2[0]) <= 0.02 * SFREQ, k2[:3]
    assert len(after) >= 0.38 * SFREQ
    # markers in order: lost, then returned; published around the gap
    kinds = [m["kind"] for m in markers.items]
    assert kinds.index("stream_lost") < kinds.index("stream_returned")
    st = pipe.status()
    assert st.n_reconnects == 1
    # the restart of the sample index is a new segment, not a drop or a duplicate
    assert st.n_dropped == 0 and st.n_duplicated == 0, st
