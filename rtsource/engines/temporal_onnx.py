"""The temporal network, hop by hop, in ONNX Runtime (the streaming fast path on CPUs).

A 10 ms hop gives the temporal network 2-3 samples: its arithmetic is a few MFLOP, and in
PyTorch the cost is the dispatch of a dozen small operators and oneDNN's LSTM set-up per call
(about 1 ms in bf16 on a 2-core AMD EPYC with AVX-512-BF16, 1.3 ms in float32). ONNX Runtime
runs the same float32 graph, with the state as explicit inputs and outputs, in about a quarter
of that on one thread (``python bench/bench_temporal_network.py`` compares both). The PyTorch
module stays the reference: the tests compare the two over a long stream.
"""

from __future__ import annotations

import copy
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._util import atomic_write_bytes, cached_file
from .base import model_hash
from .export import _has_dynamo_flag

__all__ = ["TemporalOnnxRunner", "export_temporal_onnx"]

logger = logging.getLogger("rtsource")

#: Part of the cache file's name: raise it when the graph's inputs, outputs or export change.
EXPORT_VERSION = 1
#: Graph inputs and outputs (the state's three tensors in, the updated three out).
INPUTS = ("features", "conv_history", "lstm_h", "lstm_c")
OUTPUTS = ("nodes", "conv_history_out", "lstm_h_out", "lstm_c_out")

#: The numpy state carried between calls: (conv history (1, hidden, kernel − 1),
#: LSTM h (n_lstm, 1, hidden), LSTM c (n_lstm, 1, hidden)), float32.
OnnxState = tuple[np.ndarray, np.ndarray, np.ndarray]


class _Flat(nn.Module):
    """TemporalNet with its nested state as flat tensors (ONNX has no tuples)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x, hist, h, c):  # noqa: D102
        y, (new_hist, (h2, c2)) = self.net(x, (hist, (h, c)))
        return y, new_hist, h2, c2


def export_temporal_onnx(model: nn.Module, path: str | os.PathLike, opset: int = 17) -> Path:
    """Export a :class:`~rtsource.models.TemporalNet` for streaming, state in and out.

    Parameters
    ----------
    model : TemporalNet
        The network (a float32 copy is exported; the caller's module is not changed).
    path : path-like
        Output ``.onnx`` file (parent folders are created; written atomically).
    opset : int
        ONNX opset (17; the LSTM becomes ONNX's ``LSTM`` operator).

    Returns
    -------
    pathlib.Path
        The file. Inputs ``features`` (1, T, n_inputs) with T symbolic, ``conv_history``
        (1, hidden, kernel − 1), ``lstm_h`` and ``lstm_c`` (n_lstm, 1, hidden); outputs
        ``nodes`` (1, T, n_nodes) and the three updated state tensors, all float32.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).float().eval()
    spec = net.spec
    x = torch.zeros(1, 3, spec.n_inputs or 3 * spec.n_nodes)
    hist, (h, c) = net.initial_state()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated; it still writes this graph (LSTM and
        # all) without the extra package the torch.export-based one needs.
        warnings.simplefilter("ignore")
        kwargs = {"dynamo": False} if _has_dynamo_flag() else {}
        torch.onnx.export(_Flat(net), (x, hist, h, c), buffer, input_names=list(INPUTS),
                          output_names=list(OUTPUTS),
                          dynamic_axes={"features": {1: "time"}, "nodes": {1: "time"}},
                          opset_version=int(opset), do_constant_folding=True, **kwargs)
    atomic_write_bytes(path, buffer.getvalue())
    logger.info("Exported the temporal network to %s (opset %d)", path, opset)
    return path


class TemporalOnnxRunner:
    """Run a TemporalNet call by call in ONNX Runtime (CPU, float32), carrying its state.

    Parameters
    ----------
    model : TemporalNet
        The network; exported once to ``<rtsource cache>/onnx/TemporalNet-<hash>-stream-v1.onnx``
        through :func:`rtsource._util.cached_file` (SHA-256 sidecar; a damaged or unloadable
        file is exported again, with a warning) and reused (the hash covers the
        configuration and the weights).
    threads : int
        Intra-op threads (1: at 2-3 samples per call a second thread costs more in
        synchronisation than it saves, and the pipeline's other threads need the other core).

    Raises
    ------
    OSError
        The export cannot be written (the message names the folder and the fixes).
    RuntimeError
        The exporter failed (the message names the PyTorch fallback).

    Shapes
    ------
    runner(x, state=None) -> (y, state)
        x : (T, n_inputs) float32 scaled features; y : (T, n_nodes) float32; state: the
        :data:`OnnxState` to pass to the next call (None: zero state, as
        :meth:`TemporalNet.initial_state`).
    """

    def __init__(self, model: nn.Module, *, threads: int = 1) -> None:
        import onnxruntime as ort  # a core dependency, imported lazily (heavy)

        net = copy.deepcopy(model).float().eval()
        hist, (h, c) = net.initial_state()
        self._zero: OnnxState = (hist.numpy(), h.numpy(), c.numpy())
        warm_up = np.zeros((1, net.inp.in_features), np.float32)

        def load(path: Path):  # a file that does not load or run is exported again
            self._session = self._open(ort, path, threads)
            self(warm_up)
            return self._session

        self.path, _ = cached_file(
            "onnx", f"TemporalNet-{model_hash(net)}-stream-v{EXPORT_VERSION}", ".onnx",
            lambda path: _export(net, path), load=load)

    @staticmethod
    def _open(ort, path: Path, threads: int):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        return ort.InferenceSession(str(path), sess_options=opts,
                                    providers=["CPUExecutionProvider"])

    def __call__(self, x: np.ndarray, state: OnnxState | None = None
                 ) -> tuple[np.ndarray, OnnxState]:
        hist, h, c = state if state is not None else self._zero
        y, hist, h, c = self._session.run(OUTPUTS, {
            "features": np.ascontiguousarray(x, np.float32)[None], "conv_history": hist,
            "lstm_h": h, "lstm_c": c})
        return y[0], (hist, h, c)


def _export(net: nn.Module, path: Path) -> None:
    fix = ("run the network in PyTorch: refine.backend = 'cpu' (--backend cpu for run and "
           "bench; a [refine] table in the --config file for localize and soz)")
    try:
        export_temporal_onnx(net, path)
    except OSError as err:
        raise OSError(
            f"Cannot write the temporal network's ONNX export to {str(path)!r} "
            f"({err.strerror or err}). Set RTSOURCE_CACHE to a writable folder, or "
            f"{fix}.") from err
    except Exception as err:  # the exporter's own failures (RuntimeError, ImportError...)
        raise RuntimeError(f"Exporting the temporal network to ONNX failed ({err}); "
                           f"{fix}.") from err
