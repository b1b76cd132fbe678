"""Where does 3D-PIUNet put a lone source's peak, next to eLORETA's?

The evaluation's MLE says how far a peak lands from the truth; this says how: a systematic
offset (a misalignment of the volume, a depth bias) or scatter around the truth. On the
test sets of ``rtsource evaluate --n-samples 40`` (held-out sphere 0.332/0.0113/0.332 S/m,
GSN-HydroCel-129, seed 1234, one source, σ 5–40 mm; the draw depends on the sample count)
it reports per SNR and method: the median distance of the global maximum from the true one,
how many maxima are exact (0 mm), the mean offset in grid steps (7 mm) per axis, the mean
radial bias (mm from the centroid of the source grid, a proxy for depth; negative = nearer
the centre than the truth) and the median of the truth's magnitude at the estimated peak
over its maximum.

    python bench/piunet_peak_offsets.py [--checkpoint NAME=FILE ...] [--inverse-from template]
        [--seeds 1234,1235,1236,1237,1238]   # pool more draws than the evaluation's (1234)

Writes ``bench/results/piunet-peak-offsets[-template][-seeds].json``.
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

from rtsource.config import InverseConfig  # noqa: E402
from rtsource.evaluate.sweep import (  # noqa: E402
    Condition,
    EvalConfig,
    _predict,
    condition_test_set,
    inverse_kernels,
)
from rtsource.models.checkpoint import load_checkpoint  # noqa: E402
from rtsource.models.volume import VolumeMapper  # noqa: E402
from rtsource.simulate import load_entry  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def peak_stats(x: np.ndarray, est: np.ndarray, pos_mm: np.ndarray, vox: np.ndarray) -> dict:
    """Statistics of the global maxima of ``est`` (n, n_points, 3) against ``x``'s."""
    mx, me = np.linalg.norm(x, axis=-1), np.linalg.norm(est, axis=-1)
    t, e = mx.argmax(1), me.argmax(1)
    dist = np.linalg.norm(pos_mm[e] - pos_mm[t], axis=1)
    centre = pos_mm.mean(0)
    radial = np.linalg.norm(pos_mm[e] - centre, axis=1) - np.linalg.norm(pos_mm[t] - centre, axis=1)
    return {"median_peak_distance_mm": float(np.median(dist)),
            "exact_peaks": int((dist < 1e-6).sum()), "n": len(dist),
            "mean_offset_grid_steps": [round(float(v), 3) for v in (vox[e] - vox[t]).mean(0)],
            "mean_radial_bias_mm": float(radial.mean()),
            "median_truth_at_peak": float(np.median(mx[np.arange(len(t)), e] / mx.max(1)))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", action="append", metavar="NAME=FILE",
                    help="networks (default: piunet-w8=rtsource/data/piunet-w8.safetensors)")
    ap.add_argument("--snrs", default="10,20", help="SNRs in dB, comma-separated")
    ap.add_argument("--n-samples", type=int, default=40)
    ap.add_argument("--inverse-from", choices=("eval", "template"), default="eval")
    ap.add_argument("--seeds", default="1234",
                    help="test-set seeds, comma-separated (1234: the evaluation's); with "
                         "several, the samples of all are pooled (medians of 40 samples on a "
                         "7 mm lattice move by a grid step from one draw to the next)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [int(s) for s in args.seeds.split(",")]
    specs = args.checkpoint or [f"piunet-w8={REPO / 'rtsource/data/piunet-w8.safetensors'}"]
    nets = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        if not path:
            raise SystemExit(f"--checkpoint {spec!r}: write NAME=FILE")
        nets[name] = load_checkpoint(path).model.eval()
    cfg = EvalConfig(n_samples=args.n_samples, inverse_from=args.inverse_from)
    inv = InverseConfig(method="eloreta", lambda2=cfg.lambda2)
    fwd, hm = load_entry(cfg.headmodel, None, inv, noise_length_mm=cfg.noise_corr_length_mm)
    kernel = inverse_kernels(cfg, ["eloreta"], fwd)["eloreta"]
    mapper = VolumeMapper(hm.vox)
    pos_mm = hm.src_pos * 1000.0
    pos_t = torch.from_numpy(pos_mm.astype(np.float32))
    out = {}
    for snr in [float(s) for s in args.snrs.split(",")]:
        cond = Condition(n_sources=1, snr_db=snr)  # the evaluation's test set for this cell
        xs, ests = [], {"eloreta": [], **{name: [] for name in nets}}
        for seed in seeds:
            src, eeg = condition_test_set(dataclasses.replace(cfg, seed=seed), cond, pos_t, fwd)
            z = (eeg @ kernel.T).reshape(src.x.shape).numpy()
            xs.append(src.x.numpy())
            ests["eloreta"].append(z)
            for name, net in nets.items():
                ests[name].append(_predict(net, mapper, z, cfg.batch_size))
        x = np.concatenate(xs)
        cell = {m: peak_stats(x, np.concatenate(e), pos_mm, hm.vox) for m, e in ests.items()}
        if len(seeds) > 1:  # each draw's median too
            for m, e in ests.items():
                cell[m]["median_per_seed_mm"] = [
                    peak_stats(xs[i], e[i], pos_mm, hm.vox)["median_peak_distance_mm"]
                    for i in range(len(seeds))]
        out[cond.key] = cell
        for m, s in cell.items():
            print(f"{cond.key:28s} {m:12s} {s}")
    suffix = ("" if args.inverse_from == "eval" else "-template") + (
        "" if seeds == [1234] else "-seeds")
    path = write(f"piunet-peak-offsets{suffix}.json",
                 {"command": "python " + " ".join(sys.argv), "inverse_from": args.inverse_from,
                  "seeds": seeds, "n_samples_per_seed": cfg.n_samples,
                  "networks": {s.partition("=")[0]: s.partition("=")[2] for s in specs},
                  "eval": "sphere 0.332/0.0113/0.332 S/m, GSN-HydroCel-129, one source, "
                          "sigma 5-40 mm (seed 1234: the test sets of rtsource evaluate)",
                  "results": out})
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
