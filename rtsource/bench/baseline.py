"""The baseline of a run: what a user would otherwise write -- pylsl ``pull_chunk`` + MNE
``apply_inverse_raw`` with a prepared eLORETA operator on every window, one hop at a time,
atlas weights on ``|J|`` -- in a worker process (:func:`baseline_worker`), and the
parent's run against it (:func:`baseline_run`), measured as the pipeline is."""

from __future__ import annotations

import dataclasses
import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pylsl

from ..config import Config, from_dict
from ..headmodel import build_headmodel
from ..headmodel.build import make_forward
from ..headmodel.montage import get_montage, montage_info
from ..regions import region_map
from ..stream.lslio import resolve_stream
from .protocol import Child, announce, close_run, stop_worker, wait_line
from .spec import BenchSpec
from .stats import drop_counts, latency_stats, steady_matches
from .streams import AmplifierPusher, Subscriber

__all__ = ["baseline_run", "baseline_worker"]


def baseline_worker(spec_path: str) -> int:
    """Child process: what a user would write with pylsl + MNE (prepared eLORETA)."""
    import mne

    mne.set_log_level("error")
    job = json.loads(Path(spec_path).read_text())
    cfg = from_dict(Config, job["config"])
    sfreq = float(job["rate"])
    info = montage_info(get_montage(cfg.headmodel.montage), sfreq)
    fwd, _ = make_forward(cfg.headmodel, info)
    raw0 = mne.io.RawArray(np.zeros((len(info.ch_names), 2)), info)
    raw0.set_eeg_reference("average", projection=True)
    cov = mne.make_ad_hoc_cov(raw0.info, std={"eeg": cfg.inverse.noise_std_uv * 1e-6})
    inv = mne.minimum_norm.make_inverse_operator(raw0.info, fwd, cov, loose=1.0, depth=None)
    lambda2 = cfg.inverse.lambda2
    inv = mne.minimum_norm.prepare_inverse_operator(inv, 1, lambda2, "eLORETA")
    weights = region_map(build_headmodel(cfg.headmodel, progress=False),
                         cfg.regions.atlas).weights  # (regions, sources)
    inlet = pylsl.StreamInlet(resolve_stream(name=job["input"], timeout=60.0), max_buflen=600)
    n_in = inlet.info(timeout=10.0).channel_count()
    out_info = pylsl.StreamInfo(job["output"], "SourceActivation", weights.shape[0], sfreq,
                                "float32", f"{job['output']}-id")
    outlet = pylsl.StreamOutlet(out_info)
    inlet.open_stream(timeout=10.0)
    hop = max(1, math.floor(cfg.stream.hop_s * sfreq + 0.5))
    window = max(1, math.floor(cfg.stream.window_s * sfreq + 0.5))
    n_eeg = len(info.ch_names)
    announce("READY", {"window": window, "hop": hop})
    wait_line("GO")
    stop = threading.Event()  # STOP arrives on stdin while the loop runs
    threading.Thread(target=lambda: (wait_line("STOP"), stop.set()), daemon=True).start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    data = np.zeros((0, n_in))
    stamps = np.zeros(0)
    n_new = window  # the first window publishes all its samples, later ones their hop
    hop_times: list[float] = []
    while not stop.is_set():
        chunk, ts = inlet.pull_chunk(timeout=0.02)  # what a user writes: lists of samples
        if ts:
            data = np.concatenate([data, np.asarray(chunk)])
            stamps = np.concatenate([stamps, ts])
        while len(stamps) >= window and not stop.is_set():
            t0 = time.perf_counter()
            raw = mne.io.RawArray(data[:window, :n_eeg].T, raw0.info, verbose="error")
            stc = mne.minimum_norm.apply_inverse_raw(raw, inv, lambda2, "eLORETA",
                                                     pick_ori="vector", prepared=True)
            mag = np.linalg.norm(stc.data[:, :, -n_new:], axis=1)  # (n_sources, n_new)
            outlet.push_chunk((weights @ mag).T.astype(np.float32),
                              stamps[window - n_new:window].tolist())
            hop_times.append(time.perf_counter() - t0)
            data, stamps = data[hop:], stamps[hop:]
            n_new = hop
    cpu1, wall1 = time.process_time(), time.perf_counter()
    wall = wall1 - wall0
    Path(job["result"]).write_text(json.dumps({
        "hop_s": hop_times,
        "cpu": {"wall_s": wall, "cpu_s": cpu1 - cpu0,
                "cores_used": (cpu1 - cpu0) / wall if wall > 0 else math.nan},
    }))
    announce("DONE", {})
    time.sleep(0.5)
    return 0


def baseline_run(spec: BenchSpec, cfg: Any, tmp: Path, say: Callable[[str], None]
                 ) -> dict[str, Any]:
    """Stream the simulated amplifier to the baseline in a worker process and measure.

    The baseline falls behind when its compute per hop exceeds the hop, so it gets
    ``spec.baseline_duration_s`` of EEG (default: the shorter of ``spec.duration_s`` and
    5 s) and up to 20 times as long to work through its backlog.

    Parameters
    ----------
    spec : BenchSpec
    cfg : Config
        The pipeline's configuration (montage, head model, inverse, atlas, hop, window).
    tmp : Path
        Folder of the job and result files.
    say : callable
        Receives progress lines.

    Returns
    -------
    dict
        Latency, compute per hop, drops, CPU use and the growth of its latency.
    """
    duration = spec.baseline_duration_s or min(spec.duration_s, 5.0)
    tag = uuid.uuid4().hex[:8]
    name, out = f"rtsource-bench-base-eeg-{tag}", f"rtsource-bench-base-regions-{tag}"
    pusher = AmplifierPusher(spec.montage, spec.rate, duration, spec.push_chunk, name,
                             seed=spec.seed)
    job = tmp / f"baseline-{tag}.json"
    result_path = tmp / f"baseline-{tag}-result.json"
    job.write_text(json.dumps({"config": dataclasses.asdict(cfg), "rate": spec.rate,
                               "input": name, "output": out, "result": str(result_path)}))
    child = Child(["--baseline-worker", str(job)])
    sub = None
    try:
        say("Starting the MNE baseline (forward model, eLORETA operator)...")
        ready = child.expect("READY", spec.start_timeout_s)
        sub = Subscriber(out, max_buflen=max(360, int(duration) + 60))
        say(f"Streaming {duration:g} s to the baseline...")
        child.send("GO")
        pusher.go()
        # it falls behind: let it work through the backlog for up to 20x the input length
        sub.collect(pusher.n, pusher.done, idle_s=8.0, deadline_s=duration * 20 + 60.0)
        sub.close()  # before the worker closes its outlet (else liblsl logs a broken stream)
        worker = stop_worker(child, result_path, 120.0)
    finally:
        close_run(sub, child, pusher)
    m, steady = steady_matches(sub, pusher, spec)
    hops = np.asarray(worker["hop_s"])
    drops = drop_counts(m, pusher.n, 1, 0)
    res: dict[str, Any] = {
        "what": "pylsl pull_chunk (lists) + mne.minimum_norm.apply_inverse_raw (prepared "
                "eLORETA, pick_ori='vector') on a RawArray of each window, one hop at a time; "
                "|J| -> atlas weights; no filtering (the easier job); the last partial hop is "
                "never published (counted in dropped)",
        "duration_s": duration,
        "latency_ms": latency_stats(m["latency_s"][steady]),
        "compute_per_hop_ms": latency_stats(hops),
        "keeps_up": bool(len(hops) and np.median(hops) < ready["hop"] / spec.rate),
        "samples_in": int(pusher.n), "samples_out": int(len(m["ts"])),
        "dropped": drops["missing"], "drops": drops, "cpu": worker["cpu"],
        "window_samples": ready["window"], "hop_samples": ready["hop"],
        "_series": {"t": (m["ts"] - pusher.t0)[steady],
                    "latency_ms": m["latency_s"][steady] * 1e3},
    }
    lat, k = m["latency_s"][steady], m["k"][steady]
    if len(lat) > 10:
        half = (k.min() + k.max()) / 2
        a, b = np.median(lat[k < half]), np.median(lat[k >= half])
        span_s = (k.max() - k.min()) / spec.rate / 2
        res["latency_growth_s_per_s"] = float((b - a) / span_s) if span_s > 0 else math.nan
    return res
