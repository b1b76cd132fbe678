"""TensorRT 10 on a CUDA GPU: ONNX → serialized engine (cached) → execution contexts.

Build: the network is exported to ONNX (opset 17, dynamic batch axis), parsed with
TensorRT's ONNX parser and built with one optimisation profile per requested batch size
(min = opt = max, so each size gets kernels tuned for it). Two precision modes:

- ``typing="weak"`` (TensorRT 10.x; the default where ``BuilderFlag.FP16`` exists): a float32
  ONNX graph, the builder's FP16 flag, and the normalisation, reduction and softmax layers
  pinned to float32 (``layer.precision`` + ``set_output_type`` with
  ``PREFER_PRECISION_CONSTRAINTS``).
- ``typing="strong"`` (TensorRT ≥ 10.12 recommends it; 11 requires it): the graph is
  exported in float16 on the GPU with explicit float32 islands (GroupNorm, softmax; see
  :class:`rtsource.models.piunet.GroupNorm32`) and float32 input/output, and built as a
  strongly typed network.

The serialized engine is cached under ``cache_dir/tensorrt/`` keyed by GPU name, compute
capability, TensorRT version, ONNX hash, batch sizes and precision, with a SHA-256
sidecar; a corrupt or stale file is rebuilt, never used.

Run: one execution context per batch size (bound to that size's profile), device buffers
owned by torch, pinned host buffers, tensor addresses set once, ``execute_async_v3`` on the
engine's CUDA stream, one synchronisation per call.

This module was written against the TensorRT 10 Python API documentation; TensorRT could
not be installed where it was written, so it has not been run. Its tests skip themselves
where ``tensorrt`` does not import or no GPU is visible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from .._util import atomic_write_bytes, file_sha256, optional_import
from .base import Engine, fill_padded, input_shape_of, model_hash
from .export import check_onnx_for_tensorrt, export_onnx

__all__ = ["TensorRTEngine", "build_serialized_engine", "import_tensorrt", "tensorrt_status"]

logger = logging.getLogger("rtsource")

Typing = Literal["auto", "weak", "strong"]
Precision = Literal["fp16", "fp32"]


def import_tensorrt() -> Any:
    """Import ``tensorrt`` (≥ 10) or raise ImportError with an install hint."""
    trt = optional_import("tensorrt", "gpu", "The TensorRT backend")
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise ImportError(
            f"TensorRT {trt.__version__} is installed, but the TensorRT backend needs "
            "TensorRT 10 or newer (name-based tensor API). Install it with: "
            "pip install 'rtsource[gpu]'"
        )
    return trt


def tensorrt_status() -> tuple[bool, str]:
    """Whether the TensorRT backend can run here, and why (not)."""
    import importlib.util

    if importlib.util.find_spec("tensorrt") is None:
        return False, "the Python package 'tensorrt' is not installed (pip install 'rtsource[gpu]')"
    if not torch.cuda.is_available():
        return False, "tensorrt is installed but torch sees no CUDA GPU"
    try:
        trt = import_tensorrt()
    except ImportError as err:
        return False, str(err)
    return True, f"TensorRT {trt.__version__} on {torch.cuda.get_device_name()}"


class _TrtLogger:
    """Route TensorRT's log into the package logger (errors, warnings; info as debug)."""

    def __new__(cls, trt: Any) -> Any:
        severity = trt.ILogger.Severity

        class Logger(trt.ILogger):
            def __init__(self) -> None:
                trt.ILogger.__init__(self)

            def log(self, level: Any, msg: str) -> None:
                if level in (severity.INTERNAL_ERROR, severity.ERROR):
                    logger.error("TensorRT: %s", msg)
                elif level == severity.WARNING:
                    logger.warning("TensorRT: %s", msg)
                elif level == severity.INFO:
                    logger.debug("TensorRT: %s", msg)

        return Logger()


def _resolve_typing(trt: Any, typing: Typing) -> Literal["weak", "strong"]:
    if typing not in ("auto", "weak", "strong"):
        raise ValueError(f"typing={typing!r} is not valid; choose 'auto', 'weak' or 'strong'.")
    if typing != "auto":
        return typing
    return "weak" if hasattr(trt.BuilderFlag, "FP16") else "strong"


def _fp32_layer_types(trt: Any) -> set[Any]:
    names = ("NORMALIZATION", "REDUCE", "SOFTMAX")
    return {getattr(trt.LayerType, n) for n in names if hasattr(trt.LayerType, n)}


def build_serialized_engine(
    onnx_path: str | os.PathLike,
    *,
    input_shape: tuple[int, ...],
    batch_sizes: Sequence[int],
    precision: Precision = "fp16",
    typing: Literal["weak", "strong"] = "weak",
    workspace_bytes: int = 1 << 30,
    trt_logger: Any = None,
) -> bytes:
    """Parse an ONNX file and build a serialized TensorRT engine.

    Parameters
    ----------
    onnx_path : path-like
        ONNX model with a dynamic (or matching static) batch axis.
    input_shape : tuple of int
        Per-sample input shape, e.g. (3, 32, 32, 32).
    batch_sizes : sequence of int
        One optimisation profile per size, in this order (profile i ↔ batch_sizes[i]).
    precision : {"fp16", "fp32"}
        With ``typing="weak"``: enable the FP16 builder flag (normalisation, reductions and
        softmax kept in float32). Ignored for ``typing="strong"`` (the graph's types rule).
    typing : {"weak", "strong"}
        Weakly typed build with builder precision flags, or strongly typed network.
    workspace_bytes : int
        Workspace memory-pool limit.

    Returns
    -------
    bytes
        The serialized engine (plan).
    """
    trt = import_tensorrt()
    trt_logger = trt_logger or _TrtLogger(trt)
    builder = trt.Builder(trt_logger)
    flags = 0
    if typing == "strong":
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, trt_logger)
    if hasattr(trt, "OnnxParserFlag") and hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
        # TensorRT's own normalisation layer instead of the InstanceNormalization plugin.
        parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise RuntimeError(
            f"TensorRT's ONNX parser rejected {str(onnx_path)!r}: " + "; ".join(errors)
        )
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_bytes))
    if typing == "weak" and precision == "fp16":
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.PREFER_PRECISION_CONSTRAINTS)
        keep = _fp32_layer_types(trt)
        pinned = 0
        for i in range(network.num_layers):
            layer = network.get_layer(i)
            floating = all(
                layer.get_output(j).dtype in (trt.float32, trt.float16)
                for j in range(layer.num_outputs)
            )
            if layer.type in keep and floating:  # never pin shape (integer) computations
                layer.precision = trt.float32
                for j in range(layer.num_outputs):
                    layer.set_output_type(j, trt.float32)
                pinned += 1
        logger.debug("TensorRT: %d normalisation/reduction/softmax layers kept in float32", pinned)
    input_name = network.get_input(0).name
    for size in batch_sizes:
        shape = (int(size), *input_shape)
        profile = builder.create_optimization_profile()
        profile.set_shape(input_name, shape, shape, shape)
        config.add_optimization_profile(profile)
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError(
            f"TensorRT failed to build an engine from {str(onnx_path)!r} (see the log above)."
        )
    logger.info("TensorRT engine built in %.1f s", time.perf_counter() - t0)
    return bytes(memoryview(serialized))


@dataclass
class _Slot:
    size: int
    context: Any
    host_in: torch.Tensor
    host_out: torch.Tensor
    dev_in: torch.Tensor
    dev_out: torch.Tensor


class TensorRTEngine(Engine):
    """Run the network with TensorRT 10 on a CUDA GPU.

    Parameters
    ----------
    model : torch.nn.Module
        The network (exported to ONNX, checked with
        :func:`~rtsource.engines.export.check_onnx_for_tensorrt`, built, cached).
    batch_sizes : sequence of int
        One optimisation profile and execution context per size.
    precision : {"fp16", "fp32"}
        Compute precision.
    typing : {"auto", "weak", "strong"}
        ``"auto"``: weak typing with the FP16 builder flag where the installed TensorRT
        still has it (10.x), else a strongly typed float16 graph.
    cache_dir : path-like, optional
        Cache root (default: the ``rtsource`` cache folder); engines go in ``tensorrt/``.
    device : str or torch.device
        CUDA device.
    workspace_bytes : int
        Builder workspace limit.
    rebuild : bool
        Ignore a cached engine.
    """

    name = "tensorrt"

    def __init__(
        self,
        model: nn.Module,
        *,
        batch_sizes: Sequence[int] | int = (1,),
        precision: Precision = "fp16",
        typing: Typing = "auto",
        cache_dir: str | os.PathLike | None = None,
        device: str | torch.device = "cuda",
        workspace_bytes: int = 1 << 30,
        rebuild: bool = False,
    ) -> None:
        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise RuntimeError("The tensorrt backend needs a CUDA GPU; torch sees none.")
        if precision not in ("fp16", "fp32"):
            raise ValueError(f"precision={precision!r} is not valid; choose 'fp16' or 'fp32'.")
        super().__init__(batch_sizes, input_shape_of(model))
        dev = torch.device(device)
        if dev.index is None:
            dev = torch.device("cuda", torch.cuda.current_device())
        self._device = dev
        self.device = str(dev)
        self.precision = precision
        self.dtype = "float16" if precision == "fp16" else "float32"
        self.typing = _resolve_typing(trt, typing) if precision == "fp16" else "weak"
        self._trt = trt
        self._trt_logger = _TrtLogger(trt)
        self.gpu_name = torch.cuda.get_device_name(dev)
        capability = "{}.{}".format(*torch.cuda.get_device_capability(dev))

        from .._util import cache_dir as default_cache

        root = Path(cache_dir) if cache_dir is not None else default_cache()
        folder = root / "tensorrt"
        folder.mkdir(parents=True, exist_ok=True)
        mhash = model_hash(model)
        strong = self.typing == "strong"
        onnx_path = (
            folder / f"{type(model).__name__}-{mhash}-{'fp16' if strong else 'fp32'}-dyn.onnx"
        )
        if not onnx_path.exists():
            with torch.cuda.device(dev):
                export_onnx(
                    model,
                    onnx_path,
                    batch=1,
                    dynamic_batch=True,
                    dtype=torch.float16 if strong else torch.float32,
                    device=dev if strong else "cpu",
                )
        check_onnx_for_tensorrt(onnx_path)
        key_parts = {
            "gpu": self.gpu_name,
            "capability": capability,
            "tensorrt": str(trt.__version__),
            "onnx_sha256": file_sha256(onnx_path),
            "batch_sizes": list(self.batch_sizes),
            "precision": precision,
            "typing": self.typing,
            "input_shape": list(self.input_shape),
        }
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()[:20]
        plan_path = folder / f"{type(model).__name__}-{mhash}-{key}.plan"
        self.plan_path = plan_path
        blob = None if rebuild else _read_cached_plan(plan_path)
        if blob is None:
            with torch.cuda.device(dev):
                blob = build_serialized_engine(
                    onnx_path,
                    input_shape=self.input_shape,
                    batch_sizes=self.batch_sizes,
                    precision=precision,
                    typing=self.typing,
                    workspace_bytes=workspace_bytes,
                    trt_logger=self._trt_logger,
                )
            _write_cached_plan(plan_path, blob, key_parts)

        with torch.cuda.device(dev):
            self._runtime = trt.Runtime(self._trt_logger)
            self._engine = self._runtime.deserialize_cuda_engine(blob)
            if self._engine is None:
                raise RuntimeError(
                    f"TensorRT could not deserialize {str(plan_path)!r}; delete it to rebuild."
                )
            self._stream = torch.cuda.Stream(device=dev)
            self._input_name, self._output_name = self._io_names()
            self._slots = {
                size: self._make_slot(i, size) for i, size in enumerate(self.batch_sizes)
            }
            for size in self.batch_sizes:  # first run flushes lazy initialisation
                self._run(np.zeros((size, *self.input_shape), np.float32), size)
        logger.info(
            "tensorrt engine: %s, batch sizes %s, %s (%s typing) on %s",
            plan_path.name,
            self.batch_sizes,
            precision,
            self.typing,
            self.gpu_name,
        )

    def _io_names(self) -> tuple[str, str]:
        trt, eng = self._trt, self._engine
        inputs, outputs = [], []
        for i in range(eng.num_io_tensors):
            name = eng.get_tensor_name(i)
            (inputs if eng.get_tensor_mode(name) == trt.TensorIOMode.INPUT else outputs).append(
                name
            )
        if len(inputs) != 1 or len(outputs) != 1:
            raise RuntimeError(
                f"Expected one input and one output tensor; got {inputs} and {outputs}."
            )
        return inputs[0], outputs[0]

    def _torch_dtype(self, name: str) -> torch.dtype:
        trt = self._trt
        dtype = self._engine.get_tensor_dtype(name)
        table = {trt.float32: torch.float32, trt.float16: torch.float16}
        if hasattr(trt, "bfloat16"):
            table[trt.bfloat16] = torch.bfloat16
        if dtype not in table:
            raise RuntimeError(f"Tensor {name!r} has unsupported TensorRT dtype {dtype}.")
        return table[dtype]

    def _make_slot(self, profile: int, size: int) -> _Slot:
        shape = (size, *self.input_shape)
        context = self._engine.create_execution_context()
        if context is None:
            raise RuntimeError("TensorRT could not create an execution context (out of memory?).")
        context.set_optimization_profile_async(profile, self._stream.cuda_stream)
        if not context.set_input_shape(self._input_name, shape):
            raise RuntimeError(f"TensorRT rejected input shape {shape} for profile {profile}.")
        out_shape = tuple(context.get_tensor_shape(self._output_name))
        if out_shape != shape:
            raise RuntimeError(
                f"TensorRT output shape {out_shape} differs from the input's {shape}."
            )
        dev_in = torch.empty(shape, dtype=self._torch_dtype(self._input_name), device=self._device)
        dev_out = torch.empty(
            shape, dtype=self._torch_dtype(self._output_name), device=self._device
        )
        context.set_tensor_address(self._input_name, dev_in.data_ptr())
        context.set_tensor_address(self._output_name, dev_out.data_ptr())
        host_in = torch.zeros(shape, dtype=torch.float32, pin_memory=True)
        host_out = torch.zeros(shape, dtype=torch.float32, pin_memory=True)
        return _Slot(size, context, host_in, host_out, dev_in, dev_out)

    def _run(self, batch: np.ndarray, size: int) -> np.ndarray:
        slot = self._slots[size]
        count = batch.shape[0]
        fill_padded(slot.host_in.numpy(), batch)
        with torch.cuda.stream(self._stream):
            slot.dev_in.copy_(slot.host_in, non_blocking=True)
            if not slot.context.execute_async_v3(self._stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed (see the log).")
            slot.host_out.copy_(slot.dev_out, non_blocking=True)
        self._stream.synchronize()
        return slot.host_out.numpy()[:count].copy()

    def close(self) -> None:  # noqa: D102
        self._slots.clear()
        self._engine = None
        self._runtime = None


def _read_cached_plan(path: Path) -> bytes | None:
    sidecar = path.with_name(path.name + ".sha256")
    if not path.exists():
        logger.info("Building TensorRT engine %s: not cached yet", path.name)
        return None
    if not sidecar.exists() or sidecar.read_text().split()[:1] != [file_sha256(path)]:
        logger.warning("Rebuilding TensorRT engine %s: cached file is corrupt or stale", path.name)
        return None
    return path.read_bytes()


def _write_cached_plan(path: Path, blob: bytes, info: dict[str, Any]) -> None:
    atomic_write_bytes(path, blob)
    path.with_name(path.name + ".sha256").write_text(file_sha256(path) + "\n")
    path.with_suffix(".json").write_text(json.dumps(info, indent=2, sort_keys=True))
