"""The GPU benchmarks of issue #5, in one call (see README.md beside this file).

1. Refinement alone on the ``cuda`` backend (CUDA graphs, fp16 autocast): per-volume
   latency at batch 1 (median, p99) and batched throughput (volumes/s) for widths 8, 16
   and 32. Goals: width 32 batch-1 p99 <= 1.0 ms; >= 10,000 volumes/s batched.
2. The same on ``tensorrt`` where ``import tensorrt`` works (else the reason is recorded).
3. End to end over real loopback LSL (``rtsource bench``): 3D-PIUNet width 32 refining
   **every** sample (``decimate = 1``) of a 128-channel 1 kHz stream, pushed in 10-sample
   blocks and sample by sample, with the MNE baseline in the same run. Goal: p99 <= 3 ms.
   Plus eLORETA alone on the same machine for reference.

Everything goes to ``--out`` (default ``$OUT`` or ``bench/results/gpu``): one JSON per
step, plots, and ``gpu_bench.json`` with the goals checked. A step that fails is recorded
with its error and the others still run.

``--dry-run`` runs the same steps on the CPU at toy sizes (onnx backend, 32 channels,
seconds): it checks the plumbing on a machine without a GPU, not the figures.
"""

from __future__ import annotations

import os

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
from pathlib import Path  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import torch  # noqa: E402  (imported before rtsource.bench: machine_info sees the GPU)

from rtsource.bench import (  # noqa: E402
    BenchSpec,
    machine_info,
    plot_results,
    refine_benchmark,
    run_benchmark,
    summary_lines,
    to_json,
)


def _write(out: Path, name: str, res: dict) -> None:
    (out / name).write_text(to_json(res) + "\n")
    print(f"  wrote {out / name}", flush=True)


def _step(summary: dict, key: str, fn) -> dict | None:
    print(f"== {key} ==", flush=True)
    t0 = time.perf_counter()
    try:
        res = fn()
    except Exception as err:  # recorded; the other steps still run
        traceback.print_exc()
        summary["steps"][key] = {"ok": False, "error": f"{type(err).__name__}: {err}",
                                 "seconds": time.perf_counter() - t0}
        return None
    summary["steps"][key] = {"ok": True, "seconds": time.perf_counter() - t0}
    return res


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "bench/results/gpu"))
    ap.add_argument("--duration", type=float, default=20.0,
                    help="seconds of EEG per end-to-end run (default 20)")
    ap.add_argument("--runs", type=int, default=300, help="timed calls per batch size")
    ap.add_argument("--dry-run", action="store_true",
                    help="CPU, toy sizes: check the plumbing without a GPU")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    dry = args.dry_run
    if not dry and not torch.cuda.is_available():
        print("No CUDA GPU visible to torch: nothing to measure (use --dry-run to check the "
              "plumbing on a CPU).", file=sys.stderr)
        return 2
    backend = "onnx" if dry else "cuda"
    widths = (8,) if dry else (8, 16, 32)
    big = 32 if not dry else 8
    runs = 3 if dry else args.runs
    duration = 3.0 if dry else args.duration
    montage, rate = ("biosemi32", 250.0) if dry else ("biosemi128", 1000.0)
    summary: dict = {"date": time.strftime("%Y-%m-%d %H:%M:%S"), "dry_run": dry,
                     "machine": machine_info(), "steps": {}, "goals": {}}
    try:
        smi = subprocess.run(["nvidia-smi"], capture_output=True, text=True, timeout=30)
        (out / "nvidia-smi.txt").write_text(smi.stdout + smi.stderr)
    except (OSError, subprocess.SubprocessError) as err:
        summary["nvidia_smi"] = f"not available: {err}"
    from rtsource.commands.sys_info import collect

    (out / "sys-info.json").write_text(json.dumps(collect(), indent=2, default=str) + "\n")

    # 1-2. refinement alone
    refine = {}
    for width in widths:
        batches = (1, 2) if dry else (1, 16, 64, 256)

        def one(width=width, batches=batches, be=backend):
            spec = BenchSpec(width=width, backend=be, refine_runs=runs)
            return refine_benchmark(spec, batches=batches, report=print)

        res = _step(summary, f"refine_w{width}_{backend}", one)
        if res is not None:
            refine[width] = res
            _write(out, f"refine_w{width}_{backend}.json", {"machine": summary["machine"],
                                                            "refine": res})
            print(f"  width {width}: batch 1 median {res['batch1_ms']['median']:.3f} ms, p99 "
                  f"{res['batch1_ms']['p99']:.3f} ms; {res['throughput']['volumes_per_s']:.0f} "
                  f"volumes/s at batch {res['throughput']['batch']}", flush=True)
    try:
        import tensorrt  # noqa: F401

        trt_ok, trt_why = True, "imported"
    except Exception as err:  # ImportError, or a broken install
        trt_ok, trt_why = False, f"{type(err).__name__}: {err}"
    summary["tensorrt"] = {"importable": trt_ok, "detail": trt_why}
    if trt_ok and not dry:
        res = _step(summary, "refine_w32_tensorrt", lambda: refine_benchmark(
            BenchSpec(width=32, backend="tensorrt", refine_runs=runs), batches=(1, 16, 64),
            report=print))
        if res is not None:
            refine["tensorrt_32"] = res
            _write(out, "refine_w32_tensorrt.json", {"machine": summary["machine"],
                                                     "refine": res})

    # 3. end to end
    e2e = {}
    runs_e2e = {
        "pipeline_piunet_w{w}_{be}_every_sample_push10": dict(chunk=max(1, round(rate / 100))),
        "pipeline_piunet_w{w}_{be}_every_sample_push1": dict(chunk=1, baseline=False),
    }
    for tmpl, kw in runs_e2e.items():
        key = tmpl.format(w=big, be=backend)
        kw = {"baseline": True, **kw}

        def e2e_run(kw=kw):
            spec = BenchSpec(method="piunet", width=big, backend=backend, decimate=1,
                             montage=montage, conductor="sphere", rate=rate,
                             duration_s=duration, baseline_duration_s=min(duration, 5.0),
                             refine_runs=min(runs, 50), **kw)
            return run_benchmark(spec, report=print)

        res = _step(summary, key, e2e_run)
        if res is not None:
            e2e[key] = res
            _write(out, f"{key}.json", res)
            try:
                plot_results(res, out / f"{key}.png")
            except Exception as err:  # matplotlib missing: the JSON is what counts
                print(f"  no plot: {err}")
            for line in summary_lines(res):
                print("  " + line, flush=True)
    res = _step(summary, "pipeline_eloreta_reference", lambda: run_benchmark(BenchSpec(
        method="eloreta", montage=montage, conductor="sphere", rate=rate,
        duration_s=duration, baseline=False), report=print))
    if res is not None:
        e2e["pipeline_eloreta_reference"] = res
        _write(out, "pipeline_eloreta_reference.json", res)

    # goals
    g = summary["goals"]
    if big in refine:
        b1 = refine[big]["batch1_ms"]
        g[f"w{big}_batch1_p99_ms"] = {"value": b1["p99"], "goal": 1.0, "met": b1["p99"] <= 1.0,
                                      "median": b1["median"]}
    for width, res in refine.items():
        g[f"throughput_volumes_per_s_{width}"] = {
            "value": res["throughput"]["volumes_per_s"], "batch": res["throughput"]["batch"],
            "goal": 10000, "met": res["throughput"]["volumes_per_s"] >= 10000}
    for key, res in e2e.items():
        if key.startswith("pipeline_piunet"):
            lat = res["latency_ms"]
            g[f"{key}_p99_ms"] = {"value": lat["p99"], "goal": 3.0, "met": lat["p99"] <= 3.0,
                                  "p50": lat["p50"], "dropped": res["dropped"],
                                  "decimate": res["pipeline"]["decimate"]}
    summary["machine"]["load_average_end"] = machine_info()["load_average"]
    (out / "gpu_bench.json").write_text(to_json(summary) + "\n")
    print(json.dumps(json.loads(to_json(summary["goals"])), indent=2))
    print(f"Wrote {out / 'gpu_bench.json'}")
    return 0 if all(s["ok"] for s in summary["steps"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
