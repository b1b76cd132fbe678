"""The live brain viewer (pyqtgraph): a glass brain of the source volume, top regions, time
courses, status and markers — subscribing to rtsource's streams like any LSL client.

Window (one :class:`pyqtgraph.GraphicsLayoutWidget`):

* three maximum-intensity projections (sagittal, coronal, axial) of the ``SourceVolume``
  stream (``rtsource run --publish-volume``; each volume is |J| at one instant, so the view
  shows their exponential moving average over ``smooth_s``) over the template brain's
  outline (:mod:`.glass`), in fsaverage MRI (MNI305) millimetres;
* a colour bar from the threshold to the maximum; drag its line to move the threshold
  (voxels below it are transparent); the maximum follows the data (it decays by 5 % per
  frame towards the current maximum, so the colours do not flicker);
* with the region stream: the top regions by name with their values, and scrolling time
  courses of the chosen regions (``regions=...``; default the most active ones, re-chosen
  every few seconds);
* a status line: volumes and region samples per second received, frames drawn per second,
  latency (now minus the capture stamp of the newest volume, same-host clocks), the latest
  marker, and "no data for N s" while a stream is lost (inlets recover by themselves when it
  returns with the same source_id).

``BrainViewer.update()`` is one pull-and-draw step, so tests and ``--screenshot`` drive it
without a timer.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Sequence

import numpy as np
import pylsl

from .._util import optional_import
from ..stream.volume_outlet import read_volume_layout
from .glass import VIEWS, Projector, heat_lut, heat_rgba, template_outline
from .regions import _labels, _marker_text

__all__ = ["BrainViewer"]

#: Seconds without a sample before a stream is called lost on the status line.
LOST_AFTER_S = 2.0


class BrainViewer:
    """Subscribe to a ``SourceVolume`` stream (and optionally the region and marker streams)
    and draw a glass brain.

    Parameters
    ----------
    volume_info : resolved pylsl.StreamInfo of the volume stream.
    region_info : StreamInfo of the ``SourceActivation`` region stream, or None.
    marker_info : StreamInfo of the marker stream, or None.
    regions : region names whose time courses are drawn (None: the ``n_traces`` most active,
        re-chosen every ``rechoose_s`` seconds).
    n_top : regions listed by name.
    n_traces : time courses drawn when ``regions`` is None.
    history_s : seconds of time course shown.
    threshold : fraction of the colour scale's maximum below which voxels are transparent.
    smooth_s : time constant (s) of the moving average of the volumes shown (0: the latest
        volume as it is).
    atlas : atlas(es) whose brain mask is the outline.
    size : window size in pixels.
    lost_after_s : seconds without a sample before the status line calls a stream lost.

    Raises
    ------
    ValueError
        When the volume stream carries no volume layout, when ``threshold`` is outside
        [0, 1), or when a name in ``regions`` is not a channel of the region stream.
    TimeoutError
        When a stream's metadata does not arrive within 5 s.
    """

    def __init__(self, volume_info: pylsl.StreamInfo,
                 region_info: pylsl.StreamInfo | None = None,
                 marker_info: pylsl.StreamInfo | None = None, *,
                 regions: Sequence[str] | None = None, n_top: int = 10, n_traces: int = 5,
                 history_s: float = 10.0, threshold: float = 0.5, smooth_s: float = 0.3,
                 atlas: str | tuple[str, ...] = ("bn246", "aal3"),
                 size: tuple[int, int] = (1280, 800), lost_after_s: float = LOST_AFTER_S
                 ) -> None:
        pg = optional_import("pyqtgraph", "viewer", "The viewer")
        self._pg = pg
        if not 0.0 <= threshold < 1.0:
            raise ValueError(f"threshold = {threshold!r} must be a fraction in [0, 1) of the "
                             "colour scale's maximum (e.g. 0.5).")
        self.threshold = float(threshold)
        if not smooth_s >= 0:
            raise ValueError(f"smooth_s = {smooth_s!r} must be >= 0 seconds (0: no smoothing).")
        self.smooth_s = float(smooth_s)
        self.lost_after_s = float(lost_after_s)
        self.vinlet = pylsl.StreamInlet(volume_info, max_buflen=5, recover=True)
        vfull = self.vinlet.info(timeout=5.0)
        self.layout = read_volume_layout(vfull)
        self.shape = tuple(self.layout["shape"])
        self.unit = _first_unit(vfull)
        affine = self.layout.get("affine_mri")
        if affine is None:
            raise ValueError(f"Volume stream {vfull.name()!r} has no desc/volume/affine_mri.")
        self.proj = Projector(self.shape, affine)
        grid_mask = np.zeros(int(np.prod(self.shape)), bool)
        if "source_index" in self.layout:
            grid_mask[self.layout["source_index"]] = True
        self.outline = template_outline(self.proj, atlas=atlas,
                                        grid_mask=grid_mask.reshape(self.shape))
        self.volume_name = vfull.name()
        self._vbuf = np.zeros((8, int(np.prod(self.shape))), np.float32)
        self.volume = np.zeros(self.shape, np.float32)  # the latest volume received
        self.shown = np.zeros(self.shape, np.float32)  # its moving average (drawn)
        self._vperiod = 1.0 / (vfull.nominal_srate() or 10.0)
        self.volume_ts = float("nan")
        self.n_volumes = 0
        self.vmax = 0.0
        self._varrivals: deque[tuple[float, int]] = deque(maxlen=30)
        self._frames: deque[float] = deque(maxlen=30)
        self._last_volume_t = time.monotonic()

        self.rinlet = None
        self.labels: list[str] = []
        self.n_region_samples = 0
        self._rarrivals: deque[tuple[float, int]] = deque(maxlen=30)
        self._last_region_t = time.monotonic()
        if region_info is not None:
            self.rinlet = pylsl.StreamInlet(region_info, max_buflen=10, recover=True)
            rfull = self.rinlet.info(timeout=5.0)
            self.labels = _labels(rfull)
            srate = rfull.nominal_srate() or 100.0
            self.rsrate = srate
            n_hist = max(2, int(history_s * srate))
            self.history = np.zeros((n_hist, len(self.labels)), np.float32)
            self._rbuf = np.zeros((1024, len(self.labels)), np.float32)
            self._rts = np.zeros(1024)
        self.chosen = None if regions is None else [self._region_index(r) for r in regions]
        self.n_traces = len(self.chosen) if self.chosen is not None else min(
            n_traces, len(self.labels))
        self.n_top = min(n_top, len(self.labels))
        self._trace_idx = list(self.chosen or range(self.n_traces))
        self._rechoose_t = 0.0
        self.marker_inlet = None
        if marker_info is not None:
            self.marker_inlet = pylsl.StreamInlet(marker_info, recover=True)
            self.marker_inlet.open_stream(timeout=5.0)
        self.last_marker = ""
        self._build_window(size)

    # -- window ---------------------------------------------------------------------------
    def _build_window(self, size: tuple[int, int]) -> None:
        pg = self._pg
        self.app = pg.mkQApp("rtsource brain viewer")
        self.win = pg.GraphicsLayoutWidget(title=f"rtsource — {self.volume_name}")
        self.win.setBackground("#101014")
        self.win.resize(*size)
        self.status = self.win.addLabel("waiting for data…", row=0, col=0, colspan=4)
        self.views: dict = {}
        self._heat: dict = {}
        axis_letters = ("x", "y", "z")
        for col, (name, _, h, v) in enumerate(VIEWS):
            plot = self.win.addPlot(row=1, col=col, title=name)
            plot.setAspectLocked(True)
            plot.setMenuEnabled(False)
            plot.setLabel("bottom", f"{axis_letters[h]} (mm, MNI305)")
            plot.setLabel("left", f"{axis_letters[v]} (mm)")
            x0, y0, w, hh = self.outline.rects[name]
            bg = pg.ImageItem(self.outline.rgba(name))
            bg.setRect(pg.QtCore.QRectF(x0, y0, w, hh))
            plot.addItem(bg)
            heat = pg.ImageItem(np.zeros((*self.proj.mips(self.volume)[name].shape, 4),
                                         np.uint8))
            heat.setRect(pg.QtCore.QRectF(*self.proj.rect(name)))
            plot.addItem(heat)
            plot.setRange(xRange=(x0, x0 + w), yRange=(y0, y0 + hh), padding=0.02)
            self.views[name] = plot
            self._heat[name] = heat
        # colour bar: the colour table from the threshold (bottom) to the maximum (top)
        self.cbar = self.win.addPlot(row=1, col=3, title="|J|")
        self.cbar.setMaximumWidth(90)
        self.cbar.hideAxis("bottom")
        self.cbar.setMouseEnabled(x=False, y=False)
        self.cbar.setMenuEnabled(False)
        self.cbar.setLabel("left", self.unit)
        lut = heat_lut()
        self._cbar_img = pg.ImageItem(lut[None, :, :])
        self.cbar.addItem(self._cbar_img)
        self.thr_line = pg.InfiniteLine(angle=0, movable=True, pen=pg.mkPen("w", width=2))
        self.thr_line.sigPositionChangeFinished.connect(self._threshold_moved)
        self.cbar.addItem(self.thr_line)
        self._below = pg.ImageItem(np.full((1, 1, 4), (60, 60, 60, 255), np.uint8))
        self.cbar.addItem(self._below)
        # regions: time courses and the top list
        self.trace_plot = self.win.addPlot(row=2, col=0, colspan=2,
                                           title="time courses (chosen regions)")
        self.trace_plot.addLegend(offset=(10, 10))
        self.trace_plot.setLabel("bottom", "time (s)")
        if self.unit.startswith("A*m"):  # SI prefixes on the axis (nA*m...)
            self.trace_plot.setLabel("left", "", units="A*m")
        self.curves = [self.trace_plot.plot(pen=pg.intColor(i, max(self.n_traces, 1)),
                                            name=f"#{i + 1}") for i in range(self.n_traces)]
        self.top_label = self.win.addLabel("", row=2, col=2, colspan=2, justify="left")
        if self.rinlet is None:
            self.trace_plot.setTitle("time courses: no region stream")
        self.win.ci.layout.setRowStretchFactor(1, 3)
        self.win.ci.layout.setRowStretchFactor(2, 2)
        self.top: list[int] = []

    def _threshold_moved(self) -> None:
        if self.vmax > 0:
            self.threshold = float(np.clip(self.thr_line.value() / self.vmax, 0.0, 0.99))
        self._draw_volume()

    def _region_index(self, name: str) -> int:
        lower = {lab.lower(): i for i, lab in enumerate(self.labels)}
        if name.lower() not in lower:
            from .._util import close_matches

            raise ValueError(f"Region {name!r} is not a channel of the region stream"
                             f"{'' if self.labels else ' (none was given)'}."
                             f"{close_matches(name, self.labels)}")
        return lower[name.lower()]

    # -- the step -------------------------------------------------------------------------
    def update(self) -> int:
        """Pull what arrived on every stream and redraw; returns the volumes received."""
        now = time.monotonic()
        n_vol = 0
        while True:
            _, ts = self.vinlet.pull_chunk(timeout=0.0, max_samples=len(self._vbuf),
                                           dest_obj=self._vbuf)
            if not ts:
                break
            for row in self._vbuf[: len(ts)]:
                self._smooth_in(row.reshape(self.shape))
            self.volume = self._vbuf[len(ts) - 1].reshape(self.shape).copy()
            self.volume_ts = ts[-1]
            n_vol += len(ts)
        if n_vol:
            self.n_volumes += n_vol
            self._varrivals.append((now, self.n_volumes))
            self._last_volume_t = now
            vmax = float(self.shown.max())
            self.vmax = vmax if vmax > self.vmax else max(vmax, 0.95 * self.vmax)
        if self.rinlet is not None:
            self._pull_regions(now)
        if self.marker_inlet is not None:
            while True:
                msg, _ = self.marker_inlet.pull_sample(timeout=0.0)
                if not msg:
                    break
                self.last_marker = _marker_text(msg[0])
        self._draw_volume()
        self._draw_regions(now)
        self._frames.append(now)
        self._draw_status(now)
        return n_vol

    def _smooth_in(self, vol: np.ndarray) -> None:
        """Fold one volume into the moving average (the first one is taken as it is)."""
        if self.n_volumes == 0 and not self.shown.any() or self.smooth_s == 0:
            self.shown = vol.astype(np.float32, copy=True)
            return
        a = 1.0 - np.exp(-self._vperiod / self.smooth_s)
        self.shown += a * (vol - self.shown)

    def _pull_regions(self, now: float) -> None:
        n_new = 0
        while True:
            _, ts = self.rinlet.pull_chunk(timeout=0.0, max_samples=len(self._rts),  # type: ignore[union-attr]
                                           dest_obj=self._rbuf)
            n = len(ts)
            if n == 0:
                break
            k = min(n, len(self.history))
            self.history = np.roll(self.history, -k, axis=0)  # UI rate, not the hot path
            self.history[-k:] = self._rbuf[n - k: n]
            n_new += n
        if n_new:
            self.n_region_samples += n_new
            self._rarrivals.append((now, self.n_region_samples))
            self._last_region_t = now

    def _draw_volume(self) -> None:
        vmax = self.vmax if self.vmax > 0 else 1.0
        thr = self.threshold * vmax
        for name, img in self.proj.mips(self.shown).items():
            self._heat[name].setImage(heat_rgba(img, vmax, thr), autoLevels=False)
        # the colour bar spans [threshold, max]; the line sits at the threshold
        self._cbar_img.setRect(self._pg.QtCore.QRectF(0, thr, 1, max(vmax - thr, 1e-30)))
        self._below.setRect(self._pg.QtCore.QRectF(0, 0, 1, max(thr, 1e-30)))
        self.cbar.setRange(xRange=(0, 1), yRange=(0, vmax), padding=0)
        self.thr_line.setValue(thr)

    def _draw_regions(self, now: float) -> None:
        if self.rinlet is None or not self.n_region_samples:
            return
        recent = self.history[-max(1, int(0.2 * self.rsrate)):].mean(axis=0)
        order = np.argsort(recent)[::-1]
        self.top = [int(i) for i in order[: self.n_top]]
        if self.chosen is None and now - self._rechoose_t > 3.0:
            self._trace_idx = [int(i) for i in order[: self.n_traces]]
            self._rechoose_t = now
        t = (np.arange(len(self.history)) - len(self.history)) / self.rsrate
        for i, curve in enumerate(self.curves):
            j = self._trace_idx[i]
            curve.setData(t, self.history[:, j])
            self.trace_plot.legend.items[i][1].setText(self.labels[j])
        rows = "".join(f"<tr><td>{self.labels[j]}</td><td align='right'>&nbsp;{recent[j]:.3g}"
                       "</td></tr>" for j in self.top)
        self.top_label.setText(f"<b>top regions</b> ({self.unit})<table>{rows}</table>")

    def _draw_status(self, now: float) -> None:
        parts = [f"volumes {_rate(self._varrivals):.1f}/s"]
        if now - self._last_volume_t > self.lost_after_s:
            parts.append(f"<b>no volume for {now - self._last_volume_t:.0f} s</b> (stream lost? "
                         "waiting for it to return)")
        if self.rinlet is not None:
            parts.append(f"regions {_rate(self._rarrivals):.0f} samples/s")
            if now - self._last_region_t > self.lost_after_s:
                parts.append(f"<b>no regions for {now - self._last_region_t:.0f} s</b>")
        if self.n_volumes:
            parts.append(f"latency {(pylsl.local_clock() - self.volume_ts) * 1e3:.0f} ms")
        parts.append(f"{self.frame_rate():.0f} frames/s")
        parts.append(self.last_marker or "no markers")
        self.status.setText(" · ".join(parts))

    def frame_rate(self) -> float:
        """Frames drawn per second (over the last 30)."""
        if len(self._frames) < 2 or self._frames[-1] <= self._frames[0]:
            return 0.0
        return (len(self._frames) - 1) / (self._frames[-1] - self._frames[0])

    @property
    def lost(self) -> bool:
        """True when no volume arrived for ``lost_after_s`` seconds."""
        return time.monotonic() - self._last_volume_t > self.lost_after_s

    # -- running --------------------------------------------------------------------------
    def run(self, interval_ms: int = 40) -> None:
        """Show the window and update it on a Qt timer until it is closed."""
        timer = self._pg.QtCore.QTimer()
        timer.timeout.connect(self.update)
        timer.start(interval_ms)
        self.win.show()
        self.app.exec()

    def screenshot(self, path: str, duration_s: float, interval_s: float = 0.04) -> int:
        """Update for ``duration_s`` seconds (no timer, no window shown), then save the
        window as a PNG; returns the volumes received."""
        deadline = time.monotonic() + float(duration_s)
        while time.monotonic() < deadline:
            self.update()
            self.app.processEvents()
            time.sleep(interval_s)
        self.update()
        self.app.processEvents()
        if not self.win.grab().save(str(path)):
            raise OSError(f"Could not write the screenshot {str(path)!r} (a .png path?).")
        return self.n_volumes

    def close(self) -> None:
        for inlet in (self.vinlet, self.rinlet, self.marker_inlet):
            if inlet is not None:
                inlet.close_stream()
        self.win.close()


def _rate(arrivals: deque) -> float:
    if len(arrivals) < 2:
        return 0.0
    (t0, n0), (t1, n1) = arrivals[0], arrivals[-1]
    return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0


def _first_unit(info: pylsl.StreamInfo) -> str:
    ch = info.desc().child("channels").child("channel")
    return ch.child_value("unit") if not ch.empty() else ""

