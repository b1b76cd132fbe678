"""Generation rate of the brain model (simulated seconds per wall-clock second), one thread.

Runs each regime of :mod:`rtsource.simulate.dynamics` (226 nodes; and 246 with the other
subcortical regions) for ``--seconds`` simulated seconds after a warm-up that compiles the
Numba kernel (cached on disk), at the library rate (500 Hz) and the stream rate (1000 Hz),
and writes ``bench/results/dynamics_cpu.json``. The rate does not depend on the output rate
(the integration step is 0.5 ms either way) but the output does cost a little.

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python bench/bench_dynamics.py
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))

from _common import write  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seconds", type=float, default=20.0, help="simulated seconds per case")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    from rtsource.simulate.dynamics import (
        REGIMES,
        DynamicsConfig,
        RegimeSimulation,
        brain_nodes,
        default_connectome,
    )

    results = []
    for sub in (False, True):
        nodes = brain_nodes(sub)
        conn = default_connectome(nodes)
        for sfreq in (500.0, 1000.0):
            for regime in REGIMES:
                sim = RegimeSimulation(regime, sfreq, seed=1, nodes=nodes, connectome=conn,
                                       config=DynamicsConfig(subcortical=sub))
                sim.run(int(sfreq))  # compile (or load the cached kernel) and settle
                rates = []
                for _ in range(args.repeats):
                    t0 = time.perf_counter()
                    sim.run(int(args.seconds * sfreq))
                    rates.append(args.seconds / (time.perf_counter() - t0))
                row = {"regime": regime, "n_nodes": nodes.n_nodes, "sfreq": sfreq,
                       "sim_s_per_wall_s_median": sorted(rates)[len(rates) // 2],
                       "sim_s_per_wall_s": rates,
                       "n_connections": int((conn.weights > 0).sum())}
                results.append(row)
                print(f"{regime:12s} {nodes.n_nodes} nodes {sfreq:6g} Hz: "
                      f"{row['sim_s_per_wall_s_median']:.1f} simulated s per wall s")
    path = write("dynamics_cpu.json", {"seconds": args.seconds, "repeats": args.repeats,
                                       "threads": os.environ.get("NUMBA_NUM_THREADS"),
                                       "results": results})
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
