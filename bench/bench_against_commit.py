"""Live-pipeline latency of this checkout against an earlier commit, in one invocation.

Checks the earlier commit out into a temporary git worktree and runs the same
``rtsource bench`` command with each tree first on ``PYTHONPATH`` (same virtual
environment, same machine, same minute), alternating A/B for ``--rounds`` rounds so that
load drifts hit both. Writes the per-round results and the pooled medians to
``bench/results/pipeline_vs_<commit>.json``.

    python bench/bench_against_commit.py dd7b485 [--rounds 2] [--duration 30] \
        [-- extra rtsource bench arguments]

Default bench arguments: eLORETA, 128 channels at 1 kHz, 10-sample pushes, no MNE baseline
(``rtsource bench --channels 128 --rate 1000 --duration 30 --no-baseline``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from rtsource._threads import limit_threads  # noqa: E402
from rtsource.bench.stats import machine_info  # noqa: E402


def _run(tree: Path, args: list[str], out: Path) -> dict:
    env = limit_threads(dict(os.environ))
    env["PYTHONPATH"] = str(tree) + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [sys.executable, "-m", "rtsource.cli", "bench", *args, "--json", str(out)]
    proc = subprocess.run(cmd, cwd=tree, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {tree}:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def _summary(res: dict) -> dict:
    stages = res.get("stages_ms") or {}
    return {"latency_ms": res["latency_ms"], "dropped": res["dropped"],
            "samples_in": res.get("samples_in"), "samples_out": res.get("samples_out"),
            "stages_median_ms": {k: (v.get("median") if isinstance(v, dict) else v)
                                 for k, v in stages.items()},
            "load_average": (res.get("pipeline") or {}).get("load_average")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("commit", help="the earlier commit (any git revision)")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("extra", nargs="*", help="more rtsource bench arguments (after --)")
    args = ap.parse_args()
    sha = subprocess.check_output(["git", "rev-parse", "--short", args.commit], cwd=ROOT,
                                  text=True).strip()
    head = subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                                   text=True).strip()
    dirty = bool(subprocess.check_output(["git", "status", "--porcelain", "--", "rtsource"],
                                         cwd=ROOT, text=True).strip())
    bench_args = ["--channels", "128", "--rate", "1000", "--duration", str(args.duration),
                  "--no-baseline", *args.extra]
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", str(old), sha], cwd=ROOT,
                       check=True, capture_output=True)
        try:
            for k in range(args.rounds):
                row = {}
                order = (("old", old), ("new", ROOT)) if k % 2 == 0 else (("new", ROOT),
                                                                          ("old", old))
                for label, tree in order:
                    t0 = time.time()
                    res = _run(tree, bench_args, Path(tmp) / f"{label}{k}.json")
                    row[label] = {**_summary(res), "wall_s": time.time() - t0}
                    print(f"round {k + 1} {label}: {row[label]['latency_ms']}", flush=True)
                rounds.append(row)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT,
                           capture_output=True)
    pooled = {}
    for label in ("old", "new"):
        lats = [r[label]["latency_ms"] for r in rounds]
        pooled[label] = {q: float(np.median([lat[q] for lat in lats]))
                         for q in ("p50", "p95", "p99", "max") if q in lats[0]}
    out = {
        "benchmark": "bench/bench_against_commit.py",
        "command": "rtsource bench " + " ".join(bench_args),
        "old_commit": sha, "new_commit": head + ("+uncommitted" if dirty else ""),
        "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine_info(),
        "rounds": rounds, "median_over_rounds_ms": pooled,
        "note": "Same venv, same machine, alternating A/B order each round; latency = "
                "subscriber arrival minus the LSL clock before the EEG sample's push.",
    }
    out["machine"]["load_average_end"] = machine_info()["load_average"]
    path = RESULTS / f"pipeline_vs_{sha}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(pooled, indent=2))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
