"""Latency benchmark of the live pipeline over real loopback LSL (``rtsource bench``).

One invocation runs, each side in its own process as it would be deployed:

* **amplifier** (this process, a thread): :class:`~rtsource.simulate.amplifier.SimulatedAmplifier`
  data (generated beforehand) pushed on a real LSL outlet in real time, in chunks of
  ``chunk`` samples, each sample when its capture time has come. The LSL clock right after
  each push is logged: the reference of every latency.
* **pipeline** (a child process): :class:`~rtsource.online.pipeline.Pipeline` with per-piece
  stage timings (``record_stages``), its process CPU time over the run, GPU use where torch
  sees CUDA, and (method piunet) the refinement engine's own timings.
* **subscriber** (this process): pulls the region stream; the latency of a region sample
  is its arrival minus the push of the EEG sample it represents (found from its capture
  timestamp).
* **baseline** (another child process, unless disabled): what a user would otherwise write
  -- pylsl ``pull_chunk`` + MNE ``apply_inverse_raw`` with a prepared eLORETA operator on
  every window, one hop at a time, atlas weights on ``|J|`` -- measured the same way.

:func:`refine_benchmark` times the refinement network alone: per volume at batch 1
(median, p99) and batched throughput (volumes/s).

Results are plain dicts (JSON-ready); :func:`plot_results` draws the latency histogram and
timeline; :func:`summary_lines` is the short text ``rtsource bench`` prints.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pylsl
from numpy.typing import NDArray

from ._util import logger

__all__ = [
    "AmplifierPusher",
    "BenchSpec",
    "latency_stats",
    "machine_info",
    "plot_results",
    "refine_benchmark",
    "run_benchmark",
    "summary_lines",
]

#: Stages of a processed piece, in pipeline order (see :meth:`_stage_table`).
STAGES = ("pull", "wait", "preprocess", "inverse", "refine", "regions", "push", "deliver")


# -- specification ----------------------------------------------------------------------
@dataclass(frozen=True)
class BenchSpec:
    """What to benchmark.

    Attributes
    ----------
    montage : str
        Montage streamed by the simulated amplifier and used by the pipeline.
    rate : float
        Input sampling rate (Hz).
    method : str
        Inverse method (``"eloreta"``, ``"piunet"``, ...).
    conductor, atlas : str | None
        Head model and atlas (None: the configuration's).
    width : int | None
        Method piunet: a network of this width with random weights (timing only).
    checkpoint : str | None
        Method piunet: a checkpoint path (or ``"default"``); ignored when ``width`` is set.
    backend : str
        Refinement backend (``auto``, ``tensorrt``, ``cuda``, ``onnx``, ``cpu``, ``eager``).
    decimate : int | str | None
        ``refine.decimate`` (None: the configuration's).
    hop_s, window_s : float | None
        Hop and window in seconds (None: the configuration's).
    schedule : str
        The pipeline's schedule, ``"arrival"`` or ``"hop"``.
    duration_s : float
        Seconds of EEG pushed to the pipeline.
    chunk : int | None
        Samples per push (default: 10 ms worth).
    baseline : bool
        Run the MNE baseline too.
    baseline_duration_s : float | None
        Seconds of EEG for the baseline (default: the shorter of ``duration_s`` and 5 s;
        it falls behind, so its latency grows with the input's length).
    config : str | None
        TOML configuration the settings above override.
    warmup_s : float
        Samples captured in the first ``warmup_s`` seconds are left out of the latency
        statistics (first window, start-up).
    refine_runs : int
        Calls timed per batch size in the refinement section.
    refine_batch : int
        Batch size of the throughput measurement (refinement-only mode).
    threads : int | None
        Refinement-only mode: CPU threads of the engine (default: all cores).
    seed : int
        Seed of the simulated EEG.
    start_timeout_s : float
        How long the pipeline may take to start (head model, kernel, compilation).
    """

    montage: str = "biosemi128"
    rate: float = 1000.0
    method: str = "eloreta"
    conductor: str | None = None
    atlas: str | None = None
    width: int | None = None
    checkpoint: str | None = None
    backend: str = "auto"
    decimate: int | str | None = None
    hop_s: float | None = None
    window_s: float | None = None
    schedule: str = "arrival"
    duration_s: float = 30.0
    chunk: int | None = None
    baseline: bool = True
    baseline_duration_s: float | None = None
    config: str | None = None
    warmup_s: float = 1.0
    refine_runs: int = 30
    refine_batch: int = 8
    threads: int | None = None
    seed: int = 1
    start_timeout_s: float = 900.0

    @property
    def push_chunk(self) -> int:
        return int(self.chunk) if self.chunk else max(1, round(self.rate * 0.010))


def make_config(spec: BenchSpec, checkpoint: str | None = None) -> Any:
    """The pipeline configuration a spec describes (stream names are filled in later)."""
    from .config import load_config

    refine = {"backend": spec.backend, "decimate": spec.decimate}
    if checkpoint is not None:
        refine["checkpoint"] = checkpoint
    return load_config(
        spec.config,
        headmodel={"montage": spec.montage, "conductor": spec.conductor},
        inverse={"method": spec.method},
        regions={"atlas": spec.atlas},
        stream={"hop_s": spec.hop_s, "window_s": spec.window_s},
        refine=refine,
    )


# -- statistics and machine ---------------------------------------------------------------
def latency_stats(seconds: Sequence[float] | NDArray) -> dict[str, float]:
    """p50, p95, p99, max, mean (milliseconds) and n of durations given in seconds."""
    a = np.asarray(seconds, dtype=np.float64) * 1e3
    a = a[np.isfinite(a)]
    if a.size == 0:
        return {"p50": math.nan, "p95": math.nan, "p99": math.nan, "max": math.nan,
                "mean": math.nan, "n": 0}
    p50, p95, p99 = np.percentile(a, [50, 95, 99])
    return {"p50": float(p50), "p95": float(p95), "p99": float(p99), "max": float(a.max()),
            "mean": float(a.mean()), "n": int(a.size)}


def _stage_stats(seconds: NDArray) -> dict[str, float]:
    s = latency_stats(seconds)
    return {"median": s["p50"], "p95": s["p95"], "p99": s["p99"], "max": s["max"],
            "mean": s["mean"], "n": s["n"]}


def _loadavg() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def machine_info() -> dict[str, Any]:
    """CPU, cores, load average, library versions, thread settings and GPU (if any)."""
    import importlib.metadata as md

    from ._version import __version__

    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for pkg in ("numpy", "scipy", "mne", "pylsl", "torch", "onnxruntime", "tensorrt"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    info: dict[str, Any] = {
        "rtsource": __version__,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "load_average": _loadavg(),
        "packages": versions,
        "threads": {v: os.environ.get(v) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                                                   "MKL_NUM_THREADS", "NUMBA_NUM_THREADS",
                                                   "OMP_WAIT_POLICY")},
        "gpu": None,
    }
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        if torch.cuda.is_available():
            info["gpu"] = {"name": torch.cuda.get_device_name(), "cuda": torch.version.cuda}
    return info


# -- the amplifier side -------------------------------------------------------------------
class AmplifierPusher:
    """A simulated amplifier on a real LSL outlet, pushing once :meth:`go` is called.

    The data come from :class:`~rtsource.simulate.amplifier.SimulatedAmplifier` (its stream
    metadata too: labels, positions, the ``sample_index`` channel), generated before the
    run so that generation never delays a push. Sample ``k`` is stamped ``t0 + k / rate``
    and pushed (in chunks of ``chunk``) once that time has come; :attr:`push_time` holds
    ``pylsl.local_clock()`` right before the ``push_chunk`` call that pushed each sample
    (the reference of the latency: on a busy machine the pushing thread may be preempted
    right after the push, while the pipeline already processes the sample), and
    :attr:`push_return` the clock right after it.

    Parameters
    ----------
    montage, rate, duration_s, chunk : the stream.
    name : stream name and source_id.
    seed : seed of the simulated signal.
    """

    def __init__(self, montage: str, rate: float, duration_s: float, chunk: int, name: str,
                 seed: int = 1) -> None:
        from .simulate.amplifier import SimulatedAmplifier

        amp = SimulatedAmplifier(montage, rate, name, source_id=name, conductor="sphere",
                                 seed=seed)
        self.name = name
        self.rate, self.chunk = float(rate), int(chunk)
        self.n = max(1, round(duration_s * rate))
        self.n_channels = amp.n_channels
        self.data = amp.generate(self.n).astype(np.float32)
        self._outlet: pylsl.StreamOutlet | None = pylsl.StreamOutlet(
            amp.stream_info(), chunk_size=0, max_buffered=max(60, int(duration_s) + 60))
        self.push_time = np.full(self.n, np.nan)
        self.push_return = np.full(self.n, np.nan)
        self.t0: float | None = None
        self.error: BaseException | None = None
        self._go = threading.Event()
        self._stop = threading.Event()
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pusher-{name}", daemon=True)
        self._thread.start()

    def go(self) -> None:
        """Start pushing."""
        self._go.set()

    def _run(self) -> None:
        try:
            while not self._go.wait(0.05):
                if self._stop.is_set():
                    return
            outlet = self._outlet
            assert outlet is not None
            t0 = self.t0 = pylsl.local_clock() + 0.005
            ts = t0 + np.arange(self.n) / self.rate
            for k in range(0, self.n, self.chunk):
                m = min(self.chunk, self.n - k)
                delay = ts[k + m - 1] - pylsl.local_clock()
                if delay > 0 and self._stop.wait(delay):
                    return
                t_push = pylsl.local_clock()
                outlet.push_chunk(self.data[k:k + m], ts[k:k + m])
                self.push_return[k:k + m] = pylsl.local_clock()
                self.push_time[k:k + m] = t_push
        except BaseException as err:  # surfaced by close()
            self.error = err
        finally:
            self.done.set()

    def close(self) -> None:
        """Stop pushing and destroy the outlet (raises what ended the thread early)."""
        self._stop.set()
        self._go.set()
        self._thread.join(10.0)
        self._outlet = None
        if self.error is not None:
            raise RuntimeError(f"The amplifier pusher failed: {self.error}") from self.error


class Subscriber:
    """Pulls a region stream, logging each sample's capture time and arrival time."""

    def __init__(self, name: str, timeout: float = 60.0, max_buflen: int = 360) -> None:
        from .stream.lslio import resolve_stream

        self.inlet = pylsl.StreamInlet(resolve_stream(name=name, timeout=timeout),
                                       max_buflen=max_buflen, recover=False)
        self.info = self.inlet.info(timeout=10.0)
        self.inlet.open_stream(timeout=10.0)
        self.offset = self.inlet.time_correction(timeout=5.0)
        self._buf = np.zeros((4096, self.info.channel_count()), dtype=np.float32)
        self._ts: list[NDArray] = []
        self._arr: list[NDArray] = []
        self.n = 0
        self.last_data = time.monotonic()

    def poll(self, timeout: float = 0.05) -> int:
        _, ts = self.inlet.pull_chunk(timeout=timeout, max_samples=len(self._buf),
                                      dest_obj=self._buf, min_samples=1)
        now = pylsl.local_clock()
        if ts:
            t = np.asarray(ts, dtype=np.float64) + self.offset
            self._ts.append(t)
            self._arr.append(np.full(len(t), now))
            self.n += len(t)
            self.last_data = time.monotonic()
        return len(ts)

    def collect(self, n_expected: int, source_done: threading.Event, idle_s: float,
                deadline_s: float) -> None:
        """Poll until ``n_expected`` samples arrived, or the source is done and nothing
        came for ``idle_s``, or ``deadline_s`` passed."""
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            self.poll()
            if self.n >= n_expected and source_done.is_set():
                self.poll(timeout=0.2)  # anything extra (duplicates) shows up too
                return
            if source_done.is_set() and time.monotonic() - self.last_data > idle_s:
                return

    @property
    def timestamps(self) -> NDArray:
        return np.concatenate(self._ts) if self._ts else np.zeros(0)

    @property
    def arrivals(self) -> NDArray:
        return np.concatenate(self._arr) if self._arr else np.zeros(0)

    def close(self) -> None:
        self.inlet.close_stream()


# -- child processes ------------------------------------------------------------------------
class _Child:
    """A worker process speaking a line protocol on stdin/stdout."""

    def __init__(self, args: list[str]) -> None:
        env = dict(os.environ)
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "NUMBA_NUM_THREADS"):
            env.setdefault(var, "1")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "rtsource.benchmark", *args], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.lines.put),
                         daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr.append),
                         daemon=True).start()

    @staticmethod
    def _read(stream: Any, put: Callable[[Any], None]) -> None:
        for line in stream:
            put(line.rstrip("\n"))
        put(None)

    def expect(self, word: str, timeout: float) -> dict[str, Any]:
        """Wait for a line ``WORD {json}`` from the child."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise TimeoutError(
                    f"The benchmark worker did not say {word} within {timeout:g} s:\n"
                    + "\n".join(x for x in self.stderr[-30:] if x)) from None
            if line is None:
                self.proc.wait(10)
                raise RuntimeError(
                    f"The benchmark worker ended (exit {self.proc.returncode}) before {word}:\n"
                    + "\n".join(x for x in self.stderr[-40:] if x))
            if line.startswith(word + " "):
                return json.loads(line[len(word) + 1:])
            logger.debug("worker: %s", line)

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def _wait_line(word: str) -> None:
    """Worker side: block until the parent sends ``word`` (or closes stdin)."""
    while True:
        line = sys.stdin.readline()
        if not line or line.strip() == word:
            return


def _say(word: str, payload: dict[str, Any]) -> None:
    sys.stdout.write(f"{word} {json.dumps(payload, default=_json_default)}\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    return str(obj)


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


def _pipeline_worker(spec_path: str) -> int:
    """Child process: the pipeline with stage timings, CPU time, engine timings."""
    from .config import Config, from_dict
    from .online.pipeline import Pipeline

    job = json.loads(Path(spec_path).read_text())
    cfg = from_dict(Config, job["config"])
    pipe = Pipeline(cfg, schedule=job["schedule"], record_stages=True, linger_s=0.5,
                    progress=False)
    pipe.open()
    proc = pipe.processor
    assert proc is not None and pipe.outlet is not None
    _say("READY", {
        "decimate": pipe.decimate, "window": pipe.windower.window, "hop": pipe.windower.hop,
        "nominal_srate": pipe.outlet.srate, "backend": pipe.backend,
        "n_regions": proc.regions.n_regions, "n_channels": proc.mapper.n_used,
        "n_sources": proc.headmodel.n_sources,
        "refine_ms_per_volume_startup": None if pipe.refine_s_per_volume is None
        else pipe.refine_s_per_volume * 1e3,
        "provenance": pipe.provenance,
    })
    _wait_line("GO")
    gpu = None
    if "torch" in sys.modules and sys.modules["torch"].cuda.is_available():
        gpu = _GpuSampler().start()
    ru0 = os.times()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    pipe.start()
    _wait_line("STOP")
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
        refine = _time_engine(engine, runs=job["refine_runs"], batches=engine.batch_sizes)
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
    Path(job["result"]).write_text(json.dumps(result, default=_json_default))
    _say("DONE", {})
    return 0


def _baseline_worker(spec_path: str) -> int:
    """Child process: what a user would write with pylsl + MNE (prepared eLORETA)."""
    import mne

    from .config import Config, from_dict
    from .headmodel import build_headmodel
    from .headmodel.build import make_forward
    from .headmodel.montage import get_montage, montage_info
    from .regions import region_map
    from .stream.lslio import resolve_stream

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
    _say("READY", {"window": window, "hop": hop})
    _wait_line("GO")
    stop = threading.Event()  # STOP arrives on stdin while the loop runs
    threading.Thread(target=lambda: (_wait_line("STOP"), stop.set()), daemon=True).start()
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
    _say("DONE", {})
    time.sleep(0.5)
    return 0


# -- measurement ----------------------------------------------------------------------------
def _stop_worker(child: _Child, result_path: Path, timeout: float) -> dict:
    """Ask a worker process to stop and read the JSON result it wrote."""
    child.send("STOP")
    child.expect("DONE", timeout)
    return json.loads(result_path.read_text())


def _close_run(sub: Subscriber | None, child: _Child, pusher: AmplifierPusher) -> None:
    """Tear a run down: subscriber first (inlets before outlets), then worker, pusher."""
    if sub is not None:
        sub.close()
    child.kill()
    pusher.close()


def _steady_matches(sub: Subscriber, pusher: AmplifierPusher, spec: BenchSpec
                    ) -> tuple[dict[str, NDArray], NDArray]:
    """Matched samples and the mask of those past the warm-up."""
    m = _match(sub, pusher)
    return m, m["ok"] & (m["k"] >= _warm_samples(spec))


def _warm_samples(spec: BenchSpec) -> int:
    """Samples at the start of a run left out of the steady-state figures."""
    return int(round(spec.warmup_s * spec.rate))


def _match(sub: Subscriber, pusher: AmplifierPusher) -> dict[str, NDArray]:
    """Map each received sample to the input sample it represents."""
    ts, arr = sub.timestamps, sub.arrivals
    assert pusher.t0 is not None
    pos = (ts - pusher.t0) * pusher.rate
    k = np.round(pos).astype(np.int64)
    ok = (k >= 0) & (k < pusher.n)
    lat = np.full(len(ts), np.nan)
    lat[ok] = arr[ok] - pusher.push_time[k[ok]]
    return {"ts": ts, "arrival": arr, "k": k, "ok": ok, "latency_s": lat,
            "ts_error_s": np.abs(pos - k) / pusher.rate}


def _drop_counts(m: dict[str, NDArray], n_in: int, decimate: int, phase: int
                 ) -> dict[str, int]:
    k = m["k"][m["ok"]]
    expected = np.arange(phase % decimate, n_in, decimate)
    uniq = np.unique(k)
    return {
        "expected_out": int(len(expected)),
        "missing": int(len(np.setdiff1d(expected, uniq))),
        "duplicated": int(len(k) - len(uniq)),
        "off_grid": int(len(np.setdiff1d(uniq, expected)) + (~m["ok"]).sum()),
        "out_of_order": int(np.count_nonzero(np.diff(m["k"]) <= 0)) if len(k) > 1 else 0,
    }


def _stage_table(log: dict[str, list[float]], m: dict[str, NDArray],
                 pusher: AmplifierPusher, warm_k: int) -> dict[str, NDArray]:
    """Per-piece stage durations (s) for pieces that published after the warm-up.

    pull: EEG push of the piece's newest published sample -> the pipeline holding it
    (LSL transport, wake-up, pull, ring); wait: -> processing start; preprocess, inverse,
    refine, regions, push: the pipeline's own timings; deliver: push returned -> the
    subscriber holding the sample (slightly negative at times: liblsl can hand a chunk to a
    local subscriber before ``push_chunk`` returns). Their sum is the latency of that
    sample.
    """
    if not log or not log.get("ts"):
        return {}
    a = {k: np.asarray(v, dtype=np.float64) for k, v in log.items()}
    assert pusher.t0 is not None
    kk = np.round((a["ts"] - pusher.t0) * pusher.rate).astype(np.int64)
    sel = (a["n_out"] > 0) & (kk >= warm_k) & (kk < pusher.n)
    kk = kk[sel]
    arrival_by_k = np.full(pusher.n, np.nan)
    good = m["ok"]
    arrival_by_k[m["k"][good]] = m["arrival"][good]
    return {
        "pull": a["t_pulled"][sel] - pusher.push_time[kk],
        "wait": a["t_start"][sel] - a["t_pulled"][sel],
        "preprocess": a["preprocess"][sel], "inverse": a["inverse"][sel],
        "refine": a["refine"][sel], "regions": a["regions"][sel], "push": a["push"][sel],
        "deliver": arrival_by_k[kk] - a["t_pushed"][sel],
        "compute": (a["preprocess"] + a["inverse"] + a["refine"] + a["regions"]
                    + a["push"])[sel],
        "piece_samples": a["n_new"][sel],
    }


def _time_engine(engine: Any, runs: int, batches: Sequence[int]) -> dict[str, Any]:
    """Per-volume timings of an engine at each batch size (random volumes)."""
    rng = np.random.default_rng(0)
    out: dict[str, Any] = {"backend": engine.name, "dtype": engine.dtype,
                           "device": engine.device, "batches": {}}
    for b in sorted(set(int(x) for x in batches)):
        x = rng.standard_normal((b, *engine.input_shape)).astype(np.float32)
        x /= np.abs(x).max()
        for _ in range(2):
            engine(x)
        t = np.empty(runs)
        for i in range(runs):
            t0 = time.perf_counter()
            engine(x)
            t[i] = time.perf_counter() - t0
        st = latency_stats(t)
        out["batches"][str(b)] = {
            "batch": b, "call_ms": st,
            "per_volume_ms_median": st["p50"] / b,
            "volumes_per_s": b / float(np.median(t)),
        }
    one = out["batches"].get("1")
    if one is not None:
        out["batch1_ms"] = {"median": one["call_ms"]["p50"], "p99": one["call_ms"]["p99"]}
    best = max(out["batches"].values(), key=lambda r: r["volumes_per_s"])
    out["throughput"] = {"batch": best["batch"], "volumes_per_s": best["volumes_per_s"],
                         "per_volume_ms": 1e3 / best["volumes_per_s"]}
    return out


def refine_benchmark(spec: BenchSpec, report: Callable[[str], None] | None = None,
                     batches: Sequence[int] | None = None, **engine_options: Any
                     ) -> dict[str, Any]:
    """Time the refinement network alone on ``spec.backend``.

    Builds the engine for batch sizes (1, ``spec.refine_batch``) (or ``batches``) from
    ``spec.width`` (random weights) or ``spec.checkpoint``, then times
    ``spec.refine_runs`` calls at each size. Returns per-volume latency at batch 1
    (median, p99) and batched throughput. ``engine_options`` go to
    :func:`~rtsource.engines.make_engine` (e.g. ``precision``).
    """
    import torch

    from .engines import make_engine
    from .models import PIUNET_PRESETS, PIUNet, count_parameters

    say = report or (lambda s: logger.info("%s", s))
    if spec.width is not None:
        torch.manual_seed(0)
        model = PIUNet(int(spec.width)).eval()
        source = f"random weights, width {spec.width} (timing only)"
    else:
        from .models.checkpoint import load_checkpoint
        from .online.refine import checkpoint_path

        ckpt = load_checkpoint(checkpoint_path(spec.checkpoint or "default"))
        model, source = ckpt.model, f"checkpoint {ckpt.path.name} (sha256 {ckpt.sha256[:12]})"
    threads = spec.threads or (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                               else os.cpu_count())
    batches = sorted({1, *(int(b) for b in (batches or (spec.refine_batch,)))})
    say(f"Building the {spec.backend} engine for batch sizes {batches} ({source})...")
    load0 = _loadavg()
    t0 = time.perf_counter()
    engine = make_engine(model, spec.backend, batch_sizes=batches, threads=threads,
                         **engine_options)
    setup_s = time.perf_counter() - t0
    res = _time_engine(engine, runs=spec.refine_runs, batches=batches)
    engine.close()
    width = getattr(model, "width", spec.width)
    res.update({
        "model": source, "width": width, "params": count_parameters(model),
        "reference_gflop_per_volume": PIUNET_PRESETS[width].reference_gflop
        if width in PIUNET_PRESETS else None,
        "setup_s": setup_s, "runs": spec.refine_runs, "threads": threads,
        "precision": getattr(engine, "precision", engine.dtype),
        "torch_threads": torch.get_num_threads(),
        "path": {"cpu": "torch.compile (Inductor, freezing, oneDNN)", "eager": "eager torch",
                 "onnx": "ONNX Runtime CPU", "cuda": "torch CUDA graphs",
                 "tensorrt": "TensorRT"}.get(engine.name, engine.name),
        "load_average_before": load0, "load_average_after": _loadavg(),
    })
    return res


def _pipeline_run(spec: BenchSpec, cfg: Any, tmp: Path, say: Callable[[str], None]
                  ) -> dict[str, Any]:
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
    child = _Child(["--pipeline-worker", str(job)])
    sub = None
    try:
        say("Starting the pipeline (head model, inverse kernel"
            + (", network" if spec.method == "piunet" else "") + ")...")
        ready = child.expect("READY", spec.start_timeout_s)
        sub = Subscriber(out, max_buflen=max(360, int(spec.duration_s) + 60))
        n_dec = int(ready["decimate"])
        phase = n_dec - 1  # the pipeline publishes samples k with (k + 1) % N == 0
        n_expected = len(range(phase, pusher.n, n_dec))
        say(f"Streaming {spec.duration_s:g} s of {pusher.n_channels - 1}-channel EEG at "
            f"{spec.rate:g} Hz in chunks of {spec.push_chunk}; output "
            f"{ready['nominal_srate']:g} Hz ({spec.method}/{ready['backend']}"
            + (f", one of every {n_dec} samples refined" if n_dec > 1 else "") + ")...")
        load0 = _loadavg()
        child.send("GO")
        pusher.go()
        sub.collect(n_expected, pusher.done, idle_s=5.0,
                    deadline_s=spec.duration_s * 4 + 120.0)
        load1 = _loadavg()
        worker = _stop_worker(child, result_path, 300.0 + 10 * spec.refine_runs)
    finally:
        _close_run(sub, child, pusher)
    m, steady = _steady_matches(sub, pusher, spec)
    drops = _drop_counts(m, pusher.n, n_dec, phase)
    st = worker["status"]
    drops["pipeline_input_dropped"] = int(st["n_dropped"])
    drops["pipeline_flagged"] = int(st["n_flagged"])
    stages = _stage_table(worker["stage_log"], m, pusher, _warm_samples(spec))
    span = float(np.nanmax(pusher.push_time) - np.nanmin(pusher.push_time)) or math.nan
    span += 1.0 / spec.rate
    res: dict[str, Any] = {
        "latency_ms": latency_stats(m["latency_s"][steady]),
        "stages_ms": {k: _stage_stats(v) for k, v in stages.items() if k != "piece_samples"},
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


def _baseline_run(spec: BenchSpec, cfg: Any, tmp: Path, say: Callable[[str], None]
                  ) -> dict[str, Any]:
    duration = spec.baseline_duration_s or min(spec.duration_s, 5.0)
    tag = uuid.uuid4().hex[:8]
    name, out = f"rtsource-bench-base-eeg-{tag}", f"rtsource-bench-base-regions-{tag}"
    pusher = AmplifierPusher(spec.montage, spec.rate, duration, spec.push_chunk, name,
                             seed=spec.seed)
    job = tmp / f"baseline-{tag}.json"
    result_path = tmp / f"baseline-{tag}-result.json"
    job.write_text(json.dumps({"config": dataclasses.asdict(cfg), "rate": spec.rate,
                               "input": name, "output": out, "result": str(result_path)}))
    child = _Child(["--baseline-worker", str(job)])
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
        worker = _stop_worker(child, result_path, 120.0)
    finally:
        _close_run(sub, child, pusher)
    m, steady = _steady_matches(sub, pusher, spec)
    hops = np.asarray(worker["hop_s"])
    drops = _drop_counts(m, pusher.n, 1, 0)
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


def _random_checkpoint(width: int, spacing_mm: float, folder: Path) -> str:
    import torch

    from .models import PIUNet
    from .models.checkpoint import save_checkpoint

    torch.manual_seed(0)  # the same weights every run: exports and engines are cached
    path = folder / f"random-piunet-w{width}.safetensors"
    save_checkpoint(PIUNet(int(width)).eval(), path, spacing_mm=spacing_mm,
                    training_config={"note": "random weights for rtsource bench"})
    return str(path)


def run_benchmark(spec: BenchSpec, *, refine_only: bool = False,
                  report: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the benchmark a spec describes; returns the results (JSON-ready but for the
    ``_series`` entries, which :func:`plot_results` uses and :func:`to_json` drops).

    Parameters
    ----------
    spec : BenchSpec
    refine_only : bool
        Only time the refinement network (no LSL, no pipeline).
    report : callable | None
        Receives progress lines (default: the package logger).
    """
    say = report or (lambda s: logger.info("%s", s))
    results: dict[str, Any] = {
        "benchmark": "rtsource bench" + (" --refine-only" if refine_only else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "config": {k: v for k, v in dataclasses.asdict(spec).items()},
        "machine": machine_info(),
    }
    results["config"]["push_chunk"] = spec.push_chunk
    results["notes"] = (
        "machine.load_average (1, 5, 15 min) was read at the start and "
        "machine.load_average_end at the end: on a shared machine the figures, tails above "
        "all, reflect what else ran. Timings use random inputs and (with --width) random "
        "weights; latency does not depend on either."
    )
    if refine_only:
        results["refine"] = refine_benchmark(spec, say)
        results["machine"]["load_average_end"] = _loadavg()
        return results
    with tempfile.TemporaryDirectory(prefix="rtsource-bench-") as tmpdir:
        tmp = Path(tmpdir)
        ckpt = None
        if spec.method == "piunet" and spec.width is not None:
            cfg0 = make_config(spec)
            ckpt = _random_checkpoint(spec.width, cfg0.headmodel.spacing_mm, tmp)
        elif spec.method == "piunet" and spec.checkpoint is not None:
            ckpt = spec.checkpoint
        cfg = make_config(spec, ckpt)
        results["config"]["pipeline"] = {
            "method": cfg.inverse.method, "montage": cfg.headmodel.montage,
            "conductor": cfg.headmodel.conductor, "atlas": cfg.regions.atlas,
            "window_s": cfg.stream.window_s, "hop_s": cfg.stream.hop_s,
            "filters": [cfg.stream.highpass_hz, cfg.stream.lowpass_hz, cfg.stream.notch_hz],
            "refine": dataclasses.asdict(cfg.refine) if cfg.inverse.method == "piunet" else None,
            "random_weights": spec.method == "piunet" and spec.width is not None,
        }
        ours = _pipeline_run(spec, cfg, tmp, say)
        results.update({k: ours[k] for k in (
            "latency_ms", "stages_ms", "samples_in", "samples_out", "dropped")})
        results["pipeline"] = {k: v for k, v in ours.items() if k not in results}
        base = None
        if spec.baseline:
            base = _baseline_run(spec, cfg, tmp, say)
        results["baseline"] = base
        if base is not None and ours["latency_ms"]["n"] and base["latency_ms"]["n"]:
            ol, bl = ours["latency_ms"], base["latency_ms"]
            ours_hop = ours["stages_ms"].get("compute", {}).get("median", math.nan)
            results["comparison"] = {
                "baseline_over_rtsource_latency_p50": bl["p50"] / ol["p50"],
                "baseline_over_rtsource_latency_p99": bl["p99"] / ol["p99"],
                "baseline_over_rtsource_compute_per_hop_median":
                    base["compute_per_hop_ms"]["p50"] / ours_hop if ours_hop else math.nan,
                "note": "The baseline falls behind when its compute per hop exceeds the hop: "
                        "its latency then grows for as long as it runs (see "
                        "baseline.latency_growth_s_per_s), so its latency figures depend on "
                        "its input length (baseline.duration_s).",
            }
    results["machine"]["load_average_end"] = _loadavg()
    return results


def to_json(results: dict[str, Any]) -> str:
    """JSON text of results (plot series dropped, NaN written as null)."""

    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if not str(k).startswith("_")}
        if isinstance(obj, (list, tuple)):
            return [clean(v) for v in obj]
        if isinstance(obj, (float, np.floating)):
            return None if not math.isfinite(float(obj)) else float(obj)
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.ndarray):
            return clean(obj.tolist())
        return obj

    return json.dumps(clean(results), indent=2)


# -- reporting ------------------------------------------------------------------------------
def plot_results(results: dict[str, Any], path: str | os.PathLike) -> Path:
    """Latency histogram and latency timeline (rtsource, and the baseline if run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    series = []
    pipe = results.get("pipeline") or {}
    if "_series" in pipe:
        series.append(("rtsource", pipe["_series"], "tab:blue"))
    base = results.get("baseline") or {}
    if "_series" in base:
        series.append(("MNE baseline", base["_series"], "tab:red"))
    if not series:
        raise ValueError("These results hold no latency series to plot (refine-only run?).")
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    all_lat = np.concatenate([np.asarray(s["latency_ms"]) for _, s, _ in series])
    all_lat = all_lat[np.isfinite(all_lat) & (all_lat > 0)]
    log = len(all_lat) and all_lat.max() / max(all_lat.min(), 1e-3) > 100
    bins = (np.geomspace(max(all_lat.min(), 1e-3), all_lat.max(), 80) if log
            else np.linspace(0, all_lat.max() if len(all_lat) else 1, 80))
    for label, s, color in series:
        lat = np.asarray(s["latency_ms"])
        lat = lat[np.isfinite(lat)]
        if not len(lat):
            continue
        p50, p99 = np.percentile(lat, [50, 99])
        ax1.hist(lat, bins=bins, color=color, alpha=0.6,
                 label=f"{label}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        ax2.plot(np.asarray(s["t"]), lat, ".", ms=1.5, color=color, label=label)
    if log:
        ax1.set_xscale("log")
        ax2.set_yscale("log")
    ax1.set_xlabel("latency: EEG push -> region sample arrival (ms)")
    ax1.set_ylabel("samples")
    ax1.legend(fontsize=8)
    ax2.set_xlabel("capture time since the start (s)")
    ax2.set_ylabel("latency (ms)")
    ax2.legend(fontsize=8, markerscale=6)
    cfg = results.get("config", {})
    load = (results.get("machine") or {}).get("load_average")
    fig.suptitle(f"rtsource bench: {cfg.get('method')} {cfg.get('montage')} {cfg.get('rate'):g} Hz, "
                 f"{pipe.get('backend', '')}, load average {load}", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fmt(stats: dict[str, Any] | None, keys: Sequence[str] = ("p50", "p95", "p99", "max")
         ) -> str:
    if not stats or not stats.get("n"):
        return "-"
    return ", ".join(f"{k} {stats[k]:.2f}" for k in keys) + " ms"


def summary_lines(results: dict[str, Any]) -> list[str]:
    """A short human-readable summary of results."""
    lines = []
    m = results.get("machine", {})
    lines.append(f"Machine: {m.get('cpu')}, {m.get('cpu_count')} cores, load average "
                 f"{m.get('load_average')} -> {m.get('load_average_end')}"
                 + (f", GPU {m['gpu']['name']}" if m.get("gpu") else ""))
    ref = results.get("refine") or (results.get("pipeline") or {}).get("refine")
    if "latency_ms" in results:
        p = results["pipeline"]
        r = p["rates_hz"]
        lines.append(
            f"rtsource ({results['config']['method']}/{p['backend']}, {p['n_channels']} ch, "
            f"{r['input']:.0f} Hz in, {r['output']:.1f} Hz out (declared "
            f"{r['output_declared']:g})): latency {_fmt(results['latency_ms'])}")
        lines.append(f"  samples in {results['samples_in']}, out {results['samples_out']}, "
                     f"dropped {results['dropped']}, timestamp error max "
                     f"{p['timestamp_error_max_us'] or 0:.0f} us")
        st = results["stages_ms"]
        if st:
            lines.append("  stages median/p99 (ms): " + ", ".join(
                f"{k} {st[k]['median']:.3f}/{st[k]['p99']:.3f}" for k in STAGES if k in st))
        c = p["cpu"]
        lines.append(f"  CPU: {c['cores_used']:.2f} cores ({c['fraction_of_machine']:.0%} of "
                     f"the machine) over {c['wall_s']:.1f} s"
                     + (f"; GPU {p['gpu']}" if p.get("gpu") else ""))
    if ref:
        b1 = ref.get("batch1_ms", {})
        tp = ref["throughput"]
        lines.append(f"Refinement ({ref['backend']}): batch 1 median {b1.get('median', math.nan):.2f} "
                     f"ms, p99 {b1.get('p99', math.nan):.2f} ms per volume; best throughput "
                     f"{tp['volumes_per_s']:.1f} volumes/s at batch {tp['batch']} "
                     f"({tp['per_volume_ms']:.2f} ms per volume)")
    base = results.get("baseline")
    if base:
        lines.append(f"MNE baseline ({base['duration_s']:g} s): latency {_fmt(base['latency_ms'])}; "
                     f"compute per hop median {base['compute_per_hop_ms']['p50']:.1f} ms "
                     f"({'keeps up' if base['keeps_up'] else 'falls behind'})")
        cmp_ = results.get("comparison")
        if cmp_:
            lines.append(
                f"  baseline / rtsource: latency p50 x{cmp_['baseline_over_rtsource_latency_p50']:.0f}"
                f", p99 x{cmp_['baseline_over_rtsource_latency_p99']:.0f}, compute per hop x"
                f"{cmp_['baseline_over_rtsource_compute_per_hop_median']:.1f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    """Entry point of the worker processes (``python -m rtsource.benchmark``)."""
    import argparse

    ap = argparse.ArgumentParser(description="rtsource benchmark workers (internal)")
    ap.add_argument("--pipeline-worker", metavar="JOB")
    ap.add_argument("--baseline-worker", metavar="JOB")
    args = ap.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from ._util import quiet_liblsl

    quiet_liblsl()
    if args.pipeline_worker:
        return _pipeline_worker(args.pipeline_worker)
    if args.baseline_worker:
        return _baseline_worker(args.baseline_worker)
    ap.error("give --pipeline-worker or --baseline-worker")
    return 2


if __name__ == "__main__":
    sys.exit(main())
