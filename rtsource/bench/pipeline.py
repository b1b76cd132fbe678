"""The rtsource side of a run: the live pipeline in a worker process
(:func:`pipeline_worker`) and the parent's run against it (:func:`pipeline_run`)."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from .._util import loadavg
from ..config import Config, from_dict
from ..online.pipeline import Pipeline
from .protocol import Child, announce, close_run, stop_worker, wait_line
from .refine import time_engine
from .spec import BenchSpec
from .stats import (
    drop_counts,
    json_default,
    latency_stats,
    stage_stats,
    stage_table,
    steady_matches,
    warm_samples,
)
from .streams import AmplifierPusher, Subscriber

__all__ = ["pipeline_run", "pipeline_worker"]


class _GpuSampler:
    """Samples GPU utilisation (torch.cuda.utilization, needs pynvml) in a thread."""

    def __init__(self, interval_s: float = 0.1) -> None:
        self.values: list[float] = []
        self.error: str | None = None
        self._stop = threading.Event()
        self._interval = interval_s
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> _GpuSampler:
        import torch

        torch.cuda.reset_peak_memory_stats()
        self._thread.start()
        return self

    def _run(self) -> None:
        import torch

        while not self._stop.wait(self._interval):
            try:
                self.values.append(float(torch.cuda.utilization()))
            except Exception as err:  # pynvml missing or no NVML: reported, not fatal
                self.error = f"{type(err).__name__}: {err}"
                return

    def stop(self) -> dict[str, Any]:
        import torch

        self._stop.set()
        self._thread.join(2.0)
        v = np.asarray(self.values)
        return {
            "device": torch.cuda.get_device_name(),
            "utilization_percent_mean": float(v.mean()) if v.size else None,
            "utilization_percent_max": float(v.max()) if v.size else None,
            "utilization_error": self.error,
            "max_memory_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
        }


def pipeline_worker(spec_path: str) -> int:
    """Child process: the pipeline with stage timings, CPU time, engine timings."""
    job = json.loads(Path(spec_path).read_text())
    cfg = from_dict(Config, job["config"])
    pipe = Pipeline(cfg, schedule=job["schedule"], record_stages=True, linger_s=0.5,
                    progress=False)
    pipe.open()
    proc = pipe.processor
    assert proc is not None and pipe.outlet is not None
    announce("READY", {
        "decimate": pipe.decimate, "window": pipe.window, "hop": pipe.hop,
        "nominal_srate": pipe.outlet.srate, "backend": pipe.backend,
        "n_regions": proc.regions.n_regions, "n_channels": proc.mapper.n_used,
        "n_sources": proc.headmodel.n_sources,
        "first_unpublished": proc.filter.first_output_empty,
        "refine_ms_per_volume_startup": None if pipe.refine_s_per_volume is None
        else pipe.refine_s_per_volume * 1e3,
        "provenance": pipe.provenance,
    })
    wait_line("GO")
    gpu = None
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        gpu = _GpuSampler().start()
    ru0 = os.times()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    pipe.start()
    wait_line("STOP")
    cpu1, wall1 = time.process_time(), time.perf_counter()
    ru1 = os.times()
    gpu_info = gpu.stop() if gpu is not None else None
    line = pipe.status().line()
    error = None
    try:
        pipe.stop()
    except Exception as err:  # reported to the parent
        error = f"{type(err).__name__}: {err}"
    st = pipe.status()
    refine = None
    if proc.refiner is not None:
        engine = proc.refiner.engine
        refine = time_engine(engine, runs=job["refine_runs"], batches=engine.batch_sizes)
        refine["startup_ms_per_volume"] = (pipe.refine_s_per_volume or math.nan) * 1e3
    log = pipe.stage_log.as_dict() if pipe.stage_log is not None else {}
    wall = wall1 - wall0
    result = {
        "status": dataclasses.asdict(st), "status_line": line, "error": error,
        "cpu": {
            "wall_s": wall, "cpu_s": cpu1 - cpu0,
            "user_s": ru1.user - ru0.user, "system_s": ru1.system - ru0.system,
            "cores_used": (cpu1 - cpu0) / wall if wall > 0 else math.nan,
            "fraction_of_machine": (cpu1 - cpu0) / wall / (os.cpu_count() or 1)
            if wall > 0 else math.nan,
        },
        "gpu": gpu_info, "refine": refine,
        "stage_log": {k: v.tolist() for k, v in log.items()},
        "torch_threads": sys.modules["torch"].get_num_threads() if "torch" in sys.modules
        else None,
    }
    Path(job["result"]).write_text(json.dumps(result, default=json_default))
    announce("DONE", {})
    return 0


def pipeline_run(spec: BenchSpec, cfg: Any, tmp: Path, say: Callable[[str], None]
                 ) -> dict[str, Any]:
    """Stream the simulated amplifier to the pipeline in a worker process and measure.

    Parameters
    ----------
    spec : BenchSpec
    cfg : Config
        The pipeline's configuration (its stream names and buffer are set here).
    tmp : Path
        Folder of the job and result files.
    say : callable
        Receives progress lines.

    Returns
    -------
    dict
        Latency, stage timings, drops, rates, CPU/GPU use and the worker's figures.
    """
    tag = uuid.uuid4().hex[:8]
    name, out = f"rtsource-bench-eeg-{tag}", f"rtsource-bench-regions-{tag}"
    cfg = dataclasses.replace(cfg, stream=dataclasses.replace(
        cfg.stream, input=name, output=out, resolve_timeout_s=60.0,
        buffer_s=max(cfg.stream.buffer_s, spec.duration_s + 30.0)))
    pusher = AmplifierPusher(spec.montage, spec.rate, spec.duration_s, spec.push_chunk, name,
                             seed=spec.seed)
    job = tmp / f"pipeline-{tag}.json"
    result_path = tmp / f"pipeline-{tag}-result.json"
    job.write_text(json.dumps({"config": dataclasses.asdict(cfg), "schedule": spec.schedule,
                               "refine_runs": spec.refine_runs, "result": str(result_path)}))
    child = Child(["--pipeline-worker", str(job)])
    sub = None
    try:
        say("Starting the pipeline (head model, inverse kernel"
            + (", network" if spec.method == "piunet" else "") + ")...")
        ready = child.expect("READY", spec.start_timeout_s)
        sub = Subscriber(out, max_buflen=max(360, int(spec.duration_s) + 60))
        n_dec = int(ready["decimate"])
        phase = n_dec - 1  # the pipeline publishes samples k with (k + 1) % N == 0
        # the filters' first sample carries no data and is never published
        skip_first = bool(ready.get("first_unpublished")) and phase == 0
        n_expected = len(range(phase, pusher.n, n_dec)) - skip_first
        say(f"Streaming {spec.duration_s:g} s of {pusher.n_channels - 1}-channel EEG at "
            f"{spec.rate:g} Hz in chunks of {spec.push_chunk}; output "
            f"{ready['nominal_srate']:g} Hz ({spec.method}/{ready['backend']}"
            + (f", one of every {n_dec} samples refined" if n_dec > 1 else "") + ")...")
        load0 = loadavg()
        child.send("GO")
        pusher.go()
        sub.collect(n_expected, pusher.done, idle_s=5.0,
                    deadline_s=spec.duration_s * 4 + 120.0)
        sub.close()  # before the worker closes its outlet (else liblsl logs a broken stream)
        load1 = loadavg()
        worker = stop_worker(child, result_path, 300.0 + 10 * spec.refine_runs)
    finally:
        close_run(sub, child, pusher)
    m, steady = steady_matches(sub, pusher, spec)
    drops = drop_counts(m, pusher.n, n_dec, phase, skip_first=skip_first)
    st = worker["status"]
    drops["pipeline_input_dropped"] = int(st["n_dropped"])
    drops["pipeline_flagged"] = int(st["n_flagged"])
    stages = stage_table(worker["stage_log"], m, pusher, warm_samples(spec))
    span = float(np.nanmax(pusher.push_time) - np.nanmin(pusher.push_time)) or math.nan
    span += 1.0 / spec.rate
    res: dict[str, Any] = {
        "latency_ms": latency_stats(m["latency_s"][steady]),
        "stages_ms": {k: stage_stats(v) for k, v in stages.items() if k != "piece_samples"},
        "pieces": {"n": int(len(stages.get("compute", []))),
                   "samples_per_piece_mean": float(np.mean(stages["piece_samples"]))
                   if stages and len(stages["piece_samples"]) else math.nan},
        "samples_in": int(pusher.n),
        "samples_out": int(len(m["ts"])),
        "dropped": int(drops["missing"] + drops["pipeline_input_dropped"]),
        "drops": drops,
        "timestamp_error_max_us": float(m["ts_error_s"].max() * 1e6) if len(m["ts"]) else None,
        "rates_hz": {
            "input": pusher.n / span, "output": len(m["ts"]) / span,
            "output_declared": float(ready["nominal_srate"]),
            "output_expected": spec.rate / n_dec,
        },
        "decimate": n_dec,
        "cpu": worker["cpu"], "gpu": worker["gpu"], "refine": worker["refine"],
        "status_line": worker["status_line"], "pipeline_error": worker["error"],
        "pipeline_counts": {k: st[k] for k in ("n_in", "n_out", "n_flagged", "n_dropped",
                                               "n_duplicated")},
        "backend": ready["backend"], "n_channels": ready["n_channels"],
        "n_regions": ready["n_regions"], "n_sources": ready["n_sources"],
        "window_samples": ready["window"], "hop_samples": ready["hop"],
        "torch_threads": worker["torch_threads"],
        "provenance": {k: ready["provenance"].get(k) for k in (
            "headmodel", "inverse_method", "atlas", "piunet_weights", "piunet_width",
            "decimation", "schedule", "output_rate_hz") if k in ready["provenance"]},
        "load_average": {"start": load0, "end": load1},
        "_series": {"t": (m["ts"] - pusher.t0)[steady], "latency_ms":
                    m["latency_s"][steady] * 1e3},
    }
    if len(m["ts"]):
        lat = m["latency_s"][steady]
        k = m["k"][steady]
        if len(lat) > 10:
            half = (k.min() + k.max()) / 2
            res["latency_median_first_half_ms"] = float(np.median(lat[k < half]) * 1e3)
            res["latency_median_second_half_ms"] = float(np.median(lat[k >= half]) * 1e3)
    return res
