"""Latency of the 3D-PIUNet refinement step on the CPU, per volume at batch 1, one run.

Engines are named ``backend:precision`` and built with :func:`rtsource.engines.make_engine`
(what ``rtsource run`` uses): ``cpu:fp32`` (PyTorch compiled with Inductor + freezing, the
float32 baseline), ``cpu:bf16`` (the same with bf16 autocast and channels-last-3d),
``openvino:fp32`` / ``openvino:bf16`` (OpenVINO CPU plugin), ``onnx:fp32`` (ONNX Runtime),
``eager:fp32`` (reference only, slow). Each is timed through its public call (numpy in,
numpy out) after warm-up, and its output compared with eager float32 PyTorch (relative L2).

    python bench/bench_refine.py [--widths 8 16 32] [--engines cpu:fp32 openvino:bf16 ...]
                                 [--runs 30] [--threads 2] [--json FILE]

Writes JSON with per-engine median / p99 / min / max (ms), build time, relative error, and
the machine (CPU model, instruction sets, load average before and after, versions).
bf16 is fast only where the CPU has AMX or AVX-512-BF16 (``machine.cpu_flags``).
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, stats_ms, time_calls, write  # noqa: E402

from rtsource._util import loadavg  # noqa: E402
from rtsource.engines import make_engine  # noqa: E402
from rtsource.models import PIUNET_PRESETS, PIUNet, count_parameters  # noqa: E402

DEFAULT_ENGINES = ["cpu:fp32", "cpu:bf16", "openvino:fp32", "openvino:bf16", "onnx:fp32"]


def parity_shipped(engines: list[str], threads: int, n: int = 16) -> list[dict]:
    """Relative L2 of each engine against eager float32 with the *shipped* weights on
    realistic inputs: eLORETA estimates of single dipoles at 10 dB (sphere template,
    biosemi128), scaled and scattered as the refine stage does."""
    from rtsource.config import HeadModelConfig, InverseConfig
    from rtsource.headmodel import build_headmodel
    from rtsource.inverse import make_inverse
    from rtsource.models import VolumeMapper
    from rtsource.models.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint

    hm = build_headmodel(HeadModelConfig(conductor="sphere"), progress=False)
    inv = make_inverse(hm, InverseConfig())
    rng = np.random.default_rng(7)
    src = rng.choice(hm.n_sources, n, replace=False)
    ori = rng.normal(size=(n, 3))
    eeg = np.einsum("csk,sk->sc", hm.gain[:, src, :], ori / np.linalg.norm(ori, axis=1)[:, None])
    eeg += rng.normal(size=eeg.shape) * eeg.std(axis=1, keepdims=True) / np.sqrt(10.0)
    z = inv.apply_samples(eeg.astype(np.float32))
    vol, _ = VolumeMapper(hm.vox).to_volume(z)
    ck = load_checkpoint(SHIPPED_CHECKPOINT)
    with torch.no_grad():
        ref = ck.model.eval()(torch.from_numpy(vol)).numpy()
    rows = []
    for spec in engines:
        backend, _, precision = spec.partition(":")
        try:
            e = make_engine(ck.model, backend, precision=precision or "auto", threads=threads)
        except (ImportError, RuntimeError, ValueError) as err:
            rows.append({"engine": spec, "skipped": str(err)})
            continue
        y = np.concatenate([e(vol[i:i + 1]) for i in range(n)])
        per = [float(np.linalg.norm(y[i] - ref[i]) / np.linalg.norm(ref[i])) for i in range(n)]
        rows.append({"engine": spec, "dtype": e.dtype, "rel_l2_median": float(np.median(per)),
                     "rel_l2_max": float(np.max(per)), "n_inputs": n})
        print(f"shipped w8 {spec:14s}: rel L2 vs eager fp32 median {np.median(per):.1e}, max "
              f"{np.max(per):.1e}", flush=True)
        e.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[8, 16, 32])
    ap.add_argument("--engines", nargs="+", default=DEFAULT_ENGINES)
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="refine_cpu.json", help="file name in bench/results")
    ap.add_argument("--parity-only", action="store_true",
                    help="only the shipped-weights parity check (writes "
                         "refine_parity_cpu.json)")
    args = ap.parse_args(argv)
    if args.parity_only:
        rows = parity_shipped(args.engines, args.threads)
        write("refine_parity_cpu.json", {"benchmark": "bench/bench_refine.py --parity-only",
                                         "command": " ".join(sys.argv), "results": rows})
        return 0
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1, 3, 32, 32, 32)).astype(np.float32)
    x /= np.abs(x).max()  # the scaled domain the network sees
    rows = []
    load_before = loadavg()
    for width in args.widths:
        torch.manual_seed(0)
        model = PIUNet(width=width).eval()
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        for spec in args.engines:
            backend, _, precision = spec.partition(":")
            t0 = time.perf_counter()
            try:
                engine = make_engine(model, backend, precision=precision or "auto",
                                     threads=args.threads)
            except (ImportError, RuntimeError, ValueError) as err:
                print(f"width {width} {spec}: skipped ({err})", flush=True)
                rows.append({"width": width, "engine": spec, "skipped": str(err)})
                continue
            build_s = time.perf_counter() - t0
            runs = max(3, args.runs // 10) if backend == "eager" else args.runs
            ms = stats_ms(time_calls(lambda e=engine: e(x), runs, args.warmup))
            y = engine(x)
            rel = float(np.linalg.norm(y - ref) / np.linalg.norm(ref))
            row = {"width": width, "engine": spec, "backend": backend,
                   "dtype": engine.dtype, "batch": 1, "params": count_parameters(model),
                   "reference_gflop": getattr(PIUNET_PRESETS.get(width), "reference_gflop",
                                              None),
                   "build_s": round(build_s, 2), "ms": ms, "rel_l2_vs_eager_fp32": rel,
                   "load_after": loadavg()}
            rows.append(row)
            print(f"width {width:2d} {spec:14s}: median {ms['median']:7.2f} ms, p99 "
                  f"{ms['p99']:7.2f} ms, rel L2 {rel:.1e} (build {build_s:.1f} s, load "
                  f"{row['load_after'][0]:.2f})", flush=True)
            engine.close()
    base = {(r["width"]): r["ms"]["median"] for r in rows if r.get("engine") == "cpu:fp32"}
    for r in rows:
        if "ms" in r and r["width"] in base:
            r["speedup_over_cpu_fp32"] = base[r["width"]] / r["ms"]["median"]
    out = {"benchmark": "bench/bench_refine.py", "command": " ".join(sys.argv),
           "threads": args.threads, "load_before": load_before, "results": rows,
           "parity_shipped_weights": parity_shipped(args.engines, args.threads),
           "input": "(1, 3, 32, 32, 32) float32, standard normal scaled to max |x| = 1"}
    path = write(args.json, out)
    print(f"wrote {path} ({RESULTS})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
