"""A live viewer of region activations (pyqtgraph), subscribing like any LSL client.

The window shows the most active regions as bars (current value, smoothed), the time
courses of the top regions, and a status line: sample rate received, latency (now minus
the capture timestamp of the newest sample, same-host clocks) and the latest marker
(status or problem) from the pipeline's marker stream.

``RegionViewer.update()`` does one pull-and-draw step, so tests drive it without a timer.
"""

from __future__ import annotations

import json
from collections import deque

import numpy as np
import pylsl

from .._util import logger, optional_import


class RegionViewer:
    """Subscribe to a ``SourceActivation`` outlet and draw it.

    Parameters
    ----------
    info : resolved pylsl.StreamInfo of the region outlet.
    n_bars : regions shown as bars (the most active ones).
    n_traces : time courses drawn (the most active regions).
    history_s : seconds of history in the trace plot.
    marker_info : optional StreamInfo of the marker stream.
    """

    def __init__(self, info: pylsl.StreamInfo, n_bars: int = 20, n_traces: int = 5,
                 history_s: float = 5.0, marker_info: pylsl.StreamInfo | None = None) -> None:
        pg = optional_import("pyqtgraph", "viewer", "The viewer")
        self._pg = pg
        self.inlet = pylsl.StreamInlet(info, max_buflen=10, recover=True)
        full = self.inlet.info(timeout=5.0)
        self.n_channels = full.channel_count()
        self.labels = _labels(full)
        self.srate = full.nominal_srate() or 100.0
        self._buf = np.zeros((4096, self.n_channels), np.float32)
        self._ts = np.zeros(4096, np.float64)
        n_hist = max(2, int(history_s * self.srate))
        self.history = np.zeros((n_hist, self.n_channels), np.float32)
        self.current = np.zeros(self.n_channels, np.float32)
        self.n_received = 0
        self.latency_ms = float("nan")
        self._arrivals: deque[tuple[float, int]] = deque(maxlen=50)
        self.marker_inlet = None
        if marker_info is not None:  # subscribe now: markers sent before a pull still arrive
            self.marker_inlet = pylsl.StreamInlet(marker_info)
            self.marker_inlet.open_stream(timeout=5.0)
        self.last_marker = ""

        self.app = pg.mkQApp("rtsource viewer")
        self.win = pg.GraphicsLayoutWidget(title=f"rtsource — {full.name()}")
        self.win.resize(1000, 650)
        self.status = self.win.addLabel("waiting for data…", row=0, col=0)
        self.bar_plot = self.win.addPlot(row=1, col=0, title="most active regions")
        self.n_bars = min(n_bars, self.n_channels)
        self.bars = pg.BarGraphItem(x=np.arange(self.n_bars), height=np.zeros(self.n_bars),
                                    width=0.8, brush="#4c9be8")
        self.bar_plot.addItem(self.bars)
        self.trace_plot = self.win.addPlot(row=2, col=0, title="time courses (top regions)")
        self.trace_plot.addLegend(offset=(10, 10))
        self.n_traces = min(n_traces, self.n_channels)
        self.curves = [self.trace_plot.plot(pen=pg.intColor(i, self.n_traces), name=f"#{i + 1}")
                       for i in range(self.n_traces)]
        self.top: np.ndarray = np.arange(self.n_bars)

    def update(self) -> int:
        """Pull what arrived and redraw; returns the number of new samples."""
        n_new = 0
        while True:
            _, ts = self.inlet.pull_chunk(timeout=0.0, max_samples=len(self._ts),
                                          dest_obj=self._buf)
            n = len(ts)
            if n == 0:
                break
            self._ts[:n] = ts
            chunk = self._buf[:n]
            k = min(n, len(self.history))
            self.history = np.roll(self.history, -k, axis=0)  # UI rate, not the hot path
            self.history[-k:] = chunk[-k:]
            self.current = chunk[-1].copy()
            self.latency_ms = (pylsl.local_clock() - self._ts[n - 1]) * 1e3
            n_new += n
        if n_new:
            self.n_received += n_new
            self._arrivals.append((pylsl.local_clock(), self.n_received))
        if self.marker_inlet is not None:
            msg, _ = self.marker_inlet.pull_sample(timeout=0.0)
            if msg:
                self.last_marker = _marker_text(msg[0])
        self._draw()
        return n_new

    def received_rate(self) -> float:
        if len(self._arrivals) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self._arrivals[0], self._arrivals[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def _draw(self) -> None:
        smooth = self.history[-max(1, int(0.1 * self.srate)):].mean(axis=0)
        self.top = np.argsort(smooth)[::-1][: self.n_bars]
        self.bars.setOpts(height=smooth[self.top])
        axis = self.bar_plot.getAxis("bottom")
        axis.setTicks([[(i, self.labels[j]) for i, j in enumerate(self.top)]])
        t = (np.arange(len(self.history)) - len(self.history)) / self.srate
        for i, curve in enumerate(self.curves):
            j = self.top[i]
            curve.setData(t, self.history[:, j])
            self.trace_plot.legend.items[i][1].setText(self.labels[j])
        self.status.setText(
            f"{self.n_received} samples · {self.received_rate():.0f} Hz · latency "
            f"{self.latency_ms:.1f} ms · {self.last_marker or 'no markers'}")

    def run(self, interval_ms: int = 30) -> None:
        """Show the window and update it on a Qt timer until it is closed."""
        qtcore = self._pg.QtCore
        timer = qtcore.QTimer()
        timer.timeout.connect(self.update)
        timer.start(interval_ms)
        self.win.show()
        self.app.exec()

    def close(self) -> None:
        self.inlet.close_stream()
        if self.marker_inlet is not None:
            self.marker_inlet.close_stream()
        self.win.close()


def _labels(info: pylsl.StreamInfo) -> list[str]:
    labels = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty() and len(labels) < info.channel_count():
        labels.append(ch.child_value("label"))
        ch = ch.next_sibling()
    if len(labels) != info.channel_count():
        logger.warning("Stream %r has no channel labels; numbering them.", info.name())
        labels = [f"ch{i}" for i in range(info.channel_count())]
    return labels


def _marker_text(payload: str) -> str:
    try:
        data = json.loads(payload)
    except ValueError:
        return payload
    if isinstance(data, dict):
        return f"{data.get('kind', '')}: {data.get('message', payload)}"
    return payload
