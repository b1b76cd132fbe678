"""How visible a focus is on the scalp when its SNR is set in region activity.

Composes windows as the dynamic evaluation does (held-out sphere, GSN-HydroCel-129, library
seed 2024, focus 10-20 dB over the background in region activity, 1 s windows) and prints
the focus' average-referenced EEG power over the background's, per regime and focus kind:

    python bench/scalp_visibility.py
"""

import numpy as np


def main() -> None:
    from rtsource._threads import limit_threads

    limit_threads()
    from rtsource.config import InverseConfig
    from rtsource.evaluate.dynamic import DynamicEvalConfig
    from rtsource.simulate import load_entry
    from rtsource.simulate.dynamics import (
        DynamicComposer,
        LibraryConfig,
        RegionProjector,
        brain_nodes,
        build_library,
        eeg_power,
    )

    cfg = DynamicEvalConfig()
    _, hm = load_entry(cfg.headmodel, None, InverseConfig(method="eloreta", lambda2=cfg.lambda2),
                       progress=False)
    nodes = brain_nodes()
    proj = RegionProjector(hm, nodes)

    def lib(regime: str):
        return build_library(LibraryConfig(regime=regime, n_runs=6, duration_s=20.0,
                                           sfreq=250.0, seed=2024), progress=False)

    bg = lib("spontaneous")
    for regime in ("interictal", "ictal"):
        comp = DynamicComposer(lib(regime), bg, proj, window_s=1.0, event_frac=0.7)
        rng = np.random.default_rng(0)
        res: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(60):
            s = comp.sample(rng, 10.0)
            L = proj.leadfield(s.orientations)
            ratio = (eeg_power(L, np.where(s.truth[:, None], s.activity, 0.0))
                     / eeg_power(L, np.where(s.truth[:, None], 0.0, s.activity)))
            res[bool(nodes.cortical[s.focus])].append(10 * np.log10(ratio))
        for cortical, v in res.items():
            q = np.percentile(v, [50, 10, 90])
            print(f"{regime} {'cortical' if cortical else 'thalamic'} (n={len(v)}): median "
                  f"{q[0]:.1f} dB, 10-90 %: {q[1]:.1f} to {q[2]:.1f} dB")


if __name__ == "__main__":
    main()
