"""Tests of the 3D-PIUNet network, the volume mapping and checkpoints."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rtsource.models import (
    PIUNET_PRESETS,
    ChecksumMismatchError,
    PIUNet,
    VolumeMapper,
    count_parameters,
    load_checkpoint,
    read_header,
    save_checkpoint,
    widen,
)

torch.set_num_threads(min(2, torch.get_num_threads()))


def tiny_net() -> PIUNet:
    """Same building blocks on a 16³ grid with two levels: fast to run and to compile."""
    torch.manual_seed(1)
    return PIUNet(width=4, grid_size=16, channel_mult=(1, 2), num_res_blocks=1).eval()


def compile_frozen(net: torch.nn.Module):
    """torch.compile with Inductor weight freezing, as the cpu engine does."""
    import torch._inductor.config as inductor_config

    compiled = torch.compile(net, fullgraph=True, dynamic=False)

    def run(x: torch.Tensor) -> torch.Tensor:
        with inductor_config.patch(freezing=True):
            return compiled(x)

    return run


@pytest.fixture(scope="module")
def net8() -> PIUNet:
    torch.manual_seed(0)
    return PIUNet.from_preset(8).eval()


@pytest.fixture(scope="module")
def example(net8: PIUNet) -> tuple[torch.Tensor, torch.Tensor]:
    """A batch of 2 volumes and the eager output (computed once: eager batch-1 is slow)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 32, 32, 32, generator=gen)
    with torch.inference_mode():
        y = net8(x)
    return x, y


def rel_err(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


# ---------------------------------------------------------------------------- network
def _random_affine(net: PIUNet, seed: int) -> PIUNet:
    """GroupNorm scales and shifts away from 1 and 0, so that copying them is tested."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.GroupNorm):
                m.weight.copy_(1 + 0.3 * torch.randn(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
    return net


@pytest.mark.parametrize("narrow_width, wide_width, grid", [(8, 16, 32), (32, 64, 8)])
def test_widen_copies_the_narrow_function(narrow_width: int, wide_width: int, grid: int) -> None:
    """The wide copy computes the narrow function (GroupNorm grouping kept, attention's
    scale corrected); 8 -> 16 is the case where the reference grouping would differ."""
    torch.manual_seed(2)
    mult = (1, 2, 4) if grid == 32 else (1, 2)
    narrow = _random_affine(PIUNet(width=narrow_width, grid_size=grid, channel_mult=mult,
                                   num_res_blocks=2 if grid == 32 else 1), 5).eval()
    wide = widen(narrow, wide_width, noise=0.0).eval()
    assert wide.config == dict(narrow.config, width=wide_width, norm_width=narrow_width)
    assert count_parameters(wide) > 3.5 * count_parameters(narrow)
    assert wide.stem.weight.shape[:2] == (wide_width, 3)
    assert wide.head[-1].weight.shape[:2] == (3, wide_width)
    x = torch.randn(1, 3, grid, grid, grid, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y_narrow, y_wide = narrow(x), wide(x)
        stem_n, stem_w = narrow.stem(x), wide.stem(x)
    assert rel_err(y_wide, y_narrow) < 1e-4
    # channel j of the wide stem is a copy of narrow channel j // 2
    assert torch.allclose(stem_w[:, 0::2], stem_n, atol=1e-6)
    assert torch.allclose(stem_w[:, 1::2], stem_n, atol=1e-6)
    # the symmetry-breaking noise moves the output only a little, and splits the copies
    noisy = widen(narrow, wide_width).eval()
    with torch.no_grad():
        y_noisy = noisy(x)
    assert 0 < rel_err(y_noisy, y_narrow) < 2e-2
    assert not torch.equal(noisy.stem.weight[0::2], noisy.stem.weight[1::2])
    # the reference grouping at the wide width is a different network from 8 to 16
    if narrow_width == 8:
        regrouped = PIUNet(width=16)
        regrouped.load_state_dict(wide.state_dict())
        with torch.no_grad():
            assert rel_err(regrouped.eval()(x), y_narrow) > 1e-2


def test_widen_twice_and_by_three_keeps_the_function() -> None:
    torch.manual_seed(7)
    narrow = _random_affine(PIUNet(width=8, grid_size=8, channel_mult=(1, 2),
                                   num_res_blocks=1), 8).eval()
    state = torch.random.get_rng_state()
    twice = widen(widen(narrow, 16, noise=0.0), 32, noise=0.0).eval()
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG is untouched
    thrice = widen(narrow, 24, noise=0.0).eval()
    assert twice.norm_width == 8 and thrice.norm_width == 8
    x = torch.randn(1, 3, 8, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        y = narrow(x)
        assert rel_err(twice(x), y) < 1e-4 and rel_err(thrice(x), y) < 1e-4


def test_norm_width_checkpoint_round_trip(tmp_path) -> None:
    torch.manual_seed(4)
    wide = widen(PIUNet(width=8), 16)
    assert PIUNet(width=8).config.get("norm_width") is None  # the reference's header unchanged
    save_checkpoint(wide, tmp_path / "w16.safetensors", spacing_mm=7.0)
    back = load_checkpoint(tmp_path / "w16.safetensors").model
    assert back.config == wide.config and back.norm_width == 8
    with pytest.raises(ValueError, match="norm_width"):
        PIUNet(width=16, norm_width=6)


def test_widen_refuses_other_widths(net8: PIUNet) -> None:
    for width in (8, 4, 12):
        with pytest.raises(ValueError, match="multiple of 8"):
            widen(net8, width)


def test_output_shape(example: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, y = example
    assert y.shape == (2, 3, 32, 32, 32)
    assert y.dtype == torch.float32
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("width,expected_m", [(8, 0.70), (16, 2.77), (32, 11.07)])
def test_parameter_counts_match_reference(width: int, expected_m: float) -> None:
    n = count_parameters(PIUNet.from_preset(width))
    # The reference counts its constant timestep-embedding MLP (folded away here: ~2 %).
    assert abs(n / 1e6 - expected_m) / expected_m < 0.05
    assert n < PIUNET_PRESETS[width].reference_params
    assert PIUNET_PRESETS[width].reference_params / 1e6 == pytest.approx(expected_m, abs=0.005)


def test_architecture_levels(net8: PIUNet) -> None:
    convs = [m for m in net8.modules() if isinstance(m, torch.nn.Conv3d)]
    assert all(c.stride == (1, 1, 1) for c in convs), "no strided convolutions"
    assert {c.out_channels for c in convs if c.kernel_size == (3, 3, 3)} >= {8, 16, 32, 3}
    assert sum(1 for _ in net8.modules() if type(_).__name__ == "AttentionBlock") == 2 + 1 + 3
    assert (
        PIUNet(**{**net8.config, "channel_mult": tuple(net8.config["channel_mult"])}).config
        == net8.config
    )


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="num_heads"):
        PIUNet(width=3, channel_mult=(1,))  # 3 channels cannot hold 4 heads
    with pytest.raises(ValueError, match="grid_size"):
        PIUNet(width=8, grid_size=30)
    with pytest.raises(ValueError, match="preset"):
        PIUNet.from_preset(12)


def test_torch_compile_matches_eager() -> None:
    # Same settings as the cpu engine (Inductor + freezing), so the kernel cache is shared.
    net = tiny_net()
    for p in net.parameters():
        p.requires_grad_(False)
    x = torch.randn(2, 3, 16, 16, 16)
    with torch.inference_mode():
        ref = net(x)
        out = compile_frozen(net)(x)
    assert rel_err(out, ref) < 1e-4


@pytest.mark.slow
def test_torch_compile_width8_matches_eager(
    net8: PIUNet, example: tuple[torch.Tensor, torch.Tensor]
) -> None:
    x, ref = example
    with torch.inference_mode():
        out = compile_frozen(net8)(x)
    assert rel_err(out, ref) < 1e-4


def test_torch_export(net8: PIUNet, example: tuple[torch.Tensor, torch.Tensor]) -> None:
    x, ref = example
    program = torch.export.export(net8, (x,))
    with torch.inference_mode():
        out = program.module()(x)
    assert rel_err(out, ref) < 1e-5


def test_onnx_export_matches_torch(
    net8: PIUNet, example: tuple[torch.Tensor, torch.Tensor], tmp_path
) -> None:
    import onnxruntime as ort

    from rtsource.engines import check_onnx_for_tensorrt, export_onnx

    x, ref = example
    path = export_onnx(net8, tmp_path / "piunet8.onnx", batch=1, dynamic_batch=True, opset=17)
    assert check_onnx_for_tensorrt(path) == []
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    out = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
    assert out.shape == (2, 3, 32, 32, 32)
    assert rel_err(out, ref) < 1e-4


# ---------------------------------------------------------------------------- volume
def _vox(n: int = 500, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    flat = rng.choice(29**3, size=n, replace=False)
    return np.stack(np.unravel_index(flat, (29, 29, 29)), axis=1) + 1  # inside 32³


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_volume_round_trip(kind: str) -> None:
    vox = _vox()
    mapper = VolumeMapper(vox)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, len(vox), 3)).astype(np.float32)
    x[1] /= np.abs(x[1]).max()  # max |x| = 1: scale 1, exact round trip
    inp = torch.from_numpy(x) if kind == "torch" else x
    vol, scale = mapper.to_volume(inp)
    assert tuple(vol.shape) == (3, 3, 32, 32, 32) and vol.dtype in (np.float32, torch.float32)
    vol_np = np.asarray(vol)
    # Every source lands in its own voxel, scaled to max |x| = 1; the rest stays zero.
    assert np.abs(vol_np).reshape(3, -1).max(axis=1) == pytest.approx(1.0)
    i, j, k = vox.T
    np.testing.assert_array_equal(
        vol_np[:, :, i, j, k], (x * np.asarray(scale)[:, None, None]).transpose(0, 2, 1)
    )
    assert np.count_nonzero(vol_np[0].any(axis=0)) == len(vox)
    back = np.asarray(mapper.from_volume(vol, scale))
    assert back.shape == x.shape
    np.testing.assert_array_equal(back[1], x[1])
    np.testing.assert_allclose(back, x, rtol=1e-6, atol=0)


def test_volume_numpy_and_torch_agree() -> None:
    vox = _vox(300, seed=2)
    mapper = VolumeMapper(vox)
    x = np.random.default_rng(3).standard_normal((2, 300, 3)).astype(np.float32)
    v_np, s_np = mapper.to_volume(x)
    v_t, s_t = mapper.to_volume(torch.from_numpy(x))
    np.testing.assert_allclose(v_t.numpy(), v_np, rtol=1e-6)
    np.testing.assert_allclose(s_t.numpy(), s_np, rtol=1e-6)


@pytest.mark.parametrize("kind", ["numpy", "torch"])
def test_volume_zero_input_is_finite(kind: str) -> None:
    mapper = VolumeMapper(_vox(50))
    x = np.zeros((2, 50, 3), np.float32)
    x[1, 3, 0] = -2.0
    inp = torch.from_numpy(x) if kind == "torch" else x
    vol, scale = mapper.to_volume(inp)
    assert np.all(np.isfinite(np.asarray(vol))) and np.all(np.isfinite(np.asarray(scale)))
    assert np.asarray(scale)[0] == 1.0 and np.asarray(scale)[1] == 0.5
    back = np.asarray(mapper.from_volume(vol, scale))
    np.testing.assert_array_equal(back, x)


def test_volume_mask_and_validation() -> None:
    vox = _vox(40)
    mapper = VolumeMapper(vox)
    assert mapper.brain_mask.shape == (1, 1, 32, 32, 32) and mapper.brain_mask.dtype == torch.bool
    assert int(mapper.brain_mask.sum()) == 40
    assert mapper.brain_mask_numpy()[0, 0, vox[0, 0], vox[0, 1], vox[0, 2]]
    with pytest.raises(ValueError, match="share a voxel"):
        VolumeMapper(np.vstack([vox, vox[:1]]))
    with pytest.raises(ValueError, match="outside the grid"):
        VolumeMapper(np.array([[0, 0, 32]]))
    with pytest.raises(ValueError, match=r"\(B, 40, 3\)"):
        mapper.to_volume(np.zeros((1, 41, 3), np.float32))


# ---------------------------------------------------------------------------- checkpoint
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_checkpoint_round_trip(net8: PIUNet, tmp_path, dtype: str) -> None:
    path = tmp_path / "w8.safetensors"
    digest = save_checkpoint(
        net8,
        path,
        spacing_mm=7.0,
        training_config={"lr": 1e-5, "steps": 10},
        metrics={"nemd": 0.21},
        dtype=dtype,
    )
    # the `sha256sum -c` format: digest, two spaces, file name
    assert (tmp_path / "w8.safetensors.sha256").read_text() == f"{digest}  w8.safetensors\n"
    ckpt = load_checkpoint(path, expected_width=8)
    assert ckpt.sha256 == digest and ckpt.width == 8
    assert ckpt.header["grid_shape"] == [32, 32, 32] and ckpt.header["spacing_mm"] == 7.0
    assert ckpt.training_config == {"lr": 1e-5, "steps": 10} and ckpt.metrics == {"nemd": 0.21}
    ref, got = net8.state_dict(), ckpt.model.state_dict()
    assert set(ref) == set(got)
    for k in ref:
        if dtype == "float32":
            assert torch.equal(ref[k], got[k]), k
        else:
            torch.testing.assert_close(got[k], ref[k], rtol=1e-3, atol=1e-4)
    assert read_header(path)["dtype"] == dtype
    assert load_checkpoint(path, expected_sha256=digest).sha256 == digest


def test_checkpoint_mismatch_errors(net8: PIUNet, tmp_path) -> None:
    path = tmp_path / "w8.safetensors"
    save_checkpoint(net8, path, spacing_mm=7.0)
    with pytest.raises(ValueError, match=r"'width' is 8, expected 16"):
        load_checkpoint(path, expected_width=16)
    with pytest.raises(
        ValueError, match=r"'grid_shape' is \(32, 32, 32\), expected \(29, 29, 29\)"
    ):
        load_checkpoint(path, expected_grid=(29, 29, 29))


def test_checkpoint_version_mismatch(net8: PIUNet, tmp_path) -> None:
    from safetensors.torch import save_file

    from rtsource._util import file_sha256

    path = tmp_path / "future.safetensors"
    header = {
        "format_version": 99,
        "architecture": "PIUNet",
        "width": 8,
        "grid_shape": [32, 32, 32],
        "model_config": net8.config,
    }
    save_file(
        {k: v.contiguous() for k, v in net8.state_dict().items()},
        str(path),
        metadata={"rtsource": json.dumps(header)},
    )
    (tmp_path / "future.safetensors.sha256").write_text(file_sha256(path))
    with pytest.raises(ValueError, match=r"'format_version' is 99, expected 1"):
        load_checkpoint(path)


def test_checkpoint_corruption_and_missing_hash(net8: PIUNet, tmp_path) -> None:
    path = tmp_path / "w8.safetensors"
    digest = save_checkpoint(net8, path, spacing_mm=7.0)
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF  # flip one weight byte
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatchError) as info:
        load_checkpoint(path)
    msg = str(info.value)
    assert (
        str(path) in msg
        and digest in msg
        and len([w for w in msg.split() if len(w.strip(",.")) == 64]) >= 2
    )
    with pytest.raises(ChecksumMismatchError):
        load_checkpoint(path, expected_sha256=digest)
    (tmp_path / "w8.safetensors.sha256").unlink()
    with pytest.raises(FileNotFoundError, match="sha256"):
        load_checkpoint(path)
    assert load_checkpoint(path, verify=False).width == 8  # inspection stays possible
