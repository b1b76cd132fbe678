"""Brain states of the model: spontaneous, evoked, interictal and ictal.

Every regime starts from the same network (:class:`DynamicsConfig`): Jansen–Rit nodes on the
connectome, cortical nodes at an effective mean input of 0.15 ms⁻¹ (μ_i lowered by the mean
coupling input it receives, so every cortical node sits in the alpha regime whatever its
number of connections) and thalamic nodes at DeepSIF's μ = 0.087 ms⁻¹ (the quiet, excitable
side of the bifurcation, so that a volley makes a relay burst). Then:

* ``spontaneous`` — nothing more: noise-driven alpha (about 10 Hz) background.
* ``evoked`` — brief pulses (``stim_amp`` ms⁻¹ for ``stim_ms``) into a sensory thalamic
  nucleus (Stha or Otha, one side), every ``stim_isi_s`` ± ``stim_jitter_s``; the thalamic
  burst reaches the nucleus' cortex through the thalamo-cortical projections.
* ``interictal`` — ``n_foci`` hyperexcitable foci (A = ``interictal_A``: 3.45 mV in cortex,
  3.6 mV in a thalamic nucleus, against 3.25) produce sporadic spikes on the background
  (DeepSIF raises A to 3.5 mV; with this network's alpha-level cortical input 3.5 mV gives a
  5–6 Hz spike train instead of sporadic spikes, and the quiet thalamus needs a little more).
* ``ictal`` — foci switched to Wendling's model with fast inhibition (A, B, G =
  ``ictal_ABG``, 5, 25, 15 mV: Wendling et al. 2002's sustained rhythmic spikes) produce a
  rhythmic discharge of about 5 Hz.

Foci are drawn from the cortical regions and, with probability ``thalamic_focus_prob``,
from the thalamic nuclei, or named.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ...config import REGIMES, Regime, check_value
from .connectome import Connectome, default_connectome
from .neuralmass import DT_MS, BrainModel, NodeParams, Stimulus, sigmoid
from .nodes import BrainNodes, brain_nodes

__all__ = ["REGIMES", "DynamicsConfig", "Regime", "RegimeSimulation"]

# The brain states (``--dynamics``): Regime and REGIMES live in rtsource.config with the
# other vocabularies.

#: Membrane potential (mV) around which the mean coupling input is balanced: the mean of
#: the alpha regime (cortex) and of the quiet regime (thalamus).
_V_ALPHA, _V_QUIET = 7.3, 1.4


@dataclass(frozen=True)
class DynamicsConfig:
    """Settings of the brain model and its regimes (see the module docstring).

    Attributes
    ----------
    coupling : float
        Global coupling K.
    mu_cortex, mu_thalamus : float
        Effective mean input of cortical and thalamic nodes (ms⁻¹).
    interictal_A : (float, float)
        Excitatory gain of an interictal focus (mV), cortical and thalamic.
    ictal_ABG : (float, float, float)
        Wendling gains (A, B, G) of an ictal focus (mV).
    n_foci : int
        Foci per simulation (interictal, ictal).
    thalamic_focus_prob : float
        Probability that a drawn focus is a thalamic nucleus.
    stim_nuclei : tuple of str
        Thalamic nuclei (abbreviations) an evoked run stimulates (one, drawn).
    stim_amp, stim_ms, stim_isi_s, stim_jitter_s : float
        Pulse amplitude (ms⁻¹), duration (ms), interval and its jitter (s).
    subcortical : bool
        Add the 20 other subcortical regions as nodes.
    """

    coupling: float = 5.0
    mu_cortex: float = 0.15
    mu_thalamus: float = 0.087
    interictal_A: tuple[float, float] = (3.45, 3.6)
    ictal_ABG: tuple[float, float, float] = (5.0, 25.0, 15.0)
    n_foci: int = 1
    thalamic_focus_prob: float = 0.25
    stim_nuclei: tuple[str, ...] = ("Stha", "Otha")
    stim_amp: float = 1.0
    stim_ms: float = 10.0
    stim_isi_s: float = 1.0
    stim_jitter_s: float = 0.2
    subcortical: bool = False

    def __post_init__(self) -> None:
        if self.coupling < 0:
            raise ValueError(f"dynamics.coupling = {self.coupling} must be >= 0 (default 5).")
        if self.n_foci < 1:
            raise ValueError(f"dynamics.n_foci = {self.n_foci} must be at least 1.")
        if not 0 <= self.thalamic_focus_prob <= 1:
            raise ValueError(f"dynamics.thalamic_focus_prob = {self.thalamic_focus_prob} must "
                             "be in [0, 1].")
        if not (self.stim_ms >= DT_MS and self.stim_isi_s > 2 * self.stim_jitter_s >= 0):
            raise ValueError(f"dynamics.stim_ms = {self.stim_ms} must be >= {DT_MS} and "
                             f"stim_isi_s = {self.stim_isi_s} > 2 * stim_jitter_s = "
                             f"{2 * self.stim_jitter_s}.")


class RegimeSimulation:
    """One endless simulation of a regime, generated in chunks.

    Parameters
    ----------
    regime : ``"spontaneous"`` | ``"evoked"`` | ``"interictal"`` | ``"ictal"``
    sfreq : float
        Output rate (Hz; must divide 2000).
    seed : int
        Seed of the foci, stimulus times and noise.
    foci : sequence of str | None
        Focus regions (interictal/ictal) or the stimulated nucleus (evoked), e.g.
        ``["PrG_6_3_L"]`` or ``["Stha_L"]``; drawn when None.
    config : DynamicsConfig | None
    nodes, connectome : shared structures (built when None).

    Attributes
    ----------
    foci : list of str
        Focus regions (interictal, ictal) or the stimulated nucleus (evoked); empty for
        spontaneous.
    truth_regions : list of str
        Regions whose activity is the regime's own: the foci, or the stimulated nucleus and
        its cortical targets.
    onsets : list of int
        Evoked: output-sample indices of the stimulus onsets generated so far.
    model : BrainModel
    n_generated : int
        Output samples generated so far.

    Raises
    ------
    ValueError
        For an unknown regime (listing the valid ones) or region name.
    """

    def __init__(self, regime: str, sfreq: float = 1000.0, seed: int = 0, *,
                 foci: list[str] | None = None, config: DynamicsConfig | None = None,
                 nodes: BrainNodes | None = None, connectome: Connectome | None = None) -> None:
        check_value(regime, REGIMES, "dynamics")
        self.regime, self.sfreq, self.seed = regime, float(sfreq), int(seed)
        self.config = cfg = config or DynamicsConfig()
        self.nodes = nodes or brain_nodes(cfg.subcortical)
        self.connectome = connectome or default_connectome(self.nodes)
        n = self.nodes
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, REGIMES.index(regime)]))
        self._rng = rng
        w = self.connectome.weights
        params = NodeParams.default(n.n_nodes)
        sbar = np.where(n.thalamic, sigmoid(_V_QUIET), sigmoid(_V_ALPHA))
        base = np.where(n.thalamic, cfg.mu_thalamus, cfg.mu_cortex)
        params.mu = base - cfg.coupling * (w @ sbar)
        self.foci: list[str] = []
        if regime in ("interictal", "ictal"):
            idx = [n.index(f) for f in foci] if foci else self._draw_foci(rng)
            self.foci = [n.names[i] for i in idx]
            for i in idx:
                if regime == "interictal":
                    params.A[i] = cfg.interictal_A[int(bool(n.thalamic[i]))]
                else:
                    params.A[i], params.B[i], params.G[i] = cfg.ictal_ABG
        elif regime == "evoked":
            if foci:
                idx = [n.index(f) for f in foci]
            else:
                abbr = cfg.stim_nuclei[int(rng.integers(len(cfg.stim_nuclei)))]
                idx = [n.index(f"{abbr}_{'LR'[int(rng.integers(2))]}")]
            bad = [n.names[i] for i in idx if not n.thalamic[i]]
            if bad:
                raise ValueError(f"Evoked stimuli go to thalamic nuclei; {bad} are not thalamic "
                                 "(give e.g. 'Stha_L' or 'Otha_R').")
            self.foci = [n.names[i] for i in idx]
        self.params = params
        targets = []
        if regime == "evoked":
            for i in idx:
                targets += [n.names[j] for j in np.flatnonzero(w[:, i] > 0) if n.cortical[j]]
        self.truth_regions = self.foci + [t for t in targets if t not in self.foci]
        self._stim_idx = [n.index(f) for f in self.foci] if regime == "evoked" else []
        self.model = BrainModel(self.connectome, params, coupling=cfg.coupling, sfreq=sfreq,
                                seed=int(rng.integers(2**31)))
        self.onsets: list[int] = []
        self._next_onset = self._draw_interval() if regime == "evoked" else None
        self.n_generated = 0

    def _draw_foci(self, rng: np.random.Generator) -> list[int]:
        n, cfg = self.nodes, self.config
        out: list[int] = []
        while len(out) < cfg.n_foci:
            pool = n.thalamic if rng.random() < cfg.thalamic_focus_prob else n.cortical
            i = int(rng.choice(np.flatnonzero(pool)))
            if i not in out:
                out.append(i)
        return out

    def _draw_interval(self) -> int:
        c = self.config
        return round((c.stim_isi_s + self._rng.uniform(-c.stim_jitter_s, c.stim_jitter_s))
                     * self.sfreq)

    def run(self, n_out: int) -> np.ndarray:
        """The next ``n_out`` output samples of every node.

        Returns
        -------
        v : array, shape (n_out, n_nodes), float32
            Membrane potential of each node's pyramidal population (mV), with its resting
            offset (subtract the mean for an EEG source).
        """
        n_out = int(n_out)
        if self.regime == "evoked":
            start, stop = self.n_generated, self.n_generated + n_out
            while self._next_onset is not None and self._next_onset < stop + self.sfreq:
                self.onsets.append(self._next_onset)
                self._next_onset += self._draw_interval()
            pending = [o for o in self.onsets if o + self.config.stim_ms * self.sfreq / 1000 >= start]
            spo = self.model.decim
            k = len(self._stim_idx)
            node = np.repeat(self._stim_idx, len(pending)) if k else np.zeros(0, np.int64)
            on = np.tile(np.array(pending, np.int64) * spo, k)
            dur = max(1, round(self.config.stim_ms / DT_MS))
            self.model.stimulus = Stimulus(node=np.asarray(node, np.int64), start=on,
                                           stop=on + dur, amp=np.full(len(on), self.config.stim_amp))
        out = self.model.run(n_out)
        self.n_generated += n_out
        return out

    def describe(self) -> dict:
        """Settings and truth as a JSON-able dict."""
        return {"regime": self.regime, "sfreq": self.sfreq, "seed": self.seed,
                "foci": self.foci, "truth_regions": self.truth_regions,
                "config": dataclasses.asdict(self.config),
                "connectome": self.connectome.source}
