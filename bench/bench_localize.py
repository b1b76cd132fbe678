"""The offline API prepared once: repeated ``rtsource.localize`` calls vs MNE.

Runs, in one invocation, on one 25-sample window of 129 channels (GSN-HydroCel-129, the
7 mm template grid, three-shell sphere, eLORETA, BN246):

* MNE's prepared ``apply_inverse_raw`` on a RawArray of the window (the baseline a user
  would otherwise write: ``prepare_inverse_operator`` once, then apply per window);
* ``rtsource.localize`` on the same window: the first call (prepares every stage, from
  the disk cache of head model and kernel) and the second and later calls (reuse the
  prepared stages from the in-process cache); goal: later calls >= 5x faster than MNE;
* ``rtsource.Localizer.apply`` (prepared explicitly);
* ten ``localize(method="piunet")`` calls on one layout with the compiled CPU backend,
  counting torch.compile's compilations (torch._dynamo counters): goal, one.

Both sides include their own pre/post-processing as a user would call them (rtsource:
channel mapping, causal filters, kernel, regions; MNE: average-reference projector,
kernel). Writes ``bench/results/localize_cpu.json``.

    python bench/bench_localize.py [--repeats 200] [--no-piunet]
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import mne  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(__file__))
from _common import stats_ms, time_calls, write  # noqa: E402

import rtsource  # noqa: E402
from rtsource.config import load_config  # noqa: E402
from rtsource.headmodel import build_headmodel  # noqa: E402
from rtsource.headmodel.build import make_forward  # noqa: E402
from rtsource.headmodel.montage import get_montage, montage_info  # noqa: E402
from rtsource.online.localize import clear_cache  # noqa: E402

MONTAGE = "GSN-HydroCel-129"
SFREQ = 500.0
N_T = 25


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=200)
    ap.add_argument("--no-piunet", action="store_true", help="skip the piunet compile count")
    args = ap.parse_args()
    mne.set_log_level("error")
    cfg = load_config(headmodel={"montage": MONTAGE, "conductor": "sphere"})
    hm = build_headmodel(cfg.headmodel, progress=True)
    names = list(hm.ch_names)
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(len(names), N_T)) * 1e-5).astype(np.float64)

    # MNE baseline: the same forward model and settings, operator prepared once
    info = montage_info(get_montage(MONTAGE), SFREQ)
    fwd, _ = make_forward(cfg.headmodel, info)
    raw0 = mne.io.RawArray(np.zeros((len(info.ch_names), 2)), info)
    raw0.set_eeg_reference("average", projection=True)
    inv = mne.minimum_norm.make_inverse_operator(raw0.info, fwd, mne.make_ad_hoc_cov(raw0.info),
                                                 loose=1.0, depth=None)
    inv = mne.minimum_norm.prepare_inverse_operator(inv, 1, 1 / 9, "eLORETA")
    x_mne = x[[names.index(c) for c in info.ch_names]] if list(info.ch_names) != names else x

    def mne_apply():
        raw = mne.io.RawArray(x_mne, raw0.info, verbose="error")
        mne.minimum_norm.apply_inverse_raw(raw, inv, 1 / 9, "eLORETA", pick_ori="vector",
                                           prepared=True, verbose="error")

    mne_s = time_calls(mne_apply, args.repeats, warmup=3)

    clear_cache()
    t0 = time.perf_counter()
    first = rtsource.localize(x, ch_names=names, sfreq=SFREQ, montage=MONTAGE, config=cfg)
    first_s = time.perf_counter() - t0
    later_s = time_calls(lambda: rtsource.localize(x, ch_names=names, sfreq=SFREQ,
                                                   montage=MONTAGE, config=cfg),
                         args.repeats, warmup=3)
    loc = rtsource.Localizer(names, SFREQ, MONTAGE, config=cfg)
    apply_s = time_calls(lambda: loc.apply(x), args.repeats, warmup=3)
    assert np.allclose(loc.apply(x).regions, first.regions)

    out = {
        "benchmark": "bench/bench_localize.py",
        "setup": {"montage": MONTAGE, "n_channels": len(names), "n_times": N_T,
                  "sfreq": SFREQ, "n_sources": hm.n_sources, "conductor": "sphere",
                  "method": "eloreta", "atlas": "bn246", "repeats": args.repeats},
        "mne_apply_inverse_raw_prepared_ms": stats_ms(mne_s),
        "localize_first_call_ms": first_s * 1e3,
        "localize_later_calls_ms": stats_ms(later_s),
        "localizer_apply_ms": stats_ms(apply_s),
    }
    out["speedup_later_calls_vs_mne_median"] = (out["mne_apply_inverse_raw_prepared_ms"]["median"]
                                                / out["localize_later_calls_ms"]["median"])
    out["goal_5x_met"] = out["speedup_later_calls_vs_mne_median"] >= 5.0

    if not args.no_piunet:
        import torch
        from torch._dynamo.utils import counters

        pcfg = load_config(headmodel={"conductor": "sphere"},
                           refine={"backend": "cpu"})
        hm128 = build_headmodel(pcfg.headmodel, progress=False)
        xp = (rng.normal(size=(hm128.n_channels, 4)) * 1e-5)
        calls = []
        graphs_before = counters["stats"]["unique_graphs"]
        aot_before = counters["aot_autograd"]["total"]
        for _ in range(10):
            t0 = time.perf_counter()
            rtsource.localize(xp, ch_names=hm128.ch_names, sfreq=SFREQ, montage="biosemi128",
                              method="piunet", config=pcfg)
            calls.append(time.perf_counter() - t0)
        graphs = counters["stats"]["unique_graphs"] - graphs_before
        out["piunet_10_calls"] = {
            "torch": torch.__version__, "backend": "cpu (torch.compile, Inductor, freezing)",
            "call_s": calls, "first_call_s": calls[0],
            "later_calls_median_ms": float(np.median(calls[1:]) * 1e3),
            "compilations": int(graphs),
            "aot_autograd_compiles": int(counters["aot_autograd"]["total"] - aot_before),
            "how_counted": "torch._dynamo.utils.counters: stats.unique_graphs and "
                           "aot_autograd.total, before vs after the ten calls",
        }
    path = write("localize_cpu.json", out)
    print(f"MNE prepared apply_inverse_raw: median {out['mne_apply_inverse_raw_prepared_ms']['median']:.2f} ms; "
          f"localize first call {first_s * 1e3:.0f} ms, later calls median "
          f"{out['localize_later_calls_ms']['median']:.2f} ms (p99 "
          f"{out['localize_later_calls_ms']['p99']:.2f}) = "
          f"{out['speedup_later_calls_vs_mne_median']:.1f}x faster; Localizer.apply "
          f"{out['localizer_apply_ms']['median']:.2f} ms.")
    if "piunet_10_calls" in out:
        p = out["piunet_10_calls"]
        print(f"piunet: 10 localize calls, {p['compilations']} compiled graph(s) "
              f"({p['aot_autograd_compiles']} AOT compile(s)); first {p['first_call_s']:.1f} s, "
              "later median "
              f"{p['later_calls_median_ms']:.1f} ms.")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
