"""The causal convolutional-recurrent network that estimates region time courses.

After Yu et al. 2024 (Cogn Neurodyn, "deep source transfer learning": a convolutional-
recurrent network estimating cortical and thalamic sources of BN246) and DeepSIF (Sun et al.
2022, PNAS 119:e2201128119: spatial layers followed by LSTMs, trained on neural-mass
simulations), sized for a 2-core CPU and made strictly causal so that it streams.

Input: the physics-based estimate in region space. The eLORETA current-density vectors are
averaged over each brain-model node's grid points with the atlas' partial-volume weights
(:func:`node_feature_kernel`), giving a 3-vector per node and sample; so one trained network
serves any montage and head model, only the kernel changes (as with 3D-PIUNet). Each window or
stream is divided by a scale (the RMS of the features; :class:`FeatureScaler`), and the
output is multiplied back by it.

Layers: a per-sample linear map (features → ``hidden``), a causal temporal convolution
(``kernel`` samples, left-padded, no look-ahead), ELU activations, ``n_lstm`` LSTM layers and a
linear head to the nodes. :meth:`TemporalNet.forward` takes and returns the state (the last
``kernel − 1`` inputs of the convolution and the LSTMs' ``(h, c)``), so a stream processed
hop by hop gives the same numbers as the whole sequence at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["FeatureScaler", "TemporalNet", "TemporalSpec", "TemporalState", "node_feature_kernel"]


@dataclass(frozen=True)
class TemporalSpec:
    """Architecture of :class:`TemporalNet`.

    n_nodes : input nodes (3 features each) and output nodes (one time course each).
    hidden : width of the convolutional and recurrent layers.
    kernel : length of the causal convolution (samples at ``sfreq``).
    n_lstm : stacked LSTM layers.
    sfreq : the rate (Hz) the network was trained at; streams are decimated to it.
    n_inputs : input features per sample (None: 3 · n_nodes, the node vectors; the number
        of channels for a network fed the sensors directly, which serves one montage only).
    """

    n_nodes: int = 226
    hidden: int = 256
    kernel: int = 5
    n_lstm: int = 2
    sfreq: float = 250.0
    n_inputs: int | None = None


#: State carried from hop to hop: (convolution input history (B, hidden, kernel − 1),
#: LSTM (h, c), each (n_lstm, B, hidden)).
TemporalState = tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


class TemporalNet(nn.Module):
    """Causal conv-recurrent estimator of node time courses (see the module docstring).

    Parameters
    ----------
    spec : TemporalSpec (or its fields as keywords).

    Shapes
    ------
    forward(x, state=None) -> (y, state)
        x : (batch, n_times, 3 · n_nodes) scaled features (node-major: node r's vector is
        x[..., 3r:3r+3]); y : (batch, n_times, n_nodes) scaled node activity; y[:, t] depends
        on x[:, :t+1] and the state only.
    """

    def __init__(self, spec: TemporalSpec | None = None, **kwargs) -> None:
        super().__init__()
        spec = spec or TemporalSpec(**kwargs)
        self.spec = spec
        h = spec.hidden
        self.inp = nn.Linear(spec.n_inputs or 3 * spec.n_nodes, h)
        self.conv = nn.Conv1d(h, h, spec.kernel)
        self.act = nn.ELU()
        self.lstm = nn.LSTM(h, h, spec.n_lstm, batch_first=True)
        self.head = nn.Linear(h, spec.n_nodes)

    @property
    def config(self) -> dict:
        """JSON-serialisable constructor arguments."""
        return asdict(self.spec)

    def initial_state(self, batch: int = 1, device: torch.device | str = "cpu",
                      dtype: torch.dtype = torch.float32) -> TemporalState:
        """Zero state: as if the stream had been silent before its first sample."""
        s, h = self.spec, self.spec.hidden
        z = torch.zeros(s.n_lstm, batch, h, device=device, dtype=dtype)
        return torch.zeros(batch, h, s.kernel - 1, device=device, dtype=dtype), (z, z.clone())

    def forward(self, x: torch.Tensor, state: TemporalState | None = None
                ) -> tuple[torch.Tensor, TemporalState]:
        if state is None:
            state = self.initial_state(x.shape[0], x.device, x.dtype)
        hist, hc = state
        u = self.act(self.inp(x)).transpose(1, 2)  # (B, hidden, T)
        u = torch.cat([hist.to(u.dtype), u], dim=2)
        new_hist = u[:, :, u.shape[2] - (self.spec.kernel - 1):]
        v = self.act(self.conv(u)).transpose(1, 2)  # (B, T, hidden): causal, no look-ahead
        hc = (hc[0].to(v.dtype), hc[1].to(v.dtype))
        w, hc = self.lstm(v, hc)
        return self.head(w), (new_hist, hc)


def node_feature_kernel(kernel: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The inverse kernel averaged over each node's grid points: node vectors from EEG.

    Parameters
    ----------
    kernel : array, shape (3 · n_sources, n_channels) or (n_sources, 3, n_channels)
        Linear inverse (A·m per V; eLORETA for the shipped network), rows source-major.
    weights : array, shape (n_nodes, n_sources)
        Partial-volume weights of the nodes (rows sum to 1;
        :func:`rtsource.regions.region_map`).

    Returns
    -------
    array, shape (3 · n_nodes, n_channels), float64
        Row 3r + k gives the k-th (head-frame) component of node r's mean current vector.
    """
    w = np.asarray(weights, np.float64)
    k = np.asarray(kernel, np.float64).reshape(w.shape[1], 3, -1)
    return np.einsum("rs,skc->rkc", w, k).reshape(3 * w.shape[0], -1)


class FeatureScaler:
    """Causal scale of a feature stream: the RMS over features and recent samples.

    Training divides each window by the RMS of all its features. A stream uses the running
    mean of the per-sample mean square over its first ``tau_s`` seconds, then an exponential
    moving average with time constant ``tau_s``; both tend to the window RMS on stationary
    data, and the value at a sample depends only on the samples before it (so a stream cut
    into any pieces gives the same scales).

    Parameters
    ----------
    sfreq : rate of the samples (Hz).
    tau_s : time constant (s).
    """

    def __init__(self, sfreq: float, tau_s: float = 1.0) -> None:
        self.alpha = 1.0 - float(np.exp(-1.0 / (tau_s * sfreq)))
        self.reset()

    def reset(self) -> None:
        self.ms, self.n = 0.0, 0

    def __call__(self, feats: np.ndarray) -> np.ndarray:
        """Scales (one per sample, shape (n_times,)) for ``feats`` (n_times, n_features);
        updates the state."""
        per = np.mean(np.square(feats, dtype=np.float64), axis=1)
        out = np.empty(len(per))
        ms, n, alpha = self.ms, self.n, self.alpha
        for i, p in enumerate(per):
            n += 1
            a = max(alpha, 1.0 / n)
            ms = (1.0 - a) * ms + a * p
            out[i] = ms
        self.ms, self.n = ms, n
        return np.sqrt(np.maximum(out, 1e-60))
