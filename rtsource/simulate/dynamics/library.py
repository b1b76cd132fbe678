"""A library of region waveforms per regime, generated once and cached.

Simulating the network is slow next to composing EEG from its output (about 12 simulated
seconds per wall-clock second for 226 nodes at 500 Hz on one core), so, as DeepSIF's data
loader does, each regime is simulated once into a library of runs (different seeds and foci)
cached in the rtsource cache folder (``<cache>/dynamics/<key>.npz``, verified by checksum);
training and evaluation samples are then composed from it on the fly
(:mod:`rtsource.simulate.dynamics.compose`).

In the ``interictal`` and ``ictal`` libraries, odd-numbered runs have a thalamic focus and
even-numbered runs a cortical one, so both kinds are always represented.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import find_peaks
from tqdm.auto import tqdm

from ..._util import load_or_build, logger, stable_hash
from ...config import check_value
from .connectome import default_connectome
from .nodes import BrainNodes, brain_nodes
from .regimes import REGIMES, DynamicsConfig, RegimeSimulation

__all__ = ["LIBRARY_VERSION", "LibraryConfig", "WaveformLibrary", "build_library", "detect_spikes"]

LIBRARY_VERSION = 1
"""Bumped whenever the model's equations or defaults change (part of the cache key)."""


def detect_spikes(v: np.ndarray, height_mv: float = 8.0) -> np.ndarray:
    """Spike peaks of one node's membrane potential.

    A spike is a peak at least ``height_mv`` above the trace's median and with a prominence
    of at least ``height_mv`` (DeepSIF keeps interictal peaks over 8 mV).

    Parameters
    ----------
    v : array, shape (n_times,), mV
    height_mv : float

    Returns
    -------
    peaks : int array, sample indices.
    """
    v = np.asarray(v, float)
    return find_peaks(v, height=np.median(v) + height_mv, prominence=height_mv)[0]


@dataclass(frozen=True)
class LibraryConfig:
    """What a library holds.

    Attributes
    ----------
    regime : str
        One of :data:`~rtsource.simulate.dynamics.regimes.REGIMES`.
    n_runs : int
        Independent simulations (seeds; foci drawn per run).
    duration_s : float
        Seconds kept per run (after ``discard_s`` of transient).
    sfreq : float
        Output rate (Hz; divides 2000).
    discard_s : float
        Initial transient dropped (s).
    seed : int
    dynamics : DynamicsConfig
    """

    regime: str = "spontaneous"
    n_runs: int = 4
    duration_s: float = 20.0
    sfreq: float = 500.0
    discard_s: float = 1.0
    seed: int = 0
    dynamics: DynamicsConfig = field(default_factory=DynamicsConfig)

    def __post_init__(self) -> None:
        check_value(self.regime, REGIMES, "library regime")
        if self.n_runs < 1 or not self.duration_s > 0 or self.discard_s < 0:
            raise ValueError(f"Library n_runs = {self.n_runs}, duration_s = {self.duration_s} "
                             f"and discard_s = {self.discard_s} must be >= 1, > 0 and >= 0.")

    @property
    def key(self) -> str:
        return stable_hash("dynamics-library", LIBRARY_VERSION, dataclasses.asdict(self))


@dataclass(frozen=True, eq=False)
class WaveformLibrary:
    """Simulated region activity of one regime.

    Attributes
    ----------
    config : LibraryConfig
    names : list of str
        Node names (columns of ``waveforms``).
    waveforms : array, shape (n_runs, n_times, n_nodes), float32
        Pyramidal membrane potential, mV, each run's per-node mean removed.
    truth : bool array, shape (n_runs, n_nodes)
        Regions whose activity is the regime's own (foci; stimulated nucleus and targets).
    foci : int array, shape (n_runs, n_foci)
        Focus (or stimulated nucleus) per run; -1 padding; all -1 for spontaneous.
    events : list of int arrays
        Per run, sample indices of the regime's events: focus spikes (interictal, ictal),
        stimulus onsets (evoked), one per second (spontaneous).
    rate : float
        Simulated seconds per wall-clock second when it was generated.
    """

    config: LibraryConfig
    names: list[str]
    waveforms: np.ndarray
    truth: np.ndarray
    foci: np.ndarray
    events: list[np.ndarray]
    rate: float

    @property
    def sfreq(self) -> float:
        return self.config.sfreq

    @property
    def n_runs(self) -> int:
        return self.waveforms.shape[0]


def _simulate(cfg: LibraryConfig, nodes: BrainNodes, progress: bool) -> dict[str, np.ndarray]:
    conn = default_connectome(nodes)
    n_keep = round(cfg.duration_s * cfg.sfreq)
    n_skip = round(cfg.discard_s * cfg.sfreq)
    chunk = round(cfg.sfreq)
    W = np.empty((cfg.n_runs, n_keep, nodes.n_nodes), np.float32)
    truth = np.zeros((cfg.n_runs, nodes.n_nodes), bool)
    foci = -np.ones((cfg.n_runs, cfg.dynamics.n_foci), np.int64)
    events: list[np.ndarray] = []
    bar = tqdm(total=cfg.n_runs * (n_keep + n_skip) / cfg.sfreq, unit="sim s",
               desc=f"Library {cfg.regime}", disable=not progress)
    t0 = time.perf_counter()
    for r in range(cfg.n_runs):
        dyn = cfg.dynamics
        if cfg.regime in ("interictal", "ictal"):
            dyn = dataclasses.replace(dyn, thalamic_focus_prob=float(r % 2))
        sim = RegimeSimulation(cfg.regime, cfg.sfreq, seed=cfg.seed * 100_003 + r,
                               config=dyn, nodes=nodes, connectome=conn)
        done = 0
        while done < n_skip:
            k = min(chunk, n_skip - done)
            sim.run(k)
            done += k
            bar.update(k / cfg.sfreq)
        done = 0
        while done < n_keep:
            k = min(chunk, n_keep - done)
            W[r, done:done + k] = sim.run(k)
            done += k
            bar.update(k / cfg.sfreq)
        W[r] -= W[r].mean(0, keepdims=True)
        idx = [nodes.names.index(x) for x in sim.foci]
        foci[r, :len(idx)] = idx
        truth[r, [nodes.names.index(x) for x in sim.truth_regions]] = True
        if cfg.regime in ("interictal", "ictal"):
            ev = detect_spikes(W[r, :, idx[0]])
        elif cfg.regime == "evoked":
            ev = np.array([o - n_skip for o in sim.onsets if n_skip <= o < n_skip + n_keep])
        else:
            ev = np.arange(0, n_keep, round(cfg.sfreq))
        events.append(np.asarray(ev, np.int64))
    bar.close()
    wall = time.perf_counter() - t0
    rate = cfg.n_runs * (n_keep + n_skip) / cfg.sfreq / wall
    n_ev = max(1, max(len(e) for e in events))
    ev_arr = -np.ones((cfg.n_runs, n_ev), np.int64)
    for r, e in enumerate(events):
        ev_arr[r, :len(e)] = e
    logger.info("Library %s: %d runs x %.0f s in %.1f s (%.1f simulated s per wall s)",
                cfg.regime, cfg.n_runs, cfg.duration_s, wall, rate)
    return {"waveforms": W, "truth": truth, "foci": foci, "events": ev_arr,
            "names": np.array(nodes.names), "rate": np.array(rate)}


def build_library(config: LibraryConfig | None = None, *, progress: bool = True,
                  force: bool = False, **kwargs) -> WaveformLibrary:
    """Load the library of ``config`` from the cache, simulating it the first time.

    Parameters
    ----------
    config : LibraryConfig | None
        Settings (or give them as keyword arguments, e.g. ``regime="ictal"``).
    progress : bool
        Progress bar (simulated seconds) while generating.
    force : bool
        Regenerate even when cached.

    Returns
    -------
    WaveformLibrary
    """
    cfg = config or LibraryConfig(**kwargs)
    nodes = brain_nodes(cfg.dynamics.subcortical)
    data = load_or_build("dynamics", cfg.key, lambda: _simulate(cfg, nodes, progress),
                         force=force)
    ev = [row[row >= 0] for row in data["events"]]
    return WaveformLibrary(config=cfg, names=[str(x) for x in data["names"]],
                           waveforms=data["waveforms"], truth=data["truth"],
                           foci=data["foci"], events=ev, rate=float(data["rate"]))
