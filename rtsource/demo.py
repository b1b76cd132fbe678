"""The live demo: a simulated amplifier in its own process -> the live pipeline -> a
subscriber that prints the top regions beside the announced truth and the latency.

A tool above the floors (it starts the CLI's ``simulate-stream`` as a subprocess, as an
amplifier would be a separate program, and runs :class:`~rtsource.online.pipeline.Pipeline`
in this process).
"""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pylsl
from numpy.typing import NDArray

from ._util import logger
from .config import Config, load_config
from .online.pipeline import Pipeline, PipelineStatus
from .stream.lslio import resolve_stream

__all__ = ["DemoSummary", "live_demo"]


@dataclass
class DemoSummary:
    """What :func:`live_demo` measured.

    Attributes
    ----------
    n_samples : int
        Region samples received by the subscriber.
    latency_ms : dict
        Median, p95, p99 and max of (arrival at the subscriber - capture time) over every
        sample received after the first segment (the start-up backlog is left out), in ms.
    hits : int
        Segments where an announced region was among the ``top`` regions.
    segments : int
        Segments reported.
    status : PipelineStatus
        The pipeline's final status.
    """

    n_samples: int
    latency_ms: dict[str, float]
    hits: int
    segments: int
    status: PipelineStatus


def live_demo(
    duration_s: float = 60.0,
    *,
    montage: str = "biosemi128",
    rate: float = 1000.0,
    config: Config | str | Path | None = None,
    method: str | None = None,
    top: int = 5,
    segment_s: float = 4.0,
    report: Callable[[str], None] | None = None,
    start_timeout_s: float = 90.0,
) -> DemoSummary:
    """Simulated amplifier -> live pipeline -> subscriber, printing regions beside the truth.

    Starts ``rtsource simulate-stream`` in a subprocess (its own process, as an amplifier
    would be), the pipeline in this process (one thread) with electrode positions from the
    stream's metadata, and a subscriber. For every segment of constant simulated activity
    the subscriber reports the regions most active relative to the preceding segments
    beside the regions the simulator announced (with their ranks), and the latency from
    each sample's capture to the arrival of its region sample (the simulator pushes each
    sample when its capture time comes, so this is push-to-arrival plus its scheduling
    slack). Ends by itself after ``duration_s``.

    Parameters
    ----------
    duration_s : float
        Seconds of live processing (after start-up).
    montage, rate : str, float
        The simulated amplifier's montage and sampling rate (Hz).
    config : Config | path | None
        Pipeline configuration (default: ``load_config()``: BEM head model, eLORETA, BN246;
        the simulator projects with a sphere model, so the inverse is not given its own
        forward model).
    method : str | None
        Overrides the configured inverse method.
    top : int
        Regions listed per segment.
    segment_s : float
        Seconds between changes of the simulated active regions.
    report : callable | None
        Receives each report (default: the package logger at INFO level).
    start_timeout_s : float
        How long the simulator may take to appear on LSL.
    """
    say = report or (lambda line: logger.info("%s", line))
    tag = uuid.uuid4().hex[:8]
    sim_name, out_name = f"rtsource-demo-sim-{tag}", f"rtsource-demo-{tag}"
    cfg = config if isinstance(config, Config) else load_config(config)
    cfg = dataclasses.replace(
        cfg,
        stream=dataclasses.replace(cfg.stream, input=sim_name, output=out_name,
                                   resolve_timeout_s=start_timeout_s),
    ).with_method(method)
    cmd = [sys.executable, "-m", "rtsource.cli", "simulate-stream", "--montage", montage,
           "--rate", repr(float(rate)), "--name", sim_name, "--segment", repr(float(segment_s)),
           "--duration", repr(float(duration_s + start_timeout_s + 30.0)), "--quiet"]
    say(f"Starting the simulated amplifier: rtsource {' '.join(cmd[3:])}")
    sim = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    pipe: Pipeline | None = None
    out_inlet = truth_inlet = None
    lat_steady: list[NDArray] = []
    hits = n_seg = n_samples = 0
    final = PipelineStatus()
    try:
        pipe = Pipeline(cfg)
        say("Waiting for the amplifier, building the pipeline (head model, kernel)...")
        pipe.start()
        assert pipe.processor is not None
        st = pipe.status()
        say(f"Pipeline: {pipe.positions_used} {st.n_channels} channels, {st.method}/"
            f"{st.backend}, {len(pipe.processor.regions.names)} regions -> {out_name!r}.")
        out_inlet = pylsl.StreamInlet(resolve_stream(name=out_name, timeout=10.0),
                                      max_buflen=30, recover=False)
        truth_inlet = pylsl.StreamInlet(resolve_stream(name=f"{sim_name}-truth", timeout=10.0),
                                        recover=False)
        out_inlet.open_stream(timeout=5.0)
        truth_inlet.open_stream(timeout=5.0)
        offset = out_inlet.time_correction(timeout=5.0)
        t_offset = truth_inlet.time_correction(timeout=5.0)
        names = list(pipe.processor.regions.names)
        n_reg = len(names)
        buf = np.zeros((4096, n_reg), dtype=np.float32)
        truths: list[tuple[float, list[str]]] = []  # (capture time of first sample, regions)
        acc, n_acc = np.zeros(n_reg), 0
        seg_lat: list[NDArray] = []
        means: list[NDArray] = []
        current: int | None = None  # index into truths of the segment being accumulated
        t_end = time.monotonic() + duration_s

        def close_segment() -> None:
            nonlocal hits, n_seg
            mean = acc / max(n_acc, 1)
            regions_true = truths[current][1] if current is not None else []
            lats = np.concatenate(seg_lat) if seg_lat else np.zeros(0)
            if means:
                rel = mean / np.maximum(np.mean(means, axis=0), 1e-30)
                what = "relative to the preceding segments"
            else:
                rel = mean / max(float(mean.mean()), 1e-30)
                what = "relative to the mean region (first segment, no history yet)"
            means.append(mean)
            order = np.argsort(rel)[::-1]
            rank = {names[i]: r + 1 for r, i in enumerate(order)}
            n_seg += 1
            hit = any(rank.get(r, n_reg) <= top for r in regions_true)
            hits += hit
            if n_seg > 1 and len(lats):
                lat_steady.append(lats)
            lat_txt = (f"median {np.median(lats):.1f} ms, p99 {np.percentile(lats, 99):.1f} ms, "
                       f"max {lats.max():.1f} ms over {len(lats)} samples" if len(lats) else "-")
            if n_seg == 1 and len(lats):  # the samples queued while the pipeline started
                lat_txt += " (start-up backlog included; the summary leaves this segment out)"
            say(f"segment {n_seg}: top {top} {what}: "
                + ", ".join(f"{names[i]} ({rel[i]:.2f})" for i in order[:top])
                + "\n    announced: " + (", ".join(f"{r} (rank {rank.get(r, '?')})"
                                               for r in regions_true) or "-")
                + "\n    latency capture->arrival: " + lat_txt)

        while time.monotonic() < t_end and pipe.running:
            while True:
                marker, mts = truth_inlet.pull_sample(timeout=0.0)
                if marker is None:
                    break
                truths.append((float(mts) + t_offset, list(json.loads(marker[0])["active"])))
            _, ts = out_inlet.pull_chunk(timeout=0.05, max_samples=len(buf), dest_obj=buf,
                                         min_samples=1)
            arrival = pylsl.local_clock()
            if not ts:
                continue
            ts_arr = np.asarray(ts) + offset
            n_samples += len(ts_arr)
            lat = (arrival - ts_arr) * 1e3
            # split the chunk at segment boundaries
            starts = np.array([t for t, _ in truths])
            seg_of = np.searchsorted(starts, ts_arr, side="right") - 1
            for j in np.unique(seg_of):
                sel = seg_of == j
                jj = int(j) if j >= 0 else None
                if jj != current:
                    if current is not None and n_acc:
                        close_segment()
                    current, acc[:], n_acc, seg_lat = jj, 0.0, 0, []
                acc += buf[: len(ts_arr)][sel].sum(axis=0)
                n_acc += int(sel.sum())
                seg_lat.append(lat[sel])
    finally:
        for inl in (out_inlet, truth_inlet):
            if inl is not None:
                inl.close_stream()
        if pipe is not None:
            try:
                pipe.stop()
            finally:
                final = pipe.status()
        sim.terminate()
        try:
            sim.wait(10)
        except subprocess.TimeoutExpired:
            sim.kill()
    lats = np.concatenate(lat_steady) if lat_steady else np.zeros(0)
    stats = (
        {"median": float(np.median(lats)), "p95": float(np.percentile(lats, 95)),
         "p99": float(np.percentile(lats, 99)), "max": float(lats.max())}
        if len(lats) else {}
    )
    summary = DemoSummary(n_samples=n_samples, latency_ms=stats, hits=hits, segments=n_seg,
                          status=final)
    say(f"Demo done: {n_samples} region samples, {final.n_dropped} dropped by the pipeline. "
        f"An announced region was in the top {top} in {hits} of {n_seg} segments. Latency "
        f"capture->arrival after start-up: median {stats.get('median', math.nan):.1f} ms, p99 "
        f"{stats.get('p99', math.nan):.1f} ms, max {stats.get('max', math.nan):.1f} ms.")
    return summary
