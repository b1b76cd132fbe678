"""The viewer against a real region outlet over loopback LSL (Qt offscreen)."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest

pytest.importorskip("pyqtgraph")
pytest.importorskip("PySide6")

from rtsource.stream import MarkerOutlet, RegionOutlet, resolve_stream  # noqa: E402


@pytest.mark.lsl
def test_viewer_shows_what_the_outlet_publishes(tmp_path):
    from rtsource.viewer import RegionViewer

    tag = uuid.uuid4().hex[:8]
    names = [f"Region_{i}" for i in range(12)]
    outlet = RegionOutlet(f"view-{tag}", names, 100.0, {"atlas": "test"}, f"in-{tag}", "cfg")
    markers = MarkerOutlet(f"view-{tag}-markers", f"mk-{tag}")
    info = resolve_stream(name=f"view-{tag}", timeout=5)
    minfo = resolve_stream(name=f"view-{tag}-markers", timeout=5)
    viewer = RegionViewer(info, n_bars=5, n_traces=3, marker_info=minfo)
    try:
        values = np.tile(np.arange(12, dtype=np.float32), (20, 1))
        values[:, 7] = 100.0  # the most active region
        deadline = time.monotonic() + 10
        while viewer.n_received < 20 and time.monotonic() < deadline:
            if outlet.have_consumers() and markers.have_consumers() and outlet.n_pushed == 0:
                import pylsl

                now = pylsl.local_clock()
                outlet.push(values, now - 0.2 + np.arange(20) * 0.01)
                markers.push("model reloaded", kind="status")
            viewer.update()
            viewer.app.processEvents()
        assert viewer.n_received == 20
        assert viewer.labels == names
        assert viewer.top[0] == 7 and list(viewer.top[1:4]) == [11, 10, 9]
        np.testing.assert_allclose(viewer.current, values[-1])
        assert viewer.latency_ms > 0
        deadline = time.monotonic() + 5
        while "model reloaded" not in viewer.last_marker and time.monotonic() < deadline:
            viewer.update()
        assert "model reloaded" in viewer.last_marker
        viewer.win.grab().save(str(tmp_path / "viewer.png"))
        assert (tmp_path / "viewer.png").stat().st_size > 1000
    finally:
        viewer.close()
        outlet.close()
