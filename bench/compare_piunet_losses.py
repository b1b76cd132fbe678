"""Which training loss places 3D-PIUNet's peaks best on a head model it never saw?

Fine-tunes the shipped width-8 network for the same training time under each loss (arms
below; everything else from ``--config``, the same data stream and schedule), then scores
every arm and eLORETA with the evaluation's metrics (NEMD, MLE, AUC, ...) on the held-out
head model of ``rtsource evaluate`` (three-shell sphere 0.332/0.0113/0.332 S/m,
GSN-HydroCel-129, seed 1234) at one source 10 and 20 dB and three sources 10 dB.

    python bench/compare_piunet_losses.py --minutes 8 [--arms l1,weighted_l1,weighted_l1+sw]
    python bench/compare_piunet_losses.py --config configs/train-w8-stage3.toml --minutes 7 \
        --arms weighted_l1,weighted_l1+peak20,weighted_l1+peak10 --low-snr \
        --runs runs/peak-ablation --out piunet-peak-ablation.json   # stage 3's peak term
    python bench/compare_piunet_losses.py --steps 200 --arms w8-scratch,w16-scratch \
        --out piunet-width-comparison.json     # widths 8 and 16 from scratch, equal steps

Each arm trains in ``<--runs>/<arm>`` and resumes there if interrupted (re-run the same
command); the winner can continue with ``rtsource train CONFIG --out-dir <--runs>/<arm>
--resume``. Writes ``bench/results/piunet-loss-ablation.json``.
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import write  # noqa: E402

from rtsource.evaluate import Condition, EvalConfig, evaluate  # noqa: E402
from rtsource.models.checkpoint import load_checkpoint  # noqa: E402
from rtsource.train import load_train_config, train  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

#: arm name → [train] overrides
ARMS = {
    "l1": {"loss": "l1", "distribution_loss": "none", "peak_loss": "none"},
    "weighted_l1": {"loss": "weighted_l1", "distribution_loss": "none", "peak_loss": "none"},
    "weighted_l1+sw": {"loss": "weighted_l1", "distribution_loss": "sliced_wasserstein",
                       "peak_loss": "none"},
    "l1+sw": {"loss": "l1", "distribution_loss": "sliced_wasserstein", "peak_loss": "none"},
    # the peak heat-map term (rtsource.train.peak_kl) at two sharpnesses, each weighted to
    # about half the weighted L1 on stage 2's maps
    "weighted_l1+peak20": {"loss": "weighted_l1", "distribution_loss": "none",
                           "peak_loss": "peak_kl", "peak_weight": 0.05, "peak_sharpness": 20.0},
    "weighted_l1+peak10": {"loss": "weighted_l1", "distribution_loss": "none",
                           "peak_loss": "peak_kl", "peak_weight": 0.1, "peak_sharpness": 10.0},
    # the soft arg-max deficit (rtsource.train.peak_deficit), which does not reward hedging
    "weighted_l1+deficit20": {"loss": "weighted_l1", "distribution_loss": "none",
                              "peak_loss": "peak_deficit", "peak_weight": 0.5,
                              "peak_sharpness": 20.0},
    # widths at an equal number of steps from a random start, with the config's loss
    "w8-scratch": {"width": 8, "init_from": "", "lr": 1e-3, "warmup_steps": 50},
    "w16-scratch": {"width": 16, "init_from": "", "lr": 1e-3, "warmup_steps": 50},
}

CONDITIONS = {"ablation": [Condition(n_sources=1, snr_db=10.0), Condition(n_sources=1, snr_db=20.0),
                           Condition(n_sources=3, snr_db=10.0)]}
#: with --low-snr also one source at 5 dB (does a gain at high SNR cost the low SNRs?)
LOW_SNR = Condition(n_sources=1, snr_db=5.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "train-w8-peaks.toml"))
    ap.add_argument("--arms", default="l1,weighted_l1,weighted_l1+sw")
    ap.add_argument("--minutes", type=float, default=8.0, help="training time per arm")
    ap.add_argument("--steps", type=int, default=0,
                    help="train each arm this many steps instead (a schedule of that length)")
    ap.add_argument("--runs", default=str(REPO / "runs" / "loss-ablation"))
    ap.add_argument("--n-samples", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2, help="metric processes")
    ap.add_argument("--out", default="piunet-loss-ablation.json")
    ap.add_argument("--low-snr", action="store_true", help="also score one source at 5 dB")
    args = ap.parse_args()
    arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in arms if a not in ARMS]
    if unknown:
        raise SystemExit(f"--arms {unknown} not valid; choose from {list(ARMS)}")
    trained = {}
    for arm in arms:
        out = Path(args.runs) / arm
        budget = ({"max_steps": args.steps, "max_minutes": 0} if args.steps
                  else {"max_minutes": args.minutes})
        cfg = load_train_config(args.config, out_dir=str(out), **{**budget, **ARMS[arm]})
        last = out / "last.safetensors"
        done = 0.0
        if last.exists():
            m = load_checkpoint(last).metrics
            done = float(m.get("step", 0) if args.steps else m.get("elapsed_s", 0.0))
        if done < (args.steps if args.steps else args.minutes * 60 - 5):
            res = train(cfg, resume=last.exists(), progress=False)
            print(f"{arm}: step {res.step}, {res.elapsed_s / 60:.1f} min, {res.metrics}")
        trained[arm] = {"checkpoint": str(last),
                        "metrics": load_checkpoint(last).metrics}
    torch.set_num_threads(1)
    result = evaluate({arm: t["checkpoint"] for arm, t in trained.items()},
                      EvalConfig(n_samples=args.n_samples, workers=args.workers),
                      conditions=({"ablation": [LOW_SNR, *CONDITIONS["ablation"]]}
                                  if args.low_snr else CONDITIONS),
                      baselines=("eloreta",), progress=False)
    keep = ("condition", "method", "nemd", "mle_mm", "auc", "nmse", "wcos_err")
    summary = [{k: r[k] for k in keep if k in r} for r in result.summary]
    for row in summary:
        print(row)
    path = write(args.out, {"command": "python " + " ".join(sys.argv),
                            "config": str(Path(args.config).resolve().relative_to(REPO)),
                            "budget_per_arm": (f"{args.steps} steps" if args.steps
                                               else f"{args.minutes} min"), "arms": {a: ARMS[a] for a in arms},
                            "trained": trained, "n_samples": args.n_samples,
                            "eval": "sphere 0.332/0.0113/0.332 S/m, GSN-HydroCel-129, "
                                    "kernels from the evaluation head model, seed 1234",
                            "summary": summary})
    print(f"Wrote {path}")


if __name__ == "__main__":
    main()
