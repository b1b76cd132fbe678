"""Peak error of the offline API on short single-dipole windows (issue 12, case 10)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["dipole_peak_errors"]


def dipole_peak_errors(loc: Any, sim: Any, n: int, *, snr_db: float = 10.0,
                       n_times: int = 20, seed: int = 0) -> np.ndarray:
    """Distance (mm, MNI) from a true dipole to the peak of ``loc``'s estimate.

    Each of ``n`` windows holds one dipole of ``sim`` (a :class:`~rtsource.headmodel.
    HeadModel` used as the simulation's forward model: random grid point and orientation,
    a 10 Hz burst of 50 nA·m) over ``n_times`` samples at ``loc.sfreq``, plus white sensor
    noise at ``snr_db``. The peak is the largest estimated current at the window's largest
    sample.

    Parameters
    ----------
    loc : rtsource.Localizer
        Prepared for ``sim.ch_names`` at the simulation's rate.
    sim : HeadModel
        The forward model of the simulation (another head model than ``loc``'s for an
        honest test).

    Returns
    -------
    (n,) float64 peak errors in millimetres.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(n_times) / loc.sfreq
    errs = np.empty(n)
    for i in range(n):
        src = rng.integers(sim.n_sources)
        q = rng.normal(size=3)
        q /= np.linalg.norm(q)
        clean = (sim.gain[:, src] @ q)[:, None] * (np.sin(2 * np.pi * 10 * t + 0.3) * 5e-8)
        noise = rng.normal(size=clean.shape)
        noise *= np.linalg.norm(clean) / np.linalg.norm(noise) / 10 ** (snr_db / 20)
        res = loc.apply(clean + noise)
        power = (res.sources ** 2).sum(-1)
        k = int(np.argmax(power.max(axis=1)))
        errs[i] = np.linalg.norm(res.positions_mni[int(np.argmax(power[k]))]
                                 - sim.src_pos_mni[src])
    return errs
