"""ONNX export of the refinement network and a static check against TensorRT's ONNX parser.

:data:`TENSORRT_ONNX_OPS` lists the ONNX operators that TensorRT 10's ONNX parser
(``onnx-tensorrt``, ``docs/operators.md``, TensorRT 10.x support matrix) marks as supported.
:func:`check_onnx_for_tensorrt` compares an exported graph against it, and against the
restrictions that matter for this network (spatial rank of Conv/pooling, Resize modes,
constant axes), so an export that TensorRT cannot parse is caught on a machine without
TensorRT or a GPU.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .._util import atomic_write_bytes
from .base import input_shape_of

__all__ = [
    "TENSORRT_ONNX_OPS",
    "TENSORRT_OPSET_RANGE",
    "UnsupportedOnnxError",
    "check_onnx_for_tensorrt",
    "export_onnx",
]

logger = logging.getLogger("rtsource")

INPUT_NAME = "volume"
OUTPUT_NAME = "refined"

TENSORRT_OPSET_RANGE = (9, 20)
"""Opsets TensorRT 10.0's ONNX parser accepts (later 10.x releases accept up to 24)."""

# Operators marked "Y" in onnx-tensorrt's docs/operators.md for TensorRT 10.x (default ONNX
# domain). Operators added to the parser after 10.0 (Attention, RMSNormalization,
# RotaryEmbedding, TensorScatter) are left out so the check holds for every 10.x release.
TENSORRT_ONNX_OPS: frozenset[str] = frozenset(
    """
    Abs Acos Acosh Add And ArgMax ArgMin Asin Asinh Atan Atanh AveragePool
    BatchNormalization BlackmanWindow Cast CastLike Ceil Celu Clip Concat Constant
    ConstantOfShape Conv ConvTranspose Cos Cosh CumSum DeformConv DepthToSpace
    DequantizeLinear Div Dropout Einsum Elu Equal Erf Exp Expand EyeLike Flatten Floor
    Gather GatherElements GatherND Gelu Gemm GlobalAveragePool GlobalLpPool GlobalMaxPool
    Greater GreaterOrEqual GridSample GroupNormalization GRU HammingWindow HannWindow
    HardSigmoid HardSwish Hardmax Identity If ImageScaler InstanceNormalization IsInf IsNaN
    LayerNormalization LeakyRelu Less LessOrEqual Log LogSoftmax Loop LRN LSTM
    LpNormalization LpPool MatMul Max MaxPool Mean MeanVarianceNormalization Min Mish Mod
    Mul Neg NonMaxSuppression NonZero Not OneHot Or Pad ParametricSoftplus Pow PRelu
    QuantizeLinear RandomNormal RandomNormalLike RandomUniform RandomUniformLike Range
    Reciprocal ReduceL1 ReduceL2 ReduceLogSum ReduceLogSumExp ReduceMax ReduceMean ReduceMin
    ReduceProd ReduceSum ReduceSumSquare Relu Reshape Resize ReverseSequence RNN RoiAlign
    Round STFT ScaledTanh Scan Scatter ScatterElements ScatterND Selu Shape Shrink Sigmoid
    Sign Sin Sinh Size Slice Softmax Softplus Softsign SpaceToDepth Split Sqrt Squeeze Sub
    Sum Tan Tanh ThresholdedRelu Tile TopK Transpose Trilu Unsqueeze Upsample Where Xor
    """.split()
)

_RESIZE_MODES = {"nearest", "linear"}
_RESIZE_COORD = {
    "half_pixel",
    "pytorch_half_pixel",
    "tf_half_pixel_for_nn",
    "asymmetric",
    "align_corners",
}
_RESIZE_NEAREST = {"floor", "ceil", "round_prefer_floor", "round_prefer_ceil"}


class UnsupportedOnnxError(ValueError):
    """The ONNX graph uses operators or attributes TensorRT's ONNX parser does not support."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            f"ONNX model {path!r} cannot be parsed by TensorRT 10: " + "; ".join(problems)
        )


def export_onnx(
    model: nn.Module,
    path: str | os.PathLike,
    batch: int = 1,
    dynamic_batch: bool = False,
    opset: int = 17,
    *,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
) -> Path:
    """Export the network to ONNX.

    Parameters
    ----------
    model : torch.nn.Module
        The network; exported in eval mode (the caller's module is not changed).
    path : path-like
        Output ``.onnx`` file (parent folders are created).
    batch : int
        Batch size of the example input (the static batch when ``dynamic_batch`` is False).
    dynamic_batch : bool
        Make axis 0 symbolic (``"batch"``); all other axes stay static.
    opset : int
        ONNX opset (17: GroupNorm becomes InstanceNormalization + affine, which every
        TensorRT 10 release parses).
    dtype : torch.dtype
        Precision of the exported graph's weights and compute (float16 for TensorRT's
        strongly typed builds; GroupNorm and softmax stay float32 inside the graph). Inputs
        and outputs are always float32.
    device : str or torch.device
        Device used for tracing (float16 export needs a CUDA device: PyTorch's CPU kernels
        do not cover every float16 operator).

    Returns
    -------
    pathlib.Path
        The written file. Input tensor ``"volume"`` and output ``"refined"``, both float32
        of shape (B, 3, 32, 32, 32).
    """
    import copy

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    net = copy.deepcopy(model).to(device=device, dtype=dtype).eval()
    if dtype != torch.float32:
        net = _CastWrapper(net, dtype)
    shape = input_shape_of(model)
    example = torch.zeros((int(batch), *shape), dtype=torch.float32, device=device)
    dynamic_axes = {INPUT_NAME: {0: "batch"}, OUTPUT_NAME: {0: "batch"}} if dynamic_batch else None
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of the torch.export-based one,
        # which needs the extra package onnxscript; both produce the same operators here.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
        kwargs: dict[str, Any] = {}
        if _has_dynamo_flag():
            kwargs["dynamo"] = False
        torch.onnx.export(
            net,
            (example,),
            buffer,
            input_names=[INPUT_NAME],
            output_names=[OUTPUT_NAME],
            dynamic_axes=dynamic_axes,
            opset_version=int(opset),
            do_constant_folding=True,
            **kwargs,
        )
    atomic_write_bytes(path, buffer.getvalue())
    logger.info("Exported ONNX model to %s (opset %d, %s)", path, opset, str(dtype).split(".")[-1])
    return path


class _CastWrapper(nn.Module):
    """float32 in/out around a reduced-precision network."""

    def __init__(self, net: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.net = net
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # noqa: D102
        return self.net(x.to(self.dtype)).float()


def _has_dynamo_flag() -> bool:
    import inspect

    try:
        return "dynamo" in inspect.signature(torch.onnx.export).parameters
    except (TypeError, ValueError):  # pragma: no cover
        return False


def _attr(node: Any, name: str, default: Any = None) -> Any:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def check_onnx_for_tensorrt(
    path: str | os.PathLike | Any,
    *,
    raise_on_error: bool = True,
    opset_range: tuple[int, int] = TENSORRT_OPSET_RANGE,
) -> list[str]:
    """Statically check that TensorRT 10's ONNX parser supports every node of a graph.

    Parameters
    ----------
    path : path-like or onnx.ModelProto
        The ONNX model.
    raise_on_error : bool
        Raise :class:`UnsupportedOnnxError` when something is unsupported (default);
        otherwise return the list of problems.
    opset_range : tuple of int
        Accepted default-domain opsets.

    Returns
    -------
    list of str
        Problems found (empty when TensorRT should parse the graph): unsupported operator
        types (with their count), custom domains, out-of-range opset, and violated
        restrictions (1-D Conv/pooling, Resize modes TensorRT lacks, non-constant axes).
    """
    import onnx

    if isinstance(path, onnx.ModelProto):
        model, name = path, "<in-memory model>"
    else:
        model, name = onnx.load(str(path)), str(path)
    problems: list[str] = []
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx") and not opset_range[0] <= imp.version <= opset_range[1]:
            problems.append(
                f"opset {imp.version} is outside the range TensorRT 10.0 parses "
                f"({opset_range[0]}..{opset_range[1]})"
            )
    constants = {init.name for init in model.graph.initializer}
    constants.update(o for n in model.graph.node if n.op_type == "Constant" for o in n.output)
    unsupported: dict[str, int] = {}
    for node in _all_nodes(model.graph):
        if node.domain not in ("", "ai.onnx"):
            unsupported[f"{node.domain}::{node.op_type}"] = (
                unsupported.get(f"{node.domain}::{node.op_type}", 0) + 1
            )
            continue
        if node.op_type not in TENSORRT_ONNX_OPS:
            unsupported[node.op_type] = unsupported.get(node.op_type, 0) + 1
            continue
        problems.extend(_restrictions(node, constants))
    for op, count in sorted(unsupported.items()):
        problems.append(f"operator {op} is not supported ({count} node{'s' * (count > 1)})")
    if problems and raise_on_error:
        raise UnsupportedOnnxError(name, problems)
    return problems


def _all_nodes(graph: Any):
    for node in graph.node:
        yield node
        for a in node.attribute:
            if a.g is not None and a.g.node:
                yield from _all_nodes(a.g)
            for g in a.graphs:
                yield from _all_nodes(g)


def _restrictions(node: Any, constants: set[str]) -> list[str]:
    op, where = node.op_type, f"{node.op_type} node {node.name or '(unnamed)'}"
    out: list[str] = []
    if op in ("AveragePool", "MaxPool", "LpPool"):
        kernel = _attr(node, "kernel_shape")
        if kernel is not None and len(kernel) not in (2, 3):
            out.append(f"{where}: only 2-D or 3-D pooling is supported (kernel {list(kernel)})")
        dil = _attr(node, "dilations")
        if dil is not None and any(d != 1 for d in dil):
            out.append(f"{where}: dilations must be all ones")
    elif op == "Resize":
        mode = _attr(node, "mode", b"nearest")
        coord = _attr(node, "coordinate_transformation_mode", b"half_pixel")
        nearest = _attr(node, "nearest_mode", b"round_prefer_floor")
        mode, coord, nearest = (
            v.decode() if isinstance(v, bytes) else v for v in (mode, coord, nearest)
        )
        if mode not in _RESIZE_MODES:
            out.append(f"{where}: mode {mode!r} is not supported (nearest or linear)")
        if coord not in _RESIZE_COORD:
            out.append(f"{where}: coordinate_transformation_mode {coord!r} is not supported")
        if mode == "nearest" and nearest not in _RESIZE_NEAREST:
            out.append(f"{where}: nearest_mode {nearest!r} is not supported")
        if _attr(node, "antialias", 0):
            out.append(f"{where}: antialiasing is not supported")
    elif op.startswith("Reduce") and len(node.input) > 1 and node.input[1]:
        if node.input[1] not in constants:
            out.append(f"{where}: axes must be an initializer")
    elif (
        op == "Dropout" and len(node.input) > 2 and node.input[2] and node.input[2] not in constants
    ):
        out.append(f"{where}: is_training must be an initializer")
    return out
