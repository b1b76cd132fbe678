"""End-to-end latency of the live pipeline over real loopback LSL, against the baseline a
user would otherwise write.

Runs, in one invocation (each pipeline in its own process, as ``rtsource run``):

1. ``rtsource run`` (eLORETA, BEM head model, BN246, 25 ms window, 10 ms hop) on a
   128-channel 1 kHz stream. Latency = arrival of a sample's region sample at a subscriber
   minus the time its EEG sample was pushed, for every sample. The amplifier pushes
   10-sample (10 ms) blocks; a second run pushes every sample on its own (latency then
   includes waiting for the hop to fill).
2. The same at 256 channels, 1 kHz: sustained, counting drops (the sample-index channel
   and the output timestamps prove none was lost or duplicated).
3. The baseline: pylsl pull + MNE ``apply_inverse_raw`` with a prepared eLORETA operator
   per 10 ms hop (25-sample window, same head model, regions from the same atlas weights,
   no filtering: the baseline is given the easier job), pushed to an LSL outlet and
   measured by the same subscriber. It cannot keep up at a 10 ms hop, so its input is
   shorter and its latency grows while it runs; the JSON says so.

Writes ``bench/results/pipeline_latency_cpu.json``.

    python bench/bench_pipeline.py [--duration 30] [--baseline-duration 5]
"""

from __future__ import annotations

import os

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import re  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pylsl  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import stats_ms, write  # noqa: E402

HOP_S, WINDOW_S = 0.010, 0.025


# -- the amplifier side -----------------------------------------------------------------
class Pusher:
    """Pushes pre-generated simulated EEG in real time once ``gate`` is set, logging the
    local_clock() of every push (the reference for the latency)."""

    def __init__(self, montage: str, sfreq: float, duration_s: float, chunk: int, name: str):
        from rtsource.stream.simamp import SimulatedAmplifier

        self.amp = SimulatedAmplifier(montage, sfreq, name, source_id=name, conductor="sphere",
                                      seed=1)
        self.sfreq, self.chunk = sfreq, chunk
        self.n = round(duration_s * sfreq)
        self.data = self.amp.generate(self.n).astype(np.float32)
        self.outlet = pylsl.StreamOutlet(self.amp.stream_info(), chunk_size=0, max_buffered=60)
        self.gate = threading.Event()
        self.push_time = np.full(self.n, np.nan)
        self.t0 = None
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.gate.wait()
        t0 = self.t0 = pylsl.local_clock()
        ts = t0 + np.arange(self.n) / self.sfreq
        for k in range(0, self.n, self.chunk):
            m = min(self.chunk, self.n - k)
            delay = ts[k + m - 1] - pylsl.local_clock()
            if delay > 0:
                time.sleep(delay)
            self.outlet.push_chunk(self.data[k:k + m], ts[k:k + m])
            self.push_time[k:k + m] = pylsl.local_clock()
        self.done.set()

    def close(self) -> None:
        self.outlet = None


def subscribe(name: str, pusher: Pusher, timeout_s: float, idle_s: float = 5.0,
              ready: threading.Event | None = None) -> dict:
    """Open the output stream, release the pusher, and time every region sample."""
    from rtsource.stream.lslio import resolve_stream

    inlet = pylsl.StreamInlet(resolve_stream(name=name, timeout=timeout_s), max_buflen=600)
    info = inlet.info(timeout=10.0)
    inlet.open_stream(timeout=10.0)
    offset = inlet.time_correction(timeout=5.0)
    buf = np.zeros((4096, info.channel_count()), dtype=np.float32)
    stamps, arrivals = [], []
    pusher.gate.set()
    last = time.monotonic()
    while True:
        _, ts = inlet.pull_chunk(timeout=0.1, max_samples=len(buf), dest_obj=buf, min_samples=1)
        now = pylsl.local_clock()
        if ts:
            stamps.append(np.asarray(ts) + offset)
            arrivals.append(np.full(len(ts), now))
            last = time.monotonic()
        elif pusher.done.is_set() and time.monotonic() - last > idle_s:
            break
        if sum(len(s) for s in stamps) >= pusher.n and pusher.done.is_set():
            break
    inlet.close_stream()
    ts = np.concatenate(stamps) if stamps else np.zeros(0)
    arr = np.concatenate(arrivals) if arrivals else np.zeros(0)
    idx = np.round((ts - pusher.t0) * pusher.sfreq).astype(np.int64)
    ok = (idx >= 0) & (idx < pusher.n)
    lat = arr[ok] - pusher.push_time[idx[ok]]
    warm = idx[ok] >= int(pusher.sfreq)  # leave out the first second (first window, warm-up)
    unique_idx = np.unique(idx[ok])
    res = {
        "n_pushed": int(pusher.n),
        "n_received": int(len(ts)),
        "missing": int(pusher.n - len(unique_idx)),
        "duplicated": int(ok.sum() - len(unique_idx)),
        "in_order": bool(np.all(np.diff(idx) == 1)) if len(idx) > 1 else True,
        "timestamp_error_max_us": float(np.abs(ts - pusher.t0 - idx / pusher.sfreq).max() * 1e6)
        if len(ts) else None,
        "latency_ms": stats_ms(lat[warm]) if warm.any() else {},
    }
    if warm.any():
        lw, iw = lat[warm], idx[ok][warm]
        half = pusher.sfreq + (pusher.n - pusher.sfreq) / 2
        res["latency_median_first_half_ms"] = float(np.median(lw[iw < half]) * 1e3)
        res["latency_median_second_half_ms"] = float(np.median(lw[iw >= half]) * 1e3)
        res["latency_mean_ms"] = float(lw.mean() * 1e3)
    return res


def _cli(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "rtsource.cli", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_pipeline(montage: str, n_ch: int, duration_s: float, chunk: int, tmp: Path) -> dict:
    """``rtsource run`` in a subprocess on a simulated stream; returns the measurements."""
    tag = uuid.uuid4().hex[:8]
    name, out = f"bench-eeg-{tag}", f"bench-regions-{tag}"
    cfg = tmp / f"bench-{tag}.toml"
    cfg.write_text(
        f'[headmodel]\nmontage = "{montage}"\nconductor = "bem"\n'
        f'[inverse]\nmethod = "eloreta"\n[regions]\natlas = "bn246"\n'
        f"[stream]\nwindow_s = {WINDOW_S}\nhop_s = {HOP_S}\nresolve_timeout_s = 300.0\n"
    )
    pusher = Pusher(montage, 1000.0, duration_s, chunk, name)
    proc = _cli(["run", "--input", name, "--config", str(cfg), "--output", out,
                 "--wait-for-consumer", "300", "--status-interval", "5"])
    try:
        res = subscribe(out, pusher, timeout_s=600.0)
    finally:
        proc.terminate()
        stdout, stderr = proc.communicate(timeout=60)
        pusher.close()
    m = re.search(r"Stopped: (\d+) samples in, (\d+) out, (\d+) flagged, (\d+) dropped", stdout)
    if proc.returncode != 0 or m is None:
        raise RuntimeError(f"rtsource run failed ({proc.returncode}):\n{stdout}\n{stderr}")
    status = [ln for ln in stdout.splitlines() if ln.startswith("[")]
    res.update({
        "n_channels": n_ch, "montage": montage, "sfreq": 1000.0, "duration_s": duration_s,
        "pusher_chunk_samples": chunk, "hop_ms": HOP_S * 1e3, "window_ms": WINDOW_S * 1e3,
        "method": "eloreta", "conductor": "bem", "atlas": "bn246",
        "pipeline_counts": dict(zip(("in", "out", "flagged", "dropped"),
                                    map(int, m.groups()), strict=True)),
        "pipeline_last_status": status[-1] if status else "",
    })
    res["zero_drops"] = (res["missing"] == 0 and res["duplicated"] == 0
                         and res["pipeline_counts"]["dropped"] == 0)
    return res


def compute_per_hop(montage: str) -> dict:
    """In-process cost of one 10-sample hop through SourceProcessor (no LSL)."""
    import mne
    from _common import time_calls

    from rtsource.config import load_config
    from rtsource.processing import SourceProcessor

    cfg = load_config(headmodel={"montage": montage, "conductor": "bem"})
    names = mne.channels.make_standard_montage(montage).ch_names
    proc = SourceProcessor(cfg, names, 1000.0, progress=False)
    x = (np.random.default_rng(0).standard_normal((10, len(names))) * 1e-5).astype(np.float32)
    return stats_ms(time_calls(lambda: proc.process(x), 500, warmup=20))


# -- the baseline worker (own process) ----------------------------------------------------
def baseline_worker(input_name: str, output_name: str, stats_path: str) -> None:
    """pylsl pull + MNE apply_inverse_raw(prepared eLORETA) per 10 ms hop -> LSL outlet."""
    import mne

    from rtsource.config import load_config
    from rtsource.headmodel import build_headmodel
    from rtsource.headmodel.build import make_forward
    from rtsource.headmodel.montage import get_montage, montage_info
    from rtsource.regions import region_map

    mne.set_log_level("error")
    cfg = load_config(headmodel={"montage": "biosemi128", "conductor": "bem"})
    sfreq = 1000.0
    info = montage_info(get_montage("biosemi128"), sfreq)
    fwd, _ = make_forward(cfg.headmodel, info)
    raw0 = mne.io.RawArray(np.zeros((len(info.ch_names), 2)), info)
    raw0.set_eeg_reference("average", projection=True)
    cov = mne.make_ad_hoc_cov(raw0.info, std={"eeg": cfg.inverse.noise_std_uv * 1e-6})
    inv = mne.minimum_norm.make_inverse_operator(raw0.info, fwd, cov, loose=1.0, depth=None)
    lambda2 = cfg.inverse.lambda2
    inv = mne.minimum_norm.prepare_inverse_operator(inv, 1, lambda2, "eLORETA")
    W = region_map(build_headmodel(cfg.headmodel, progress=False), "bn246").weights  # (r, s)
    inlet = pylsl.StreamInlet(pylsl.resolve_byprop("name", input_name, 1, 120)[0],
                              max_buflen=600)
    in_info = inlet.info()
    n_in = in_info.channel_count()
    out_info = pylsl.StreamInfo(output_name, "SourceActivation", W.shape[0], sfreq, "float32",
                                f"{output_name}-id")
    outlet = pylsl.StreamOutlet(out_info)
    hop, window = round(HOP_S * sfreq), round(WINDOW_S * sfreq)
    n_eeg = len(info.ch_names)
    data = np.zeros((0, n_in))
    stamps = np.zeros(0)
    n_new = window  # the first window publishes all its samples, later ones their hop
    hop_times = []
    idle_since = time.monotonic()
    while True:
        chunk, ts = inlet.pull_chunk()  # what a user writes: lists of samples
        if ts:
            idle_since = time.monotonic()
            data = np.concatenate([data, np.asarray(chunk)])
            stamps = np.concatenate([stamps, ts])
        elif time.monotonic() - idle_since > 5.0:
            break
        else:
            time.sleep(0.001)
        # data[:window - n_new] were published already; a window is ready when it is full
        while len(stamps) >= window:
            t0 = time.perf_counter()
            raw = mne.io.RawArray(data[:window, :n_eeg].T, raw0.info, verbose="error")
            stc = mne.minimum_norm.apply_inverse_raw(raw, inv, lambda2, "eLORETA",
                                                     pick_ori="vector", prepared=True)
            J = np.linalg.norm(stc.data[:, :, -n_new:], axis=1)  # (n_src, n_new)
            outlet.push_chunk((W @ J).T.astype(np.float32), stamps[window - n_new:window].tolist())
            hop_times.append(time.perf_counter() - t0)
            data, stamps = data[hop:], stamps[hop:]
            n_new = hop
    Path(stats_path).write_text(json.dumps({"hop_s": hop_times}))
    time.sleep(1.0)


def run_baseline(duration_s: float, chunk: int) -> dict:
    tag = uuid.uuid4().hex[:8]
    name, out = f"bench-base-eeg-{tag}", f"bench-base-regions-{tag}"
    with tempfile.TemporaryDirectory() as tmp:
        stats_path = Path(tmp) / "hops.json"
        pusher = Pusher("biosemi128", 1000.0, duration_s, chunk, name)
        proc = subprocess.Popen([sys.executable, __file__, "--baseline-worker", name, out,
                                 str(stats_path)], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        try:
            res = subscribe(out, pusher, timeout_s=600.0, idle_s=8.0)
            _, stderr = proc.communicate(timeout=300)
        finally:
            if proc.poll() is None:
                proc.kill()
            pusher.close()
        if not stats_path.exists():
            raise RuntimeError(f"The baseline worker failed:\n{stderr}")
        hops = json.loads(stats_path.read_text())["hop_s"]
    res.update({
        "what": "pylsl pull_chunk (lists) + mne.minimum_norm.apply_inverse_raw(prepared eLORETA, "
                "pick_ori='vector') on a RawArray of the 25-sample window, every 10 ms hop; "
                "|J| -> BN246 weights; no filtering",
        "n_channels": 128, "sfreq": 1000.0, "duration_s": duration_s,
        "pusher_chunk_samples": chunk, "hop_ms": HOP_S * 1e3, "window_ms": WINDOW_S * 1e3,
        "compute_per_hop_ms": stats_ms(hops),
        "keeps_up": bool(np.median(hops) < HOP_S),
    })
    if res.get("latency_median_second_half_ms") and res.get("latency_median_first_half_ms"):
        res["latency_growth_s_per_s"] = (
            (res["latency_median_second_half_ms"] - res["latency_median_first_half_ms"]) / 1e3
            / max((duration_s - 1.0) / 2, 1e-9))
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=30.0,
                    help="seconds of EEG per pipeline run (default 30)")
    ap.add_argument("--baseline-duration", type=float, default=5.0,
                    help="seconds of EEG for the MNE baseline (it falls behind; default 5)")
    ap.add_argument("--json", default="pipeline_latency_cpu.json",
                    help="file name under bench/results/")
    ap.add_argument("--baseline-worker", nargs=3, metavar=("INPUT", "OUTPUT", "STATS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.baseline_worker:
        baseline_worker(*args.baseline_worker)
        return
    import mne

    mne.set_log_level("error")
    results: dict = {"load_average_at_start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory() as tmp:
        for key, montage, n_ch, chunk in (
            ("pipeline_128ch_1khz", "biosemi128", 128, 10),
            ("pipeline_128ch_1khz_push_every_sample", "biosemi128", 128, 1),
            ("pipeline_256ch_1khz_sustained", "biosemi256", 256, 10),
        ):
            print(f"{key}: {args.duration:g} s ...", flush=True)
            results[key] = run_pipeline(montage, n_ch, args.duration, chunk, Path(tmp))
            lat = results[key]["latency_ms"]
            print(f"  latency median {lat['median']:.2f} ms, p95 {lat['p95']:.2f}, p99 "
                  f"{lat['p99']:.2f}, max {lat['max']:.2f}; missing {results[key]['missing']}, "
                  f"duplicated {results[key]['duplicated']}", flush=True)
    print(f"baseline_mne_128ch_1khz: {args.baseline_duration:g} s ...", flush=True)
    base = results["baseline_mne_128ch_1khz"] = run_baseline(args.baseline_duration, 10)
    print(f"  compute per hop median {base['compute_per_hop_ms']['median']:.1f} ms; latency "
          f"median {base['latency_ms'].get('median', float('nan')):.1f} ms, max "
          f"{base['latency_ms'].get('max', float('nan')):.1f} ms", flush=True)
    hop = {"rtsource_128ch": compute_per_hop("biosemi128"),
           "rtsource_256ch": compute_per_hop("biosemi256"),
           "mne_apply_inverse_raw_128ch": base["compute_per_hop_ms"]}
    ours = results["pipeline_128ch_1khz"]
    results["compute_per_hop_ms"] = hop
    results["ratio_baseline_over_rtsource"] = {
        "latency_median": base["latency_ms"]["median"] / ours["latency_ms"]["median"],
        "latency_p99": base["latency_ms"]["p99"] / ours["latency_ms"]["p99"],
        "compute_per_hop_median": hop["mne_apply_inverse_raw_128ch"]["median"]
        / hop["rtsource_128ch"]["median"],
    }
    results["load_average_at_end"] = list(os.getloadavg())
    results["notes"] = (
        "Latency = arrival of the region sample at a subscriber (pylsl, same host) minus the "
        "local_clock() right after its EEG sample's push_chunk; the first second (first "
        "window) is left out. Each pipeline ran as `rtsource run` in its own process; pusher "
        "and subscriber shared this process. The baseline cannot keep up with a 10 ms hop: "
        "its latency grows for as long as it runs, so its figures depend on the input length "
        "(see duration_s and latency_growth_s_per_s). 2 CPU cores shared with other jobs "
        "(see load_average_*): tails (p95 and above) reflect that contention."
    )
    (Path(__file__).resolve().parent / "results" / args.json).parent.mkdir(parents=True,
                                                                          exist_ok=True)
    path = write(args.json, results)
    r = results["ratio_baseline_over_rtsource"]
    print(f"Wrote {path}. Baseline/rtsource: latency median x{r['latency_median']:.0f}, p99 "
          f"x{r['latency_p99']:.0f}, compute per hop x{r['compute_per_hop_median']:.1f}.")


if __name__ == "__main__":
    main()
