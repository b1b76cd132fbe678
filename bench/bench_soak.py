"""Soak test of the live pipeline: 256 channels at 1 kHz for many minutes, over real LSL.

What runs:

* the **pipeline** (:class:`rtsource.online.pipeline.Pipeline`, what ``rtsource run`` runs;
  default configuration: eLORETA, BN246, BEM head model) in a **worker process** of its
  own, so that its resident memory (RSS) is that of the pipeline alone;
* rtsource's **simulated amplifier** (:class:`~rtsource.simulate.amplifier.SimulatedAmplifier`,
  ``biosemi256`` with electrode positions and the ``sample_index`` channel), generating
  and pushing 10-sample chunks in real time on a thread of this process;
* a **subscriber** of the region stream on another thread of this process, which maps
  each received sample back to the input sample it represents (its timestamp is that
  sample's capture time) and counts how often each arrived.

Reported (JSON, rewritten after every minute so that a stop loses at most a minute):

* dropped and duplicated samples: input side, the pipeline's own status counters
  (``n_dropped`` from ring overflow and ``sample_index`` gaps, ``n_duplicated``);
  output side, the subscriber's count of every expected output sample (missing: arrived
  0 times; duplicated: arrivals beyond the first). The pipeline deliberately withholds
  some samples and counts them (``n_flagged``: bad data, and the first row after its
  filters start); ``missing_not_flagged_by_the_pipeline`` is what it lost silently;
* resident memory of the pipeline process (``/proc/PID/status`` ``VmRSS``, sampled once a
  second): at the start of streaming, at the end, the largest sample, and ``VmHWM``;
* latency per minute (median, p95, p99, max, ms): from the moment the amplifier's
  ``push_chunk`` returned for the chunk holding an EEG sample to the subscriber holding
  the region sample for it (liblsl may hand a chunk to a local subscriber just before
  ``push_chunk`` returns, so this can read up to a push's duration, ~0.05 ms, low); the
  first ``--warmup-s`` seconds (start-up backlog) are reported apart;
* the CPU (``rtsource._util.cpu_features()``), the load average at start, every minute and
  at the end, whether the machine was idle (1-min load average below 0.5 at the start
  and at every minute), the pipeline's status line and the duration.

    python bench/bench_soak.py --minutes 10            # -> bench/results/soak-10min.json
    nohup nice python bench/bench_soak.py --minutes 60 > /tmp/soak60.log 2>&1 &

Options: ``--minutes M``, ``--out FILE``, ``--montage``, ``--rate``, ``--chunk``,
``--conductor``, ``--warmup-s``, ``--seed``.
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import queue  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# the head models and kernels the tests and other benchmarks cached
os.environ.setdefault("RTSOURCE_CACHE", str(REPO / ".cache"))

import numpy as np  # noqa: E402

#: 1-min load average below which the machine counts as idle.
IDLE_LOAD = 0.5


def code_version() -> dict[str, Any]:
    """The commit of the rtsource code that runs, and whether its files differ from it.

    A snapshot made with ``git archive`` (for a long run that others' edits must not touch)
    carries a ``COMMIT`` file beside ``rtsource/``.
    """
    import rtsource

    root = Path(rtsource.__file__).resolve().parents[1]
    stamp = root / "COMMIT"
    if stamp.exists():
        return {"commit": stamp.read_text().strip(), "source": str(root),
                "how": "git archive snapshot"}
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], text=True,
                                capture_output=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--",
                                "rtsource"], text=True, capture_output=True).stdout.split("\n")
        return {"commit": commit, "source": str(root),
                "uncommitted_rtsource_files": [d for d in dirty if d.strip()]}
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "source": str(root)}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of a process so far (``/proc/PID/stat``)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def rss_kib(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS, VmHWM) of a process in KiB from ``/proc/PID/status``; None where absent."""
    rss = hwm = None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


# -- the worker: the pipeline alone in its process ---------------------------------------------
def worker(job_path: str) -> int:
    """Child process: open the pipeline, report READY, run it, report STATUS every few
    seconds until the parent sends STOP on stdin, then DONE with the final status."""
    from rtsource.bench.protocol import announce
    from rtsource.config import Config, from_dict
    from rtsource.online.pipeline import Pipeline

    job = json.loads(Path(job_path).read_text())
    cfg = from_dict(Config, job["config"])
    pipe = Pipeline(cfg, linger_s=1.0, progress=False)
    pipe.open()
    assert pipe.processor is not None and pipe.outlet is not None
    announce("READY", {"n_channels": pipe.processor.mapper.n_used,
                       "n_regions": pipe.processor.regions.n_regions,
                       "n_sources": pipe.processor.headmodel.n_sources,
                       "nominal_srate": pipe.outlet.srate, "decimate": pipe.decimate,
                       "backend": pipe.backend, "window": pipe.window, "hop": pipe.hop,
                       "positions": pipe.positions_used,
                       "provenance": {k: pipe.provenance.get(k) for k in (
                           "headmodel", "inverse_method", "atlas", "schedule")}})
    pipe.start(wait_for_consumer_s=60.0)
    stop = threading.Event()

    def read_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "STOP":
                break
        stop.set()

    threading.Thread(target=read_stdin, daemon=True).start()
    period = float(job["status_every_s"])
    while not stop.wait(period):
        announce("STATUS", {"status": dataclasses.asdict(pipe.status()),
                            "line": pipe.status().line(), "t": time.monotonic()})
        if not pipe.running:
            break
    error = None
    try:
        pipe.stop()
    except Exception as err:  # reported to the parent
        error = f"{type(err).__name__}: {err}"
    st = pipe.status()
    announce("DONE", {"status": dataclasses.asdict(st), "line": st.line(), "error": error})
    return 0


class Worker:
    """The worker process and the lines it says (``WORD {json}``)."""

    def __init__(self, job: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker", str(job)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=limit_threads(dict(os.environ)))
        self.lines: queue.Queue[tuple[str, dict] | None] = queue.Queue()
        self.stderr: list[str] = []
        self.last_status: dict | None = None
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, _, payload = line.rstrip("\n").partition(" ")
            if word in ("READY", "STATUS", "DONE"):
                item = (word, json.loads(payload))
                if word == "STATUS":
                    self.last_status = item[1]
                self.lines.put(item)
        self.lines.put(None)

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))
            del self.stderr[:-200]

    def expect(self, word: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            try:
                item = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"The pipeline worker did not say {word} within "
                                   f"{timeout:g} s:\n" + "\n".join(self.stderr[-30:])) from None
            if item is None:
                self.proc.wait(10)
                raise RuntimeError(f"The pipeline worker ended (exit {self.proc.returncode}) "
                                   f"before {word}:\n" + "\n".join(self.stderr[-40:]))
            if item[0] == word:
                return item[1]

    def send(self, word: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(word + "\n")
        self.proc.stdin.flush()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# -- the subscriber -------------------------------------------------------------------------------
class Counter:
    """Subscribes to the region stream on a thread; hands (timestamps, arrivals) chunks over."""

    def __init__(self, name: str) -> None:
        import pylsl

        from rtsource.stream.lslio import resolve_stream

        self.inlet = pylsl.StreamInlet(resolve_stream(name=name, timeout=60.0),
                                       max_buflen=120, recover=False)
        self.info = self.inlet.info(timeout=10.0)
        self.inlet.open_stream(timeout=10.0)
        self.offset = self.inlet.time_correction(timeout=5.0)
        self._buf = np.zeros((4096, self.info.channel_count()), dtype=np.float32)
        self.chunks: queue.Queue[tuple[np.ndarray, np.ndarray]] = queue.Queue()
        self.n = 0
        self.n_nonfinite = 0
        self.last_data = time.monotonic()
        self._stop = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="soak-subscriber", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        import pylsl

        try:
            while not self._stop.is_set():
                _, ts = self.inlet.pull_chunk(timeout=0.05, max_samples=len(self._buf),
                                              dest_obj=self._buf, min_samples=1)
                if ts:
                    now = pylsl.local_clock()
                    n = len(ts)
                    self.n_nonfinite += int(n - np.isfinite(self._buf[:n]).all(axis=1).sum())
                    self.chunks.put((np.asarray(ts) + self.offset, np.full(n, now)))
                    self.n += n
                    self.last_data = time.monotonic()
        except BaseException as err:  # reported in the results
            self.error = err

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5.0)
        self.inlet.close_stream()


# -- the run -------------------------------------------------------------------------------------
def _pct(lat_s: np.ndarray) -> dict[str, Any]:
    from rtsource.bench.stats import latency_stats

    s = latency_stats(lat_s)
    return {"median": s["p50"], "p95": s["p95"], "p99": s["p99"], "max": s["max"],
            "mean": s["mean"], "n": s["n"]}


def soak(args: argparse.Namespace) -> dict[str, Any]:
    import pylsl

    from rtsource._util import cpu_features, loadavg
    from rtsource.bench.stats import machine_info, to_json
    from rtsource.config import load_config
    from rtsource.simulate.amplifier import SimulatedAmplifier

    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    rate = float(args.rate)
    per_min = int(round(60 * rate))
    n_total = int(round(args.minutes * 60 * rate))
    tag = uuid.uuid4().hex[:8]
    name, out = f"rtsource-soak-eeg-{tag}", f"rtsource-soak-regions-{tag}"
    load_start = loadavg()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    results: dict[str, Any] = {
        "benchmark": "bench/bench_soak.py", "complete": False, "started": started,
        "code": code_version(), "cpu": cpu_features(), "machine": machine_info(),
        "load_average_start": load_start,
        "settings": {"minutes": args.minutes, "montage": args.montage, "rate_hz": rate,
                     "push_chunk": args.chunk, "conductor": args.conductor,
                     "method": "eloreta", "atlas": "bn246", "warmup_s": args.warmup_s,
                     "seed": args.seed, "niceness": os.nice(0),
                     "latency": "amplifier push_chunk returned -> subscriber holds the "
                                "region sample (every output sample)"},
    }

    def write() -> None:
        tmp = out_path.with_suffix(".partial")
        tmp.write_text(to_json(results))
        tmp.replace(out_path)

    print(f"Building the simulated {args.montage} amplifier ...", flush=True)
    amp = SimulatedAmplifier(args.montage, rate, name, source_id=name, conductor="sphere",
                             chunk_size=args.chunk, seed=args.seed)
    cfg = load_config(headmodel={"montage": args.montage, "conductor": args.conductor},
                      stream={"input": name, "output": out, "resolve_timeout_s": 60.0})
    job = Path(f"/tmp/rtsource-soak-{tag}.json")
    job.write_text(json.dumps({"config": dataclasses.asdict(cfg), "status_every_s": 5.0}))
    # the amplifier's outlet exists first (the pipeline resolves it); it pushes once the
    # pipeline's inlet is connected, at most a second or two before the pipeline runs
    amp.start(duration_s=n_total / rate, wait_for_consumer_s=1800.0,
              record_push_times=True, linger_s=30.0, timeout=30.0)
    wk = Worker(job)
    counter = None
    counter_closed = False
    try:
        print("Starting the pipeline worker (head model, kernel) ...", flush=True)
        ready = wk.expect("READY", 1800.0)
        results["pipeline"] = ready
        counter = Counter(out)
        pid = wk.proc.pid
        print(f"Streaming {args.minutes:g} min of {amp.n_eeg}-channel EEG at {rate:g} Hz; "
              f"pipeline pid {pid}; writing {out_path} every minute.", flush=True)
        while amp.t0 is None:
            time.sleep(0.01)
        t0 = amp.t0
        push_time = np.full(n_total, np.nan)
        counts = np.zeros(n_total, dtype=np.uint16)
        n_bad_stamp = 0
        ts_err_max = 0.0
        pending: list[tuple[np.ndarray, np.ndarray]] = []
        lat_by_min: dict[int, list[np.ndarray]] = {}
        warm_lat: list[np.ndarray] = []
        warm_k = int(round(args.warmup_s * rate))
        rss_samples: list[tuple[float, int]] = []
        rss0, _ = rss_kib(pid)
        results["rss_mib"] = {"start": rss0 / 1024 if rss0 else None}
        minutes: list[dict[str, Any]] = []
        results["minutes"] = minutes
        next_min = 0
        wall0 = time.monotonic()
        t_rss = 0.0

        def drain() -> None:
            nonlocal n_bad_stamp, ts_err_max
            log = amp.push_log
            assert log is not None
            while log:
                k0, n, t = log.popleft()
                push_time[k0:k0 + n] = t
            while True:
                try:
                    pending.append(counter.chunks.get_nowait())
                except queue.Empty:
                    break
            keep = []
            for ts, arr in pending:
                pos = (ts - t0) * rate
                k = np.round(pos).astype(np.int64)
                ok = (k >= 0) & (k < n_total)
                n_bad_stamp += int((~ok).sum())
                k, arr, pos = k[ok], arr[ok], pos[ok]
                if not len(k):
                    continue
                ts_err_max = max(ts_err_max, float(np.abs(pos - k).max() / rate))
                known = np.isfinite(push_time[k])
                if not known.all():  # the push log lags the delivery: next pass
                    keep.append((t0 + k[~known] / rate, arr[~known]))
                    k, arr = k[known], arr[known]
                np.add.at(counts, k, 1)
                lat = arr - push_time[k]
                warm = k < warm_k
                if warm.any():
                    warm_lat.append(lat[warm])
                m = k[~warm] // per_min
                for mm in np.unique(m):
                    lat_by_min.setdefault(int(mm), []).append(lat[~warm][m == mm])
            pending[:] = keep

        cpu_mark = {"t": time.monotonic(), "worker": cpu_seconds(pid) or 0.0,
                    "driver": sum(os.times()[:2])}

        def close_minute(mm: int) -> None:
            now_m, w, d = time.monotonic(), cpu_seconds(pid) or 0.0, sum(os.times()[:2])
            dt = max(now_m - cpu_mark["t"], 1e-9)
            cores = {"pipeline": (w - cpu_mark["worker"]) / dt,
                     "driver": (d - cpu_mark["driver"]) / dt}
            cpu_mark.update(t=now_m, worker=w, driver=d)
            lat = np.concatenate(lat_by_min.pop(mm, [np.zeros(0)]))
            lo, hi = mm * per_min, min((mm + 1) * per_min, n_total)
            c = counts[lo:hi]
            sel = [r for t, r in rss_samples if mm * 60 <= t < (mm + 1) * 60]
            st = (wk.last_status or {}).get("status", {})
            minutes.append({
                "minute": mm + 1, "latency_ms": _pct(lat),
                "out_missing_so_far": int((c == 0).sum()),
                "out_duplicated": int(np.maximum(c.astype(np.int64) - 1, 0).sum()),
                "rss_mib": {"min": min(sel) / 1024 if sel else None,
                            "max": max(sel) / 1024 if sel else None,
                            "last": sel[-1] / 1024 if sel else None},
                "load_average": loadavg(),
                "cores_used": cores,
                "pipeline": {k: st.get(k) for k in ("n_in", "n_out", "n_dropped",
                                                     "n_duplicated", "n_flagged", "n_ts_gaps",
                                                     "behind", "state")},
                "pipeline_line": (wk.last_status or {}).get("line"),
            })
            L = minutes[-1]["latency_ms"]
            print(f"minute {mm + 1}: latency median {L['median']:.2f} p95 {L['p95']:.2f} "
                  f"p99 {L['p99']:.2f} max {L['max']:.1f} ms (n {L['n']}); RSS "
                  f"{minutes[-1]['rss_mib']['last']} MiB; load {minutes[-1]['load_average']}; "
                  f"{minutes[-1]['pipeline_line']}", flush=True)
            results["elapsed_s"] = time.monotonic() - wall0
            write()

        # -- streaming --
        while amp.n_pushed < n_total and amp.running:
            time.sleep(0.2)
            now = pylsl.local_clock()
            if now - t_rss >= 1.0:
                t_rss = now
                r, _ = rss_kib(pid)
                if r:
                    rss_samples.append((now - t0, r))
            drain()
            # a minute is closed 3 s after its last sample was captured
            if next_min < args.minutes and now - t0 > (next_min + 1) * 60 + 3.0:
                close_minute(next_min)
                next_min += 1
            if wk.proc.poll() is not None:
                raise RuntimeError("The pipeline worker ended early:\n"
                                   + "\n".join(wk.stderr[-40:]))
            if counter.error is not None:
                raise RuntimeError(f"The subscriber failed: {counter.error}")
        # -- the tail: every expected sample, or nothing new for 5 s --
        deadline = time.monotonic() + 60.0
        while time.monotonic() < deadline:
            time.sleep(0.2)
            drain()
            if counts.all() and not pending:
                break
            if time.monotonic() - counter.last_data > 5.0:
                break
        time.sleep(0.5)  # anything extra (duplicates) shows up too
        drain()
        while next_min < math.ceil(args.minutes - 1e-9):
            close_minute(next_min)
            next_min += 1
        rss_end, hwm = rss_kib(pid)
        load_end = loadavg()
        counter.close()  # inlets before outlets
        counter_closed = True
        wk.send("STOP")
        done = wk.expect("DONE", 120.0)
    finally:
        if counter is not None and not counter_closed:
            counter.close()
        wk.kill()
        amp.stop()
    st = done["status"]
    rss = np.array([r for _, r in rss_samples], dtype=np.float64) / 1024
    all_lat = [m["latency_ms"] for m in minutes]
    results.update({
        "complete": True,
        "finished": time.strftime("%Y-%m-%d %H:%M:%S"),
        "duration_s": n_total / rate, "elapsed_s": time.monotonic() - wall0,
        "samples_in": int(amp.n_pushed), "samples_expected_out": int(n_total),
        "samples_received": int(counts.sum()),
        "output": {"missing": int((counts == 0).sum()),
                   "missing_indices_first": np.flatnonzero(counts == 0)[:20].tolist(),
                   "missing_not_flagged_by_the_pipeline": int((counts == 0).sum())
                   - int(st["n_flagged"]),
                   "duplicated": int(np.maximum(counts.astype(np.int64) - 1, 0).sum()),
                   "stamped_outside_the_run": n_bad_stamp,
                   "timestamp_error_max_us": ts_err_max * 1e6,
                   "nonfinite_rows": counter.n_nonfinite},
        "input": {k: st[k] for k in ("n_in", "n_out", "n_dropped", "n_duplicated",
                                     "n_flagged", "n_ts_gaps", "n_backwards",
                                     "n_reconnects")},
        "pipeline_final_line": done["line"], "pipeline_error": done["error"],
        "rss_mib": {"start": rss0 / 1024 if rss0 else None,
                    "end": rss_end / 1024 if rss_end else None,
                    "max_sampled": float(rss.max()) if rss.size else None,
                    "vm_hwm": hwm / 1024 if hwm else None,
                    "growth_first_to_last_minute": (
                        minutes[-1]["rss_mib"]["last"] - minutes[0]["rss_mib"]["last"])
                    if len(minutes) > 1 and minutes[0]["rss_mib"]["last"] else None},
        "warmup_latency_ms": _pct(np.concatenate(warm_lat) if warm_lat else np.zeros(0)),
        "latency_ms_over_minutes": {
            "median_of_minute_medians": float(np.median([x["median"] for x in all_lat])),
            "worst_minute_p99": float(np.nanmax([x["p99"] for x in all_lat])),
            "worst_max": float(np.nanmax([x["max"] for x in all_lat])),
        },
        "load_average_end": load_end,
        "machine_idle": bool(load_start is not None and load_start[0] < IDLE_LOAD and all(
            m["load_average"] is not None and m["load_average"][0]
            - m["cores_used"]["pipeline"] - m["cores_used"]["driver"] < IDLE_LOAD
            for m in minutes)),
        "other_load_per_minute": [
            None if m["load_average"] is None else round(
                m["load_average"][0] - m["cores_used"]["pipeline"]
                - m["cores_used"]["driver"], 2) for m in minutes],
        "note": f"machine_idle: 1-min load average below {IDLE_LOAD} before the run, and at "
                "every minute the 1-min load average less the cores this benchmark used "
                "(pipeline + driver, cores_used) below it (other_load_per_minute; a rough "
                "estimate: the load average is a decaying mean). The machine has 2 cores "
                "shared with other users.",
    })
    write()
    return results


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="minutes of streaming")
    p.add_argument("--out", default=None,
                   help="JSON file (default bench/results/soak-<minutes>min.json)")
    p.add_argument("--montage", default="biosemi256")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--chunk", type=int, default=10, help="samples per amplifier push")
    p.add_argument("--conductor", default="bem", help="the pipeline's head model")
    p.add_argument("--warmup-s", type=float, default=5.0,
                   help="seconds at the start reported apart from the per-minute latency")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        return worker(args.worker)
    if args.out is None:
        args.out = str(RESULTS / f"soak-{args.minutes:g}min.json")
    res = soak(args)
    o, i, r = res["output"], res["input"], res["rss_mib"]
    print(f"Done: output missing {o['missing']}, duplicated {o['duplicated']}; input dropped "
          f"{i['n_dropped']}, duplicated {i['n_duplicated']}; RSS start {r['start']:.1f}, end "
          f"{r['end']:.1f}, max {r['max_sampled']:.1f} MiB; {res['latency_ms_over_minutes']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
