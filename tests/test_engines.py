"""Tests of the engines: batching, parity of every backend available here, ONNX checks.

GPU and TensorRT tests skip themselves (with the reason) where CUDA or tensorrt is missing.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from rtsource.engines import (
    TENSORRT_ONNX_OPS,
    Engine,
    UnsupportedOnnxError,
    available_backends,
    check_onnx_for_tensorrt,
    export_onnx,
    make_engine,
    model_hash,
    plan_batches,
)
from rtsource.models import PIUNet

torch.set_num_threads(min(2, torch.get_num_threads()))

HAS_CUDA = torch.cuda.is_available()
HAS_OPENVINO = importlib.util.find_spec("openvino") is not None
needs_openvino = pytest.mark.skipif(not HAS_OPENVINO, reason="openvino is not installed")
HAS_TRT = importlib.util.find_spec("tensorrt") is not None
needs_cuda = pytest.mark.skipif(not HAS_CUDA, reason="no CUDA GPU visible to torch")
needs_trt = pytest.mark.skipif(
    not (HAS_CUDA and HAS_TRT),
    reason="TensorRT backend needs the 'tensorrt' package and a CUDA GPU "
    f"(tensorrt installed: {HAS_TRT}, CUDA: {HAS_CUDA})",
)


def tiny_net() -> PIUNet:
    """Same building blocks on a 16³ grid with two levels: fast to run and to compile."""
    torch.manual_seed(1)
    return PIUNet(width=4, grid_size=16, channel_mult=(1, 2), num_res_blocks=1).eval()


@pytest.fixture(scope="module")
def tiny() -> tuple[PIUNet, np.ndarray, np.ndarray]:
    net = tiny_net()
    x = np.random.default_rng(0).standard_normal((3, 3, 16, 16, 16)).astype(np.float32)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    return net, x, ref


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# ---------------------------------------------------------------------------- plumbing
def test_cache_files_are_written_whole_and_leave_no_temporary_file(tmp_path) -> None:
    from rtsource._util import atomic_write_bytes

    path = tmp_path / "model.onnx"
    atomic_write_bytes(path, b"first")
    atomic_write_bytes(path, b"second")  # a second writer replaces the file
    assert path.read_bytes() == b"second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx"]
    with pytest.raises(OSError):  # a folder where the file should go
        atomic_write_bytes(tmp_path, b"x")
    assert sorted(p.name for p in tmp_path.parent.iterdir() if p.name.endswith(".tmp")) == []


def test_plan_batches() -> None:
    assert plan_batches(1, (1,)) == [(0, 1, 1)]
    assert plan_batches(3, (1, 4)) == [(0, 3, 4)]
    assert plan_batches(5, (1, 4)) == [(0, 4, 4), (4, 1, 1)]
    assert plan_batches(9, (2, 4)) == [(0, 4, 4), (4, 4, 4), (8, 1, 2)]
    assert plan_batches(0, (1,)) == []


def test_model_hash_tracks_weights() -> None:
    a, b = tiny_net(), tiny_net()
    assert model_hash(a) == model_hash(b)
    with torch.no_grad():
        b.stem.bias[0] += 1e-3
    assert model_hash(a) != model_hash(b)


def test_available_backends_format() -> None:
    status = available_backends()
    assert set(status) == {"tensorrt", "cuda", "openvino", "onnx", "cpu", "eager"}
    for name, (ok, reason) in status.items():
        assert isinstance(ok, bool) and isinstance(reason, str) and reason, name
    assert status["eager"][0] and status["onnx"][0]
    assert status["cuda"][0] == HAS_CUDA


def test_make_engine_rejects_unknown_backend(tiny) -> None:
    with pytest.raises(ValueError, match="tensorrt") as info:
        make_engine(tiny[0], backend="tensorrtt")
    assert "Did you mean" in str(info.value)


def test_engine_validates_input(tiny) -> None:
    net, x, ref = tiny
    engine = make_engine(net, backend="eager")
    assert isinstance(engine, Engine)
    assert (engine.name, engine.dtype, engine.device) == ("eager", "float32", "cpu")
    with pytest.raises(ValueError, match=r"\(B, 3, 16, 16, 16\)"):
        engine(np.zeros((1, 3, 32, 32, 32), np.float32))
    with pytest.raises(TypeError):
        engine(torch.zeros(1, 3, 16, 16, 16))  # type: ignore[arg-type]
    out = engine(x.astype(np.float64))  # converted to float32
    assert out.dtype == np.float32 and rel_err(out, ref) < 1e-5


# ---------------------------------------------------------------------------- CPU backends
def test_cpu_compiled_matches_eager(tiny) -> None:
    net, x, ref = tiny
    before = {k: v.clone() for k, v in net.state_dict().items()}
    engine = make_engine(net, backend="cpu", batch_sizes=(2,), precision="fp32")
    assert (engine.name, engine.dtype, engine.device) == ("cpu", "float32", "cpu")
    out = engine(x)  # 3 samples over a prepared batch of 2: one full chunk + one padded
    assert out.shape == x.shape and out.dtype == np.float32
    assert rel_err(out, ref) < 1e-4
    assert rel_err(engine(x[:1]), ref[:1]) < 1e-4
    # Freezing works on the engine's copy: the caller's module is untouched.
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())
    assert all(p.requires_grad for p in net.parameters())


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - b) / np.linalg.norm(b))


def test_cpu_bf16_parity_with_fp32_reference(tiny) -> None:
    """bf16 (autocast, channels-last-3d) against eager float32: relative L2 <= 2e-2."""
    net, x, ref = tiny
    engine = make_engine(net, backend="cpu", batch_sizes=(1,), precision="bf16")
    assert engine.dtype == "bfloat16"
    out = engine(x)
    assert out.dtype == np.float32 and out.shape == x.shape
    assert 0 < rel_l2(out, ref) <= 2e-2  # bf16 really ran (not bit-equal) and stays close


def test_auto_precision_follows_the_cpu() -> None:
    from rtsource._util import cpu_features
    from rtsource.engines.torch_cpu import resolve_cpu_precision

    native = cpu_features()["bf16_native"]
    assert resolve_cpu_precision("auto") == ("bf16" if native else "fp32")
    assert resolve_cpu_precision("fp32") == "fp32"
    with pytest.raises(ValueError, match="precision = 'fp8'"):
        resolve_cpu_precision("fp8")


@needs_openvino
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-4), ("bf16", 2e-2)])
def test_openvino_engine_matches_eager(tiny, tmp_path, precision, tol) -> None:
    net, x, ref = tiny
    engine = make_engine(net, backend="openvino", batch_sizes=(1, 2), precision=precision,
                         cache_dir=tmp_path)
    assert engine.name == "openvino" and engine.dtype == {"fp32": "float32",
                                                          "bf16": "bfloat16"}[precision]
    out = engine(x)  # 3 samples over prepared batches of 2 and 1
    assert out.shape == x.shape and out.dtype == np.float32
    assert rel_l2(out, ref) <= tol
    assert rel_l2(engine(x[:1]), ref[:1]) <= tol


@pytest.mark.parametrize("batch_sizes", [(1,), (1, 2)])
def test_onnx_engine_matches_eager(tiny, tmp_path, batch_sizes) -> None:
    net, x, ref = tiny
    engine = make_engine(net, backend="onnx", batch_sizes=batch_sizes, cache_dir=tmp_path)
    assert (engine.name, engine.dtype, engine.device) == ("onnx", "float32", "cpu")
    assert engine.threads <= 2
    out = engine(x)
    assert out.shape == x.shape and rel_err(out, ref) < 1e-4
    # The export is cached by model hash and reused.
    files = list((tmp_path / "onnx").glob("*.onnx"))
    assert len(files) == 1 and model_hash(net) in files[0].name
    again = make_engine(net, backend="onnx", cache_dir=tmp_path, threads=1)
    assert again.threads == 1 and rel_err(again(x[:1]), ref[:1]) < 1e-4


def test_onnx_engine_exports_a_damaged_cached_file_again(tiny, tmp_path, caplog) -> None:
    net, x, ref = tiny
    make_engine(net, backend="onnx", batch_sizes=(1,), cache_dir=tmp_path)
    (path,) = (tmp_path / "onnx").glob("*.onnx")
    path.write_bytes(path.read_bytes()[:100])  # a truncated file, e.g. a full disk
    with caplog.at_level("WARNING", logger="rtsource"):
        engine = make_engine(net, backend="onnx", batch_sizes=(1,), cache_dir=tmp_path)
    assert "checksum mismatch" in caplog.text and engine.path == path
    assert rel_err(engine(x), ref) < 1e-4


def test_onnx_engine_from_static_file(tiny, tmp_path) -> None:
    from rtsource.engines.ort import OnnxRuntimeEngine

    net, x, ref = tiny
    path = export_onnx(net, tmp_path / "static.onnx", batch=2, dynamic_batch=False)
    engine = OnnxRuntimeEngine(path, input_shape=(3, 16, 16, 16))
    assert engine.batch_sizes == (2,)
    assert rel_err(engine(x), ref) < 1e-4  # 3 samples: padded to two batches of 2


@pytest.mark.slow
def test_make_engine_auto(tiny) -> None:
    net, x, ref = tiny
    engine = make_engine(net, backend="auto")
    expected = ("tensorrt" if (HAS_TRT and HAS_CUDA) else "cuda" if HAS_CUDA
                else "openvino" if HAS_OPENVINO else "cpu")
    assert engine.name == expected
    tol = 1e-4 if engine.dtype == "float32" else 2e-2
    assert rel_err(engine(x), ref) < tol


# ---------------------------------------------------------------------------- ONNX checks
@pytest.mark.parametrize("dynamic_batch", [False, True])
def test_exported_graph_passes_tensorrt_check(dynamic_batch: bool, tmp_path) -> None:
    import onnx

    path = export_onnx(PIUNet.from_preset(8), tmp_path / "m.onnx", dynamic_batch=dynamic_batch)
    model = onnx.load(str(path))
    assert check_onnx_for_tensorrt(model) == []
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "InstanceNormalization", "AveragePool", "Resize", "MatMul", "Softmax"} <= ops
    assert ops <= TENSORRT_ONNX_OPS
    assert model.opset_import[0].version == 17
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims[1:]] == [3, 32, 32, 32]
    assert (dims[0].dim_param == "batch") if dynamic_batch else (dims[0].dim_value == 1)


def test_tensorrt_check_reports_unsupported_ops() -> None:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])
    nodes = [
        helper.make_node("Unique", ["x"], ["u"]),
        helper.make_node("Resize", ["u", "", "s"], ["y"], mode="cubic"),
    ]
    scales = helper.make_tensor("s", TensorProto.FLOAT, [1], [2.0])
    graph = helper.make_graph(nodes, "g", [x], [y], initializer=[scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    problems = check_onnx_for_tensorrt(model, raise_on_error=False)
    assert any("Unique" in p for p in problems)
    assert any("cubic" in p for p in problems)
    with pytest.raises(UnsupportedOnnxError, match="Unique"):
        check_onnx_for_tensorrt(model)
    model.opset_import[0].version = 21
    assert any("opset 21" in p for p in check_onnx_for_tensorrt(model, raise_on_error=False))
    assert isinstance(model, onnx.ModelProto)


# ---------------------------------------------------------------------------- GPU backends
@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("precision,tol", [("fp32", 1e-3), ("fp16", 2e-2), ("bf16", 5e-2)])
def test_cuda_engine_matches_eager(tiny, precision: str, tol: float) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("bf16 not supported on this GPU")
    net, x, ref = tiny
    engine = make_engine(net, backend="cuda", batch_sizes=(1, 2), precision=precision)
    assert engine.name == "cuda" and engine.device.startswith("cuda")
    out = engine(x)
    assert out.shape == x.shape and rel_err(out, ref) < tol
    np.testing.assert_array_equal(engine(x), out)  # graph replay is deterministic


@pytest.mark.gpu
@needs_cuda
def test_cuda_engine_width8_fp16(tmp_path) -> None:
    torch.manual_seed(0)
    net = PIUNet.from_preset(8).eval()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32, 32)).astype(np.float32)
    with torch.inference_mode():
        ref = net(torch.from_numpy(x)).numpy()
    engine = make_engine(net, backend="cuda", batch_sizes=(1, 2))
    assert rel_err(engine(x), ref) < 2e-2


@pytest.mark.gpu
@needs_cuda
def test_fp16_onnx_export_has_fp32_islands(tmp_path) -> None:
    import onnx

    path = export_onnx(
        PIUNet.from_preset(8), tmp_path / "h.onnx", dtype=torch.float16, device="cuda"
    )
    model = onnx.load(str(path))
    assert check_onnx_for_tensorrt(model) == []
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in model.graph.initializer)


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("typing", ["auto", "strong"])
def test_tensorrt_engine_matches_eager(tiny, tmp_path, typing: str) -> None:
    net, x, ref = tiny
    engine = make_engine(
        net, backend="tensorrt", batch_sizes=(1, 2), cache_dir=tmp_path, typing=typing
    )
    assert engine.name == "tensorrt" and engine.dtype == "float16"
    out = engine(x)
    assert out.shape == x.shape and rel_err(out, ref) < 2e-2
    # Second build hits the cache (same plan file, verified by its hash).
    plans = list((tmp_path / "tensorrt").glob("*.plan"))
    assert len(plans) == 1
    again = make_engine(
        net, backend="tensorrt", batch_sizes=(1, 2), cache_dir=tmp_path, typing=typing
    )
    np.testing.assert_allclose(again(x), out, rtol=0, atol=1e-3 * np.abs(out).max())
    assert list((tmp_path / "tensorrt").glob("*.plan")) == plans


@pytest.mark.gpu
@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_rebuilds_corrupt_cache(tiny, tmp_path) -> None:
    net, x, ref = tiny
    engine = make_engine(net, backend="tensorrt", cache_dir=tmp_path)
    plan = engine.plan_path
    plan.write_bytes(plan.read_bytes()[:-10] + b"0123456789")
    rebuilt = make_engine(net, backend="tensorrt", cache_dir=tmp_path)
    assert rel_err(rebuilt(x[:1]), ref[:1]) < 2e-2


def test_fill_padded_writes_batch_and_zeroes_the_rest():
    from rtsource.engines.base import fill_padded, pad_batch

    dest = np.full((4, 3), 7.0, np.float32)
    batch = np.arange(6, dtype=np.float32).reshape(2, 3)
    fill_padded(dest, batch)
    np.testing.assert_array_equal(dest, pad_batch(batch, 4))


def test_precision_a_backend_cannot_run_is_refused(tiny) -> None:
    with pytest.raises(ValueError, match="precision = 'bf16' is not offered by the onnx"):
        make_engine(tiny[0], backend="onnx", precision="bf16")
