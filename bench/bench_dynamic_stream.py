"""Live check: ``rtsource simulate-stream --dynamics interictal`` with ``rtsource run`` on it.

Starts both commands (real processes, loopback LSL), subscribes to the region stream and the
simulator's truth stream for ``--seconds``, and records where the announced focus ranks
among the 246 published regions (by mean activity and by temporal SD over the run), the
truth markers and the pipeline's status lines; writes
``bench/results/dynamic_stream_<regime>_<focus>.json``.

    python bench/bench_dynamic_stream.py [--focus PrG_6_3_L] [--seconds 25]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from _common import write  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--focus", default="PrG_6_3_L")
    p.add_argument("--regime", default="interictal")
    p.add_argument("--montage", default="biosemi64")
    p.add_argument("--rate", default="500")
    p.add_argument("--seconds", type=float, default=25.0)
    args = p.parse_args()
    import pylsl

    from rtsource.stream.lslio import resolve_stream

    tag = uuid.uuid4().hex[:8]
    sim_name, out_name = f"dynbench-sim-{tag}", f"dynbench-out-{tag}"
    cfg = os.path.join(tempfile.mkdtemp(), "bench.toml")
    with open(cfg, "w") as fid:
        fid.write(f'[headmodel]\nmontage = "{args.montage}"\nconductor = "sphere"\n')
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd_sim = ["rtsource", "simulate-stream", "--dynamics", args.regime, "--foci", args.focus,
               "--montage", args.montage, "--rate", args.rate, "--name", sim_name,
               "--duration", str(args.seconds + 90)]
    cmd_run = ["rtsource", "run", "--input", sim_name, "--config", cfg, "--output", out_name,
               "--wait-for-consumer", "60"]
    sim = subprocess.Popen(cmd_sim, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    run = subprocess.Popen(cmd_run, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    try:
        truth = pylsl.StreamInlet(resolve_stream(name=f"{sim_name}-truth", timeout=90))
        truth.open_stream(timeout=5)
        reg = pylsl.StreamInlet(resolve_stream(name=out_name, timeout=90))
        info = reg.info(timeout=5)
        labels = []
        ch = info.desc().child("channels").child("channel")
        while not ch.empty():
            labels.append(ch.child_value("label"))
            ch = ch.next_sibling()
        reg.open_stream(timeout=5)
        data, items = [], []
        t0 = time.monotonic()
        while time.monotonic() - t0 < args.seconds:
            d, ts = reg.pull_chunk(timeout=0.2)
            if ts:
                data.append(np.asarray(d))
            s, _ = truth.pull_sample(timeout=0.0)
            if s:
                items.append(json.loads(s[0]))
        reg.close_stream()
        truth.close_stream()
    finally:
        for proc in (run, sim):
            proc.send_signal(signal.SIGTERM)
        out_run = run.communicate(timeout=30)[0]
        out_sim = sim.communicate(timeout=30)[0]
    X = np.concatenate(data)
    i = labels.index(args.focus)
    rank_mean = int(np.flatnonzero(np.argsort(-X.mean(0)) == i)[0]) + 1
    rank_sd = int(np.flatnonzero(np.argsort(-X.std(0)) == i)[0]) + 1
    top = [labels[k] for k in np.argsort(-X.mean(0))[:5]]
    result = {"command_sim": " ".join(cmd_sim), "command_run": " ".join(cmd_run),
              "region_samples": int(len(X)), "n_regions": len(labels), "focus": args.focus,
              "focus_rank_mean_activity": rank_mean, "focus_rank_temporal_sd": rank_sd,
              "top5_mean_activity": top, "truth_markers": items[:3],
              "run_status": [ln for ln in out_run.splitlines() if ln.startswith("[")][-3:],
              "sim_output": out_sim.splitlines()[:3]}
    print(json.dumps({k: result[k] for k in ("region_samples", "focus",
                      "focus_rank_mean_activity", "focus_rank_temporal_sd",
                      "top5_mean_activity")}, indent=1))
    print(f"Wrote {write(f'dynamic_stream_{args.regime}_{args.focus}.json', result)}")


if __name__ == "__main__":
    main()
