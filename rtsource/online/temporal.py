"""The temporal stage: EEG → eLORETA node vectors → temporal network → node time courses.

Method ``temporal`` (:mod:`rtsource.models.temporal`): the eLORETA kernel averaged over each
brain-model node (210 BN246 cortical regions and 16 thalamic nuclei) turns a sample of EEG into
226 current vectors; a causal convolutional-recurrent network trained on neural-mass
simulations turns their recent history into each node's activity. The network runs at the
rate it was trained at (250 Hz for the shipped one): the stage low-passes the EEG causally at
0.4 × that rate and keeps one sample in ``decimate``. Its state (convolution history, LSTM
state, input scale) carries from call to call; :meth:`TemporalStage.reset` clears it (a lost
stream, withheld bad data, a new recording).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._util import cpu_features, logger
from ..config import temporal_runtime
from ..engines.temporal_onnx import TemporalOnnxRunner
from ..headmodel import HeadModel
from ..models.checkpoint import Checkpoint, load_checkpoint
from ..models.temporal import FeatureScaler, node_feature_kernel
from ..regions import RegionMap, region_map
from .preprocess import CausalFilter

__all__ = ["RATE_TOLERANCE", "TemporalStage", "temporal_checkpoint", "temporal_checkpoint_path",
           "temporal_decimation", "temporal_runtime"]

#: The stream's rate divided by ``decimate`` may differ from the network's by this fraction.
RATE_TOLERANCE = 0.1
#: The temporal network shipped in the package.
SHIPPED = Path(__file__).resolve().parents[1] / "data" / "temporal.safetensors"


def temporal_checkpoint_path(spec: str = "default") -> Path:
    """The file ``spec`` names (``"default"``: the shipped weights, else a path), checked to
    exist.

    Raises
    ------
    FileNotFoundError
        No such file (the message names the setting to change).
    """
    path = SHIPPED if spec == "default" else Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(
            f"Temporal network {str(path)!r} does not exist"
            + (" (the package was installed without its weights)." if spec == "default" else
               "; set refine.checkpoint (--checkpoint) to a file written by 'rtsource train "
               "configs/train-temporal.toml' or 'rtsource adapt', or 'default'."))
    return path


def temporal_checkpoint(spec: str = "default") -> Checkpoint:
    """Load the temporal network (``"default"``: the shipped weights, else a path).

    Raises
    ------
    FileNotFoundError
        No such file (the message names the setting to change).
    ValueError
        The file holds another network.
    """
    return load_checkpoint(temporal_checkpoint_path(spec), architecture="TemporalNet")


def temporal_decimation(sfreq: float, model_sfreq: float) -> int:
    """Samples per network step for a stream at ``sfreq`` (Hz).

    Raises
    ------
    ValueError
        When no integer decimation brings the rate within :data:`RATE_TOLERANCE` of the
        network's (names both rates and the fix).
    """
    n = max(1, round(sfreq / model_sfreq))
    if abs(sfreq / n - model_sfreq) > RATE_TOLERANCE * model_sfreq:
        raise ValueError(
            f"The temporal network runs at {model_sfreq:g} Hz; a {sfreq:g} Hz recording or "
            f"stream cannot be decimated to within {RATE_TOLERANCE:.0%} of it (nearest: "
            f"{sfreq / n:g} Hz). Resample it to a multiple of {model_sfreq:g} Hz (e.g. "
            f"raw.resample({max(1, round(sfreq / model_sfreq)) * model_sfreq:g})), or use a "
            "linear method (--method eloreta).")
    return n


class TemporalStage:
    """Filtered EEG (volts) → node time courses, carrying the network's state.

    Parameters
    ----------
    headmodel : HeadModel
        The head model of the stream's channels (its grid gives the node weights).
    kernel : array, shape (3 · n_sources, n_channels)
        The eLORETA kernel (average reference folded in).
    sfreq : float
        The stream's rate (Hz).
    checkpoint : str
        ``"default"`` or a path (:func:`temporal_checkpoint`).
    precision : ``"auto"`` | ``"fp32"`` | ``"bf16"``
        For the ``torch`` backend: ``auto`` is bf16 where the CPU has AVX-512-BF16 or AMX.
        The ``onnx`` backend computes in float32.
    backend : ``"onnx"`` | ``"torch"``
        ``onnx`` (default): ONNX Runtime, one thread, the network exported with its state
        as inputs and outputs (:class:`~rtsource.engines.temporal_onnx.TemporalOnnxRunner`;
        about 2.5x cheaper per 10 ms hop than PyTorch bf16 here). ``torch``: the PyTorch module
        itself (the reference).

    Attributes
    ----------
    regions : RegionMap
        The nodes as BN246 regions (names, centroids), in output order.
    decimate : int
        Stream samples per network step.
    """

    def __init__(self, headmodel: HeadModel, kernel: np.ndarray, sfreq: float,
                 checkpoint: str = "default", precision: str = "auto",
                 backend: str = "onnx") -> None:
        if backend not in ("onnx", "torch"):
            raise ValueError(f"The temporal stage runs on backend 'onnx' or 'torch', not "
                             f"{backend!r}.")
        if backend == "onnx":
            temporal_runtime("onnx", precision)  # the configuration's rule: fp32 only
        self.checkpoint = temporal_checkpoint(checkpoint)
        h = self.checkpoint.header
        if not str(h.get("features", "eloreta")).startswith("eloreta"):
            raise ValueError(
                f"Temporal network {self.checkpoint.path.name!r} takes {h.get('features')} as "
                "input; method temporal runs networks fed eLORETA node vectors (trained with "
                "temporal.inputs = 'eloreta').")
        self.net = self.checkpoint.model.eval()
        self.model_sfreq = float(h["sfreq"])
        self.node_names = list(h["node_names"])
        self.node_kinds = list(h.get("node_kinds", []))
        self.gain = float(h.get("output_gain", 1.0))
        full = region_map(headmodel, "bn246")
        missing = [n for n in self.node_names if n not in full.names]
        if missing:
            raise ValueError(f"The temporal network's nodes {missing[:5]} are not BN246 regions "
                             "of this head model's grid.")
        rows = [full.names.index(n) for n in self.node_names]
        self.regions = RegionMap(
            names=list(self.node_names), weights=full.weights[rows],
            orientations=full.orientations[rows], coverage=full.coverage[rows],
            centroids_mni=full.centroids_mni[rows], atlas=full.atlas,
            atlas_version=full.atlas_version)
        self.features = np.ascontiguousarray(
            node_feature_kernel(kernel, self.regions.weights).T.astype(np.float32))  # (ch, 3n)
        self.sfreq = float(sfreq)
        self.decimate = temporal_decimation(self.sfreq, self.model_sfreq)
        self.conditioning = CausalFilter(
            self.sfreq, headmodel.n_channels, highpass=0.5,
            lowpass=0.4 * self.model_sfreq if self.decimate > 1 else None, notch=None)
        self.backend = backend
        self.runner: TemporalOnnxRunner | None = None
        if backend == "onnx":
            self.bf16 = False
            self.runner = TemporalOnnxRunner(self.net)
        else:
            self.bf16 = precision == "bf16" or (precision == "auto"
                                                and bool(cpu_features()["bf16_native"]))
        # bf16 weights, not autocast: autocast recasts the 1.6 M weights at every call, which
        # at 2-3 samples per hop costs more than the network (2.1 vs 0.7 ms measured here);
        # the output stays within 3 % of float32 over 10 s of stream (test)
        self.dtype = torch.bfloat16 if self.bf16 else torch.float32
        self.net = self.net.to(self.dtype)
        self.scaler = FeatureScaler(self.model_sfreq)
        self.state = None
        logger.info("Temporal network %s: %d nodes at %g Hz (one of %d samples), %s %s",
                    self.checkpoint.path.name, len(self.node_names), self.model_sfreq,
                    self.decimate, backend, "bf16" if self.bf16 else "fp32")

    def reset(self) -> None:
        """Forget the network's state, the input scale and the conditioning filter."""
        self.state = None
        self.scaler.reset()
        self.conditioning.reset()

    def condition(self, x: np.ndarray) -> np.ndarray:
        """Causal 0.5 Hz high-pass (and anti-alias low-pass when decimating) of
        (n_times, n_channels) volts; every stream sample must pass here, in order."""
        return self.conditioning(np.asarray(x, np.float32))

    @torch.no_grad()
    def __call__(self, x: np.ndarray) -> np.ndarray:
        """Node activity for conditioned, decimated samples.

        Parameters
        ----------
        x : array, shape (n_steps, n_channels)
            Conditioned EEG (volts) at the network's rate, consecutive with the last call.

        Returns
        -------
        array, shape (n_steps, n_nodes), float32
            Node activity (mV-equivalent: the network's output times the input scale and
            the training gain).
        """
        if len(x) == 0:
            return np.empty((0, len(self.node_names)), np.float32)
        f = np.asarray(x, np.float32) @ self.features  # (n, 3 n_nodes)
        s = self.scaler(f)
        scaled = (f / s[:, None]).astype(np.float32)
        if self.runner is not None:
            y, self.state = self.runner(scaled, self.state)
        else:
            y, self.state = self.net(torch.from_numpy(scaled)[None].to(self.dtype), self.state)
            y = y[0].float().numpy()
        return (y * (s * self.gain)[:, None]).astype(np.float32)

    def provenance(self) -> dict[str, str]:
        ck = self.checkpoint
        return {"temporal_weights": ck.path.name, "temporal_sha256": ck.sha256,
                "temporal_rate_hz": f"{self.model_sfreq:g}",
                "temporal_precision": "bf16" if self.bf16 else "fp32",
                "temporal_backend": self.backend,
                "temporal_nodes": str(len(self.node_names))}
