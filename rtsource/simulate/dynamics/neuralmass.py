"""Jansen–Rit neural masses (with Wendling's fast inhibition) on a delayed connectome.

Each node is the neural mass of Wendling et al. (2002, Eur J Neurosci 15:1499, "Epileptic
fast activity can be explained by a model of impaired GABAergic dendritic inhibition"), which
is the Jansen–Rit model (Jansen & Rit 1995, Biol Cybern 73:357) plus a population of fast
inhibitory interneurons of gain G. With G = 0 it *is* Jansen–Rit, in The Virtual Brain's
form (``tvb.simulator.models.JansenRit``, milliseconds and millivolts), with the parameters
DeepSIF uses (bfinl/DeepSIF, ``forward/``; ``../shared/FACTS.md``): A = 3.25 mV (3.5 mV in a
hyperexcitable region), B = 22 mV, a = 0.1 ms⁻¹, b = 0.05 ms⁻¹, v0 = 6 mV, e0 = 0.0025 ms⁻¹,
r = 0.56 mV⁻¹, C = 135 (C1..C4 = C, 0.8C, 0.25C, 0.25C), mean input μ = 0.087 ms⁻¹ and
additive noise on the excitatory-interneuron input only, of intensity
D = (a·A·(p_max − p_min)/2)² / 2 with p in [0.03, 0.15] ms⁻¹. Wendling's fast loop: g = 0.5
ms⁻¹, C5 = 0.3C, C6 = 0.1C, C7 = 0.8C.

States per node (millivolts and their derivatives), v = y1 − y2 − y3 is the pyramidal
membrane potential, the region's output (the EEG-generating quantity)::

    y0'' = A a S(y1 − y2 − y3)                     − 2a y0' − a² y0
    y1'' = A a (μ + stim + c + C2 S(C1 y0))        − 2a y1' − a² y1     (+ noise)
    y2'' = B b C4 S(C3 y0)                         − 2b y2' − b² y2
    y3'' = G g C7 S(C5 y0 − C6 y4)                 − 2g y3' − g² y3
    y4'' = B b S(C3 y0)                            − 2b y4' − b² y4
    S(v) = 2 e0 / (1 + exp(r (v0 − v)))

Coupling (TVB's ``SigmoidalJansenRit``, c_min 0, c_max 2e0 = 0.005, midpoint v0 = 6 mV,
r = 0.56): c_i = K Σ_j w_ij S(v_j(t − τ_ij)). The sigmoid of every node's output is kept in a
ring buffer; delays are rounded to whole steps (at least one). Integration: stochastic Heun
(TVB's ``HeunStochastic``) at dt = 0.5 ms, the coupling evaluated once per step from the
delayed history (τ ≥ dt, so both Heun stages use values already computed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from .connectome import Connectome

__all__ = ["DT_MS", "JR_DEFAULTS", "BrainModel", "NodeParams", "noise_intensity", "sigmoid"]

DT_MS = 0.5
"""Integration step (ms)."""

#: Jansen–Rit/Wendling constants (ms, mV), shared by every node.
JR_DEFAULTS = {"a": 0.1, "b": 0.05, "g": 0.5, "e0": 0.0025, "v0": 6.0, "r": 0.56, "C": 135.0,
               "p_min": 0.03, "p_max": 0.15}


def sigmoid(v: np.ndarray, e0: float = 0.0025, v0: float = 6.0, r: float = 0.56) -> np.ndarray:
    """Jansen–Rit firing rate 2e0 / (1 + exp(r (v0 − v))), ms⁻¹, for v in mV."""
    return 2.0 * e0 / (1.0 + np.exp(r * (v0 - np.asarray(v, float))))


def noise_intensity(A: float = 3.25, a: float = 0.1, p_min: float = 0.03,
                    p_max: float = 0.15) -> float:
    """DeepSIF's noise intensity D = (a A (p_max − p_min)/2)² / 2 (the increment is
    sqrt(2 D dt) N(0, 1) on y1')."""
    return (a * A * (p_max - p_min) * 0.5) ** 2 / 2.0


@dataclass
class NodeParams:
    """Per-node parameters, arrays of shape (n_nodes,).

    A, B, G : excitatory, slow inhibitory and fast inhibitory gains (mV).
    mu : mean input (ms⁻¹).
    noise : noise intensity D (see :func:`noise_intensity`).
    """

    A: np.ndarray
    B: np.ndarray
    G: np.ndarray
    mu: np.ndarray
    noise: np.ndarray

    @classmethod
    def default(cls, n: int, *, A: float = 3.25, B: float = 22.0, mu: float = 0.087,
                noise: float | None = None) -> NodeParams:
        d = noise_intensity() if noise is None else noise
        return cls(A=np.full(n, A), B=np.full(n, B), G=np.zeros(n), mu=np.full(n, mu),
                   noise=np.full(n, d))


@numba.njit(cache=True, fastmath=False, nogil=True)
def _sig(v, e0, v0, r):
    return 2.0 * e0 / (1.0 + np.exp(r * (v0 - v)))


@numba.njit(cache=True, nogil=True)
def _deriv(y, dy, p_in, A, B, G, a, b, g, e0, v0, r, C):
    n = y.shape[0]
    C1, C2, C3, C4 = C, 0.8 * C, 0.25 * C, 0.25 * C
    C5, C6, C7 = 0.3 * C, 0.1 * C, 0.8 * C
    for i in range(n):
        y0, y1, y2, y3, y4 = y[i, 0], y[i, 1], y[i, 2], y[i, 3], y[i, 4]
        z0, z1, z2, z3, z4 = y[i, 5], y[i, 6], y[i, 7], y[i, 8], y[i, 9]
        s_pyr = _sig(C3 * y0, e0, v0, r)
        dy[i, 0] = z0
        dy[i, 1] = z1
        dy[i, 2] = z2
        dy[i, 3] = z3
        dy[i, 4] = z4
        dy[i, 5] = A[i] * a * _sig(y1 - y2 - y3, e0, v0, r) - 2 * a * z0 - a * a * y0
        dy[i, 6] = A[i] * a * (p_in[i] + C2 * _sig(C1 * y0, e0, v0, r)) - 2 * a * z1 - a * a * y1
        dy[i, 7] = B[i] * b * C4 * s_pyr - 2 * b * z2 - b * b * y2
        if G[i] != 0.0:
            dy[i, 8] = (G[i] * g * C7 * _sig(C5 * y0 - C6 * y4, e0, v0, r)
                        - 2 * g * z3 - g * g * y3)
            dy[i, 9] = B[i] * b * s_pyr - 2 * b * z4 - b * b * y4
        else:
            dy[i, 8] = 0.0
            dy[i, 9] = 0.0


@numba.njit(cache=True, nogil=True)
def _integrate(y, hist, hpos, step0, n_steps, decim, out, noise_z, A, B, G, mu, noise_std,
               indptr, indices, wts, delay, K, stim_node, stim_start, stim_stop, stim_amp,
               a, b, g, e0, v0, r, C, dt):
    """Advance ``n_steps`` Heun steps; write decimated outputs (mean of ``decim`` steps)."""
    n = y.shape[0]
    H = hist.shape[0]
    dy1 = np.empty_like(y)
    dy2 = np.empty_like(y)
    tmp = np.empty_like(y)
    p_in = np.empty(n)
    acc = np.zeros(n)
    k_out = 0
    cnt = 0
    for s in range(n_steps):
        step = step0 + s
        # delayed coupling from the sigmoid history
        for i in range(n):
            c = 0.0
            for q in range(indptr[i], indptr[i + 1]):
                c += wts[q] * hist[(hpos - delay[q]) % H, indices[q]]
            p_in[i] = mu[i] + K * c
        for k in range(stim_node.shape[0]):
            if stim_start[k] <= step < stim_stop[k]:
                p_in[stim_node[k]] += stim_amp[k]
        _deriv(y, dy1, p_in, A, B, G, a, b, g, e0, v0, r, C)
        for i in range(n):
            for j in range(10):
                tmp[i, j] = y[i, j] + dt * dy1[i, j]
            tmp[i, 6] += noise_std[i] * noise_z[s, i]
        _deriv(tmp, dy2, p_in, A, B, G, a, b, g, e0, v0, r, C)
        hpos = (hpos + 1) % H
        for i in range(n):
            for j in range(10):
                y[i, j] += 0.5 * dt * (dy1[i, j] + dy2[i, j])
            y[i, 6] += noise_std[i] * noise_z[s, i]
            v = y[i, 1] - y[i, 2] - y[i, 3]
            hist[hpos, i] = _sig(v, e0, v0, r)
            acc[i] += v
        cnt += 1
        if cnt == decim:
            for i in range(n):
                out[k_out, i] = acc[i] / decim
                acc[i] = 0.0
            k_out += 1
            cnt = 0
    return hpos


@dataclass
class Stimulus:
    """Input pulses: ``amp`` ms⁻¹ added to μ of ``node`` during steps [start, stop)."""

    node: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    stop: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    amp: np.ndarray = field(default_factory=lambda: np.zeros(0))


class BrainModel:
    """A network of neural masses on a connectome, integrated in resumable chunks.

    Parameters
    ----------
    connectome : Connectome
        Weights (n_nodes, n_nodes) and lengths (mm); ``w[i, j]`` is i's input from j.
    params : NodeParams
        Per-node gains, mean input and noise intensity.
    coupling : float
        Global coupling K (multiplies Σ_j w_ij S(v_j); ms⁻¹ per unit weight and rate).
    sfreq : float
        Output rate (Hz); 1000 / (dt · sfreq) must be a whole number of steps.
    seed : int
        Seed of the noise and the initial state.
    stimulus : Stimulus | None
        Input pulses (steps counted from the start of the run).

    Raises
    ------
    ValueError
        When shapes disagree or ``sfreq`` does not divide the integration rate (2000 Hz).
    """

    def __init__(self, connectome: Connectome, params: NodeParams, *, coupling: float = 5.0,
                 sfreq: float = 1000.0, seed: int = 0, stimulus: Stimulus | None = None,
                 dt_ms: float = DT_MS) -> None:
        w = np.asarray(connectome.weights, float)
        n = w.shape[0]
        if w.shape != (n, n) or connectome.lengths_mm.shape != (n, n):
            raise ValueError(f"Connectome weights {w.shape} and lengths "
                             f"{connectome.lengths_mm.shape} must be square and equal.")
        for name in ("A", "B", "G", "mu", "noise"):
            if np.shape(getattr(params, name)) != (n,):
                raise ValueError(f"NodeParams.{name} has shape {np.shape(getattr(params, name))}; "
                                 f"expected ({n},), one value per node.")
        rate = 1000.0 / dt_ms
        decim = rate / sfreq
        if not (sfreq > 0 and abs(decim - round(decim)) < 1e-9 and round(decim) >= 1):
            raise ValueError(f"sfreq = {sfreq} Hz must divide the integration rate {rate:g} Hz "
                             f"(dt = {dt_ms} ms): e.g. 2000, 1000, 500 or 250.")
        self.n_nodes, self.sfreq, self.dt = n, float(sfreq), float(dt_ms)
        self.decim = int(round(decim))
        self.params, self.coupling, self.connectome = params, float(coupling), connectome
        rows, cols = np.nonzero(w)
        self._indptr = np.searchsorted(rows, np.arange(n + 1)).astype(np.int64)
        self._indices = cols.astype(np.int64)
        self._wts = w[rows, cols].astype(float)
        steps = np.maximum(1, np.round(connectome.delays_ms[rows, cols] / dt_ms)).astype(np.int64)
        self._delay = steps
        H = int(steps.max(initial=1)) + 2
        self.stimulus = stimulus or Stimulus()
        self._rng = np.random.default_rng(seed)
        # initial state: resting point plus a little jitter, history at its sigmoid
        self.y = np.zeros((n, 10))
        self.y[:, 0] = 0.13 + 0.01 * self._rng.standard_normal(n)
        self.y[:, 1] = 24.0 + 1.0 * self._rng.standard_normal(n)
        self.y[:, 2] = 16.0 + 1.0 * self._rng.standard_normal(n)
        self.hist = np.tile(sigmoid(self.y[:, 1] - self.y[:, 2]), (H, 1))
        self._hpos = 0
        self.step = 0
        self._noise_std = np.sqrt(2.0 * np.asarray(params.noise, float) * dt_ms)

    def run(self, n_out: int) -> np.ndarray:
        """Integrate ``n_out`` output samples further.

        Returns
        -------
        v : array, shape (n_out, n_nodes), float32
            Pyramidal membrane potential y1 − y2 − y3 (mV), mean over each output period.
        """
        n_steps = int(n_out) * self.decim
        out = np.empty((int(n_out), self.n_nodes))
        z = self._rng.standard_normal((n_steps, self.n_nodes))
        p, c, s = self.params, JR_DEFAULTS, self.stimulus
        self._hpos = _integrate(
            self.y, self.hist, self._hpos, self.step, n_steps, self.decim, out, z,
            np.asarray(p.A, float), np.asarray(p.B, float), np.asarray(p.G, float),
            np.asarray(p.mu, float), self._noise_std, self._indptr, self._indices, self._wts,
            self._delay, self.coupling, np.asarray(s.node, np.int64),
            np.asarray(s.start, np.int64), np.asarray(s.stop, np.int64),
            np.asarray(s.amp, float), c["a"], c["b"], c["g"], c["e0"], c["v0"], c["r"], c["C"],
            self.dt)
        self.step += n_steps
        return out.astype(np.float32)
