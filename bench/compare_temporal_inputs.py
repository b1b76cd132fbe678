"""Which input for the temporal network: eLORETA node vectors or the sensors themselves?

Trains two networks of the same size for the same number of steps on the same data
(``configs/train-temporal.toml`` restricted to one montage, biosemi64, on the two training
BEMs), one fed the eLORETA node vectors (``inputs = "eloreta"``), one fed the
average-referenced channels (``inputs = "sensors"``), then scores both with DeepSIF's region
metrics on windows composed on a conductor never used in training (the evaluation's
three-shell sphere, 0.332/0.0113/0.332 S/m, library seed 2024) with the training montage;
the node-vector network is also scored on a montage it never saw (GSN-HydroCel-129), which
the sensor network cannot take at all.

    python bench/compare_temporal_inputs.py --steps 1500 [--windows 20]

Writes ``bench/results/temporal_inputs.json`` (CPU, load, training time, metrics).
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from rtsource._util import cpu_features, loadavg  # noqa: E402
from rtsource.config import HeadModelConfig, InverseConfig  # noqa: E402
from rtsource.evaluate.dynamic import region_metrics  # noqa: E402
from rtsource.models.checkpoint import load_checkpoint  # noqa: E402
from rtsource.models.temporal import FeatureScaler, node_feature_kernel  # noqa: E402
from rtsource.simulate import load_entry  # noqa: E402
from rtsource.simulate.dynamics import (  # noqa: E402
    DynamicComposer,
    LibraryConfig,
    RegionProjector,
    brain_nodes,
    build_library,
)
from rtsource.train_temporal import load_temporal_config, train_temporal  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
EVAL = dict(conductor="sphere", conductivity=(0.332, 0.0113, 0.332))


def _score(nets: dict, montage: str, n_windows: int, snr: float, seed: int) -> list[dict]:
    nodes = brain_nodes()
    entry, hm = load_entry(HeadModelConfig(montage=montage, **EVAL), montage,
                           InverseConfig(method="eloreta", lambda2=1 / 9))
    proj = RegionProjector(hm, nodes)
    F = node_feature_kernel(entry.kernel.numpy(), proj.weights).astype(np.float32)
    bg = build_library(LibraryConfig(regime="spontaneous", n_runs=6, duration_s=20.0,
                                     sfreq=250.0, seed=seed), progress=False)
    rows = []
    for regime in ("evoked", "interictal", "ictal"):
        lib = build_library(LibraryConfig(regime=regime, n_runs=6, duration_s=20.0, sfreq=250.0,
                                          seed=seed), progress=False)
        comp = DynamicComposer(lib, bg, proj, window_s=0.5)
        rng = np.random.default_rng(seed + ("evoked", "interictal", "ictal").index(regime))
        for w in range(n_windows):
            s = comp.sample(rng, snr)
            for name, (net, kind) in nets.items():
                if kind == "sensors" and net.spec.n_inputs != s.eeg.shape[0]:
                    continue
                x = s.eeg.T.astype(np.float32) if kind == "sensors" else (F @ s.eeg.astype(
                    np.float32)).T
                x = x / FeatureScaler(250.0)(x)[:, None]  # the causal scale a stream gets
                with torch.no_grad():
                    y = net(torch.from_numpy(x.astype(np.float32))[None])[0][0].numpy().T
                for cls, vals in region_metrics(y.astype(np.float64), s.target, s.truth,
                                                nodes.kinds, nodes.centroids_mni).items():
                    rows.append({"net": name, "montage": montage, "regime": regime,
                                 "regions": cls, "window": w, **vals})
    return rows


def _summary(rows: list[dict]) -> list[dict]:
    out = []
    keys = sorted({(r["net"], r["montage"], r["regions"]) for r in rows})
    for net, montage, cls in keys:
        sel = [r for r in rows if (r["net"], r["montage"], r["regions"]) == (net, montage, cls)]
        s = {"net": net, "montage": montage, "regions": cls, "n": len(sel)}
        for k in ("precision", "recall", "le_mm", "corr"):
            v = np.array([r[k] for r in sel], float)
            s[k] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        out.append(s)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--windows", type=int, default=20)
    ap.add_argument("--snr", type=float, default=10.0)
    ap.add_argument("--out-dir", default="/tmp/rtsource-temporal-inputs")
    ap.add_argument("--json", default=str(ROOT / "bench" / "results" / "temporal_inputs.json"))
    args = ap.parse_args()
    base = load_temporal_config(ROOT / "configs" / "train-temporal.toml")
    nets, train_info = {}, {}
    load0 = loadavg()
    for inputs in ("eloreta", "sensors"):
        cfg = dataclasses.replace(base, inputs=inputs, montages=("biosemi64",),
                                  max_steps=args.steps, max_minutes=None, warmup_steps=100,
                                  out_dir=f"{args.out_dir}/{inputs}", checkpoint_minutes=60.0)
        t0 = time.perf_counter()
        res = train_temporal(cfg, progress=False)
        train_info[inputs] = {"minutes": round((time.perf_counter() - t0) / 60, 2),
                              "val_loss": res["val_loss"], "val_zero_loss": res["val_zero_loss"],
                              "windows_per_s": res["windows_per_s"]}
        nets[inputs] = (load_checkpoint(res["checkpoint"], architecture="TemporalNet").model,
                        inputs)
        print(inputs, train_info[inputs], flush=True)
    rows = _score(nets, "biosemi64", args.windows, args.snr, 2024)
    rows += _score({"eloreta": nets["eloreta"]}, "GSN-HydroCel-129", args.windows, args.snr, 2024)
    summary = _summary(rows)
    for s in summary:
        print(s)
    out = {"cpu": cpu_features(), "machine": platform.machine(), "threads": base.threads,
           "load_before": load0, "load_after": loadavg(), "steps": args.steps,
           "snr_db": args.snr, "windows_per_regime": args.windows, "train": train_info,
           "summary": summary,
           "command": f"python bench/compare_temporal_inputs.py --steps {args.steps} "
                      f"--windows {args.windows}"}
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(out, indent=2))
    print("wrote", args.json)


if __name__ == "__main__":
    main()
