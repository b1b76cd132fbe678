"""Cost of the temporal network alone per 10 ms hop, and of the streaming stage around it.

Times two calls hop after hop on random input, state carried, for each checkpoint and runtime
given: ``network`` (the network alone on the 2-3 samples a 10 ms hop keeps at 1 kHz) and
``stage`` (``TemporalStage.__call__``: features, causal scale, network, output scale; on
128-channel conditioned EEG). Runtimes: ``onnx`` (ONNX Runtime, float32, one thread: the
default) and ``torch`` (the PyTorch module, bf16 where the CPU has it natively: the
baseline). Everything runs in the same invocation, so the ratios hold on a noisy machine; ``rtsource bench --method temporal``
measures the same stage inside the live pipeline (threads, LSL, other stages). With
``--gap-ms`` the stage is also timed with that much idle time before each hop, as a live
stream has (a 10 ms hop leaves the core idle most of the time): what waking up costs here.

    python bench/bench_temporal_network.py [--checkpoints default] [--runtimes onnx torch]
                                           [--hops 3000] [--gap-ms 10] [--json temporal-network-cost.json]

Writes JSON with median / p95 / p99 / max (ms) per checkpoint, runtime and call, the precision
and the machine (CPU model, instruction sets, load average before and after, versions).
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
from _common import stats_ms, write  # noqa: E402

from rtsource._util import loadavg  # noqa: E402
from rtsource.config import HeadModelConfig, InverseConfig  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoints", nargs="+",
                   default=["default"],
                   help="temporal checkpoints ('default': the shipped weights)")
    p.add_argument("--runtimes", nargs="+", default=["onnx", "torch"], choices=["onnx", "torch"],
                   help="runtimes of the stage (torch: the baseline)")
    p.add_argument("--hops", type=int, default=3000, help="timed hops per checkpoint")
    p.add_argument("--montage", default="biosemi128")
    p.add_argument("--gap-ms", type=float, default=10.0,
                   help="idle time before each hop of the idle-gap timing (0: skip it)")
    p.add_argument("--json", default="temporal-network-cost.json",
                   help="file name under bench/results/")
    args = p.parse_args(argv)

    from rtsource.headmodel import build_headmodel
    from rtsource.inverse import make_inverse
    from rtsource.online.temporal import TemporalStage

    load0 = loadavg()
    hm = build_headmodel(HeadModelConfig(montage=args.montage, conductor="bem"), progress=False)
    kernel = make_inverse(hm, InverseConfig()).kernel
    results = {}
    for spec in args.checkpoints:
        for runtime in args.runtimes:
            key = f"{spec} [{runtime}]"
            results[key] = _time_stage(TemporalStage(hm, kernel, 1000.0, spec, backend=runtime),
                                       hm.n_channels, args)
            r = results[key]
            print(f"{key} ({r['sha256'][:8]}, {r['precision']}): network median "
                  f"{r['network_ms']['median']:.3f} ms, p99 {r['network_ms']['p99']:.3f}; stage "
                  f"median {r['stage_ms']['median']:.3f} ms, p99 {r['stage_ms']['p99']:.3f}"
                  + (f"; after {args.gap_ms:g} ms idle median "
                     f"{r['stage_after_idle_ms']['median']:.3f} ms, p99 "
                     f"{r['stage_after_idle_ms']['p99']:.3f}" if args.gap_ms > 0 else ""),
                  flush=True)
    path = write(args.json, {"benchmark": "temporal network per 10 ms hop",
                             "config": vars(args), "load_average_start": load0,
                             "load_average_end": loadavg(), "results": results,
                             "torch_threads": torch.get_num_threads()})
    print(f"Wrote {path}")
    return 0


def _time_stage(stage, n_ch: int, args) -> dict:
    rng = np.random.default_rng(0)
    n_feat = 3 * len(stage.node_names)
    net_t, stage_t = [], []
    state = None
    with torch.no_grad():
        for hop in range(args.hops + 200):
            n = 3 if hop % 2 else 2  # 10 samples at 1 kHz keep 2 or 3 at 250 Hz
            x = rng.standard_normal((n, n_feat)).astype(np.float32)
            eeg = rng.standard_normal((n, n_ch)).astype(np.float32) * 1e-5
            if stage.runner is not None:
                t0 = time.perf_counter()
                _, state = stage.runner(x, state)
            else:
                xt = torch.from_numpy(x)[None].to(stage.dtype)
                t0 = time.perf_counter()
                _, state = stage.net(xt, state)
            t1 = time.perf_counter()
            stage(eeg)
            t2 = time.perf_counter()
            if hop >= 200:  # warm-up
                net_t.append(t1 - t0)
                stage_t.append(t2 - t1)
    out = {"sha256": stage.checkpoint.sha256, "runtime": stage.backend,
           "precision": "bf16" if stage.bf16 else "fp32",
           "network_ms": stats_ms(net_t), "stage_ms": stats_ms(stage_t)}
    if args.gap_ms > 0:
        gap_t = []
        for hop in range(min(args.hops, 1000) + 100):
            x = rng.standard_normal((3 if hop % 2 else 2, n_ch)).astype(np.float32) * 1e-5
            time.sleep(args.gap_ms / 1e3)
            t0 = time.perf_counter()
            stage(x)
            if hop >= 100:
                gap_t.append(time.perf_counter() - t0)
        out["stage_after_idle_ms"] = stats_ms(gap_t)
    return out


if __name__ == "__main__":
    sys.exit(main())
