"""Training: loss, schedule, configuration, checkpoints, resume, shipped weights."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from rtsource.config import HeadModelConfig
from rtsource.models.checkpoint import load_checkpoint, read_header
from rtsource.models.volume import VolumeMapper
from rtsource.simulate import SimConfig
from rtsource.train import (
    TrainConfig,
    default_checkpoint_path,
    load_train_config,
    lr_factor,
    masked_l1,
    ship_checkpoint,
    train,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]


def test_masked_l1_ignores_voxels_outside_the_brain():
    vox = torch.tensor([[1, 1, 1], [2, 3, 4], [10, 10, 10]])
    mapper = VolumeMapper(vox)
    target = torch.zeros(2, 3, 32, 32, 32)
    target[0, :, 2, 3, 4] = torch.tensor([1.0, -2.0, 0.5])
    pred = target.clone()
    pred[:, :, 0, 0, 0] = 100.0  # outside the brain: no effect
    assert float(masked_l1(pred, target, mapper.flat_index)) == 0.0
    pred[1, 0, 10, 10, 10] = 0.9  # inside
    assert float(masked_l1(pred, target, mapper.flat_index)) == pytest.approx(0.9 / (2 * 3 * 3))
    # the weighted loss charges errors at active voxels more than plain L1 does
    zero = torch.zeros_like(target)
    plain = float(masked_l1(zero, target, mapper.flat_index, "l1"))
    weighted = float(masked_l1(zero, target, mapper.flat_index, "weighted_l1", 10.0))
    assert weighted > plain
    with pytest.raises(ValueError, match="loss"):
        masked_l1(zero, target, mapper.flat_index, "l2")


def test_learning_rate_schedule():
    cfg = TrainConfig(warmup_steps=10, max_steps=110, min_lr_ratio=0.1)
    assert lr_factor(0, cfg) == pytest.approx(0.1)
    assert lr_factor(9, cfg) == pytest.approx(1.0)
    assert lr_factor(60, cfg) == pytest.approx(0.55)
    assert lr_factor(110, cfg) == pytest.approx(0.1)
    factors = [lr_factor(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(factors, factors[1:], strict=False))


def test_train_config_loads_and_rejects_typos(tmp_path):
    cfg = load_train_config(REPO / "configs" / "train-w8.toml", max_steps=7)
    assert cfg.width == 8 and cfg.max_steps == 7 and cfg.loss == "l1"
    assert cfg.simulate.montages[0] == "biosemi32"
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nbatch_sise = 4\n")
    with pytest.raises(ValueError, match="batch_size"):
        load_train_config(bad)
    bad.write_text("[training]\nwidth = 8\n")
    with pytest.raises(ValueError, match="section"):
        load_train_config(bad)
    with pytest.raises(FileNotFoundError):
        load_train_config(tmp_path / "missing.toml")
    d = cfg.to_dict()
    assert list(d["simulate"]["headmodels"][0]["conductivity"]) == [0.3, 0.006, 0.3]


def _tiny(out: Path) -> TrainConfig:
    sim = SimConfig(montages=("biosemi32",), jitter_variants=1, n_sources_max=3,
                    headmodels=(HeadModelConfig(conductor="sphere", conductivity=(0.3, 0.006, 0.3)),
                                HeadModelConfig(conductor="sphere",
                                                conductivity=(0.33, 0.0165, 0.33))))
    return TrainConfig(width=8, batch_size=2, lr=1e-3, warmup_steps=1, max_steps=4,
                       val_samples=2, log_steps=1, out_dir=str(out), device="cpu", seed=3,
                       checkpoint_minutes=60.0, simulate=sim)


@pytest.mark.slow
def test_resumed_run_equals_an_uninterrupted_one(tmp_path):
    full = train(_tiny(tmp_path / "full"), progress=False)
    assert full.step == 4 and full.checkpoint.exists()
    cfg = _tiny(tmp_path / "split")
    first = train(cfg, progress=False, max_steps=2)
    assert first.step == 2
    ck = load_checkpoint(first.checkpoint)
    assert ck.metrics["step"] == 2 and ck.training_config["train"]["batch_size"] == 2
    assert ck.training_config["simulate"]["montages"] == ["biosemi32"]
    assert (tmp_path / "split" / "step-000002.safetensors").exists()
    second = train(cfg, resume=True, progress=False)
    assert second.step == 4
    assert [h["step"] for h in second.history] == [3, 4]  # continued, not restarted
    a = load_checkpoint(full.checkpoint).model.state_dict()
    b = load_checkpoint(second.checkpoint).model.state_dict()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7), k
    # the weights moved away from their initialisation
    torch.manual_seed(3)
    from rtsource.models.piunet import PIUNet

    init = PIUNet(8).state_dict()
    assert any(not torch.allclose(init[k], a[k]) for k in a)
    # float16 shipping keeps the network's output
    shipped = ship_checkpoint(full.checkpoint, tmp_path / "ship.safetensors",
                              metrics={"note": "test"})
    assert read_header(shipped)["dtype"] == "float16"
    assert shipped.stat().st_size < 0.6 * full.checkpoint.stat().st_size
    net32 = load_checkpoint(full.checkpoint).model
    net16 = load_checkpoint(shipped).model
    x = torch.randn(1, 3, 32, 32, 32) * 0.1
    with torch.no_grad():
        y32, y16 = net32(x), net16(x)
    assert float((y32 - y16).abs().max()) < 1e-2 * float(y32.abs().max()) + 1e-4
    assert load_checkpoint(shipped).metrics["note"] == "test"


def test_resume_without_checkpoint_fails_clearly(tmp_path):
    with pytest.raises(FileNotFoundError, match="resume"):
        train(replace(_tiny(tmp_path), max_steps=1), resume=True, progress=False)


def test_shipped_weights_load_when_present():
    path = default_checkpoint_path()
    assert path.name.endswith(".safetensors") and path.parent.name == "data"
    if not path.exists():
        pytest.skip("no shipped weights in this checkout")
    ck = load_checkpoint(path)
    assert ck.header["dtype"] == "float16" and ck.width == 8
    assert ck.training_config["simulate"]["inverse"]["method"] == "eloreta"
    assert path.stat().st_size < 5 * 2**20


@pytest.mark.slow
def test_distributed_training_with_torchrun_on_cpu(tmp_path):
    """The DDP path (gloo on CPU, two processes) trains and writes one checkpoint."""
    import os
    import subprocess
    import sys

    cfg = tmp_path / "ddp.toml"
    cfg.write_text(f"""
[train]
width = 8
batch_size = 1
max_steps = 2
warmup_steps = 1
val_samples = 1
out_dir = "{tmp_path / 'run'}"
device = "cpu"
[simulate]
montages = ["biosemi32"]
jitter_variants = 1
n_sources_max = 3
[[simulate.headmodels]]
conductor = "sphere"
conductivity = [0.3, 0.006, 0.3]
[[simulate.headmodels]]
conductor = "sphere"
conductivity = [0.33, 0.0165, 0.33]
""")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "rtsource.cli", "train", str(cfg), "--no-progress"],
        capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Trained PIUNet") == 1  # only rank 0 reports
    ck = load_checkpoint(tmp_path / "run" / "last.safetensors")
    assert ck.metrics["world_size"] == 2 and ck.metrics["samples_seen"] == 4
