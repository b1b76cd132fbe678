"""Per-hop cost of the live eLORETA path: fused vs plain (reference) vs MNE, one run.

For each case (128 channels × 10 new samples, the 10 ms hop at 1 kHz; 128 × 1, a sample
pushed alone; 256 × 10), on the 7 mm template grid with BN246 regions (magnitude mode):

* ``fused``: :class:`rtsource.online.fused.FusedRegions` (what the live path runs);
* ``plain``: ``InverseOperator.apply_samples`` + ``RegionReducer`` (the reference path,
  what the live path ran before);
* ``mne``: MNE's prepared ``apply_inverse_raw`` on a RawArray of the hop's samples
  (vector sources; the baseline a user would otherwise write) — source vectors only,
  no regions, so it is a lower bound of that baseline.

Also the largest relative difference of fused vs plain region values. Medians and p99 of
many calls in one process, alternating the paths call by call so that load drift hits
all of them. Writes ``bench/results/hop_cpu.json``.

    python bench/bench_hop.py [--repeats 2000]
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
from _common import stats_ms, write  # noqa: E402

from rtsource.config import HeadModelConfig, InverseConfig  # noqa: E402
from rtsource.headmodel import build_headmodel  # noqa: E402
from rtsource.headmodel.build import make_forward  # noqa: E402
from rtsource.headmodel.montage import get_montage, montage_info  # noqa: E402
from rtsource.inverse import make_inverse  # noqa: E402
from rtsource.online.fused import FusedRegions  # noqa: E402
from rtsource.regions import RegionReducer, region_map  # noqa: E402

CASES = {"128ch_10samples": ("biosemi128", 10), "128ch_1sample": ("biosemi128", 1),
         "256ch_10samples": ("biosemi256", 10)}


def _case(montage: str, n_t: int, repeats: int) -> dict:
    cfg = HeadModelConfig(montage=montage, conductor="sphere")
    hm = build_headmodel(cfg, progress=False)
    inv = make_inverse(hm, InverseConfig(method="eloreta"))
    rmap = region_map(hm, "bn246")
    reducer, fused = RegionReducer(rmap, "magnitude"), FusedRegions(inv, rmap)
    info = montage_info(get_montage(montage), 1000.0)
    fwd, _ = make_forward(cfg, info)
    raw0 = mne.io.RawArray(np.zeros((len(info.ch_names), 2)), info)
    raw0.set_eeg_reference("average", projection=True)
    op = mne.minimum_norm.make_inverse_operator(raw0.info, fwd, mne.make_ad_hoc_cov(raw0.info),
                                                loose=1.0, depth=None)
    op = mne.minimum_norm.prepare_inverse_operator(op, 1, 1 / 9, "eLORETA")
    rng = np.random.default_rng(0)
    xs = (rng.normal(size=(64, n_t, hm.n_channels)) * 1e-5).astype(np.float32)
    src = np.empty((n_t, hm.n_sources, 3), np.float32)
    out_p = np.empty((n_t, rmap.n_regions), np.float32)
    out_f = np.empty((n_t, rmap.n_regions), np.float32)

    def plain(x):
        return reducer(inv.apply_samples(x, out=src), out=out_p)

    def fast(x):
        return fused(x, out=out_f)

    def mne_apply(x):
        raw = mne.io.RawArray(x.T.astype(np.float64), raw0.info, verbose="error")
        mne.minimum_norm.apply_inverse_raw(raw, op, 1 / 9, "eLORETA", pick_ori="vector",
                                           prepared=True, verbose="error")

    err = 0.0
    for x in xs[:16]:
        ref = plain(x).copy()
        err = max(err, float(np.abs(fast(x) - ref).max() / np.abs(ref).max()))
    times: dict[str, list[float]] = {"fused": [], "plain": [], "mne": []}
    fns = {"fused": fast, "plain": plain, "mne": mne_apply}
    for i in range(repeats):
        x = xs[i % len(xs)]
        for name, fn in fns.items():
            if name == "mne" and i % 10:
                continue  # MNE is ~30x slower: a tenth of the calls is plenty
            t0 = time.perf_counter()
            fn(x)
            times[name].append(time.perf_counter() - t0)
    res = {k: stats_ms(v[len(v) // 20:]) for k, v in times.items()}  # drop warm-up
    return {"montage": montage, "n_channels": hm.n_channels, "n_times": n_t,
            "n_sources": hm.n_sources, "n_sources_in_regions": fused.n_used,
            "kernel_mb": {"fused": fused.kernel_bytes / 1e6,
                          "plain": inv.n_sources * 3 * inv.n_channels * 4 / 1e6},
            "ms": res, "fused_vs_plain_max_rel_error": err,
            "speedup_fused_over_plain_median": res["plain"]["median"] / res["fused"]["median"],
            "speedup_fused_over_mne_median": res["mne"]["median"] / res["fused"]["median"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2000,
                    help="calls per path (MNE: a tenth of them); default 2000")
    ap.add_argument("--json", default="hop_cpu.json", help="file name in bench/results")
    args = ap.parse_args()
    mne.set_log_level("error")
    out = {"benchmark": "bench/bench_hop.py", "command": " ".join(sys.argv),
           "cases": {}}
    for name, (montage, n_t) in CASES.items():
        out["cases"][name] = r = _case(montage, n_t, args.repeats)
        m = r["ms"]
        print(f"{name}: fused {m['fused']['median']:.3f} ms (p99 {m['fused']['p99']:.3f}), "
              f"plain {m['plain']['median']:.3f} ms (p99 {m['plain']['p99']:.3f}), "
              f"MNE {m['mne']['median']:.2f} ms; fused/plain max rel err "
              f"{r['fused_vs_plain_max_rel_error']:.1e}", flush=True)
    path = write(args.json, out)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
