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
    SlicedWasserstein,
    TrainConfig,
    default_checkpoint_path,
    load_train_config,
    lr_factor,
    magnitude_distribution,
    masked_l1,
    optimizer_step,
    peak_deficit,
    peak_kl,
    ship_checkpoint,
    step_sim_config,
    train,
    training_loss,
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


def test_sliced_wasserstein_matches_pot_and_grows_with_peak_distance():
    ot = pytest.importorskip("ot")
    g = torch.Generator().manual_seed(0)
    pos = torch.randn(300, 3, generator=g) * 50.0
    sw = SlicedWasserstein(pos, n_projections=16, seed=1)
    a = torch.rand(2, 300, generator=g)
    b = torch.rand(2, 300, generator=g)
    a, b = a / a.sum(1, keepdim=True), b / b.sum(1, keepdim=True)
    ours = sw(a, b)
    for i in range(2):  # POT, an independent implementation, with the same directions
        ref = ot.sliced_wasserstein_distance(pos, pos, a[i], b[i], p=1,
                                             projections=sw.projections)
        assert float(ours[i]) == pytest.approx(float(ref), rel=1e-4)
    # a peak moved away from the true one costs more the farther it goes (L1 cannot see it)
    line = torch.zeros(50, 3)
    line[:, 0] = torch.arange(50) * 7.0
    sw1 = SlicedWasserstein(line, n_projections=8, seed=2)
    truth = torch.zeros(1, 50)
    truth[0, 10] = 1.0
    costs = []
    for j in (11, 20, 40):
        guess = torch.zeros(1, 50)
        guess[0, j] = 1.0
        costs.append(float(sw1(guess, truth)))
    assert costs[0] < costs[1] < costs[2]
    assert costs[2] / costs[0] == pytest.approx(30.0, rel=1e-4)


def test_training_loss_distribution_term():
    vox = torch.stack(torch.meshgrid(torch.arange(4, 12), torch.arange(4, 12), torch.arange(4, 12),
                                     indexing="ij"), -1).reshape(-1, 3)
    mapper = VolumeMapper(vox)
    pos = vox.float() * 7.0
    sw = SlicedWasserstein(pos, n_projections=32)
    target = torch.zeros(2, 3, 32, 32, 32)
    target[:, 0, 6, 6, 6] = 1.0
    cfg = TrainConfig(loss="l1", distribution_loss="sliced_wasserstein", distribution_weight=0.5)
    perfect, parts = training_loss(target.clone(), target, mapper.flat_index, cfg, sw)
    assert parts["sliced_nemd"] < 1e-3
    flat, parts_flat = training_loss(torch.full_like(target, 0.1), target, mapper.flat_index,
                                     cfg, sw)
    assert parts_flat["sliced_nemd"] == pytest.approx(1.0, abs=1e-3)  # a flat map scores 1
    near = torch.zeros_like(target, requires_grad=True)
    with torch.no_grad():
        near[:, 0, 7, 6, 6] = 1.0
    far = torch.zeros_like(target)
    far[:, 0, 11, 11, 11] = 1.0
    l_near, p_near = training_loss(near, target, mapper.flat_index, cfg, sw)
    l_far, p_far = training_loss(far, target, mapper.flat_index, cfg, sw)
    assert p_near["l1"] == pytest.approx(p_far["l1"])  # voxel-wise L1 cannot tell them apart
    assert p_near["sliced_nemd"] < p_far["sliced_nemd"]
    l_near.backward()
    assert torch.isfinite(near.grad).all() and near.grad.abs().sum() > 0
    dist = magnitude_distribution(target, mapper.flat_index)
    assert torch.allclose(dist.sum(1), torch.ones(2))
    with pytest.raises(ValueError, match="SlicedWasserstein"):
        training_loss(target, target, mapper.flat_index, cfg, None)


def test_peak_term_charges_a_misplaced_peak_and_ignores_amplitude():
    vox = torch.stack(torch.meshgrid(torch.arange(4, 12), torch.arange(4, 12), torch.arange(4, 12),
                                     indexing="ij"), -1).reshape(-1, 3)
    fi = VolumeMapper(vox).flat_index
    # a smooth patch around voxel (6, 6, 6), the truth
    grid = torch.stack(torch.meshgrid(*[torch.arange(32.0)] * 3, indexing="ij"))

    def patch(c, amp=1.0):
        d2 = sum((grid[i] - c[i]) ** 2 for i in range(3))
        vol = torch.zeros(1, 3, 32, 32, 32)
        vol[0, 1] = amp * torch.exp(-d2 / (2 * 1.5 ** 2))
        return vol

    truth = patch((6, 6, 6))
    assert float(peak_kl(truth, truth, fi)) == pytest.approx(0.0, abs=1e-5)
    # the overall amplitude does not matter (NEMD, MLE and AUC ignore it too) ...
    assert float(peak_kl(patch((6, 6, 6), 0.01), truth, fi)) == pytest.approx(0.0, abs=1e-4)
    assert float(peak_kl(-3.0 * truth, truth, fi)) == pytest.approx(0.0, abs=1e-4)
    # ... the peak's place does, the more the farther it is
    costs = [float(peak_kl(patch(c), truth, fi)) for c in ((7, 6, 6), (9, 6, 6), (11, 11, 11))]
    assert 0 < costs[0] < costs[1] < costs[2]
    # a flat map misses the peak too, and a blurred one stands out less than the truth
    assert float(peak_kl(torch.full_like(truth, 0.1), truth, fi)) > costs[0]
    blurred = patch((6, 6, 6)) + 0.5 * patch((6, 6, 6), 1.0).roll(2, dims=2)
    assert float(peak_kl(blurred, truth, fi)) > 0.05
    # in the training loss, with its gradient
    cfg = TrainConfig(loss="weighted_l1", peak_loss="peak_kl", peak_weight=0.5)
    guess = patch((7, 6, 6)).requires_grad_(True)
    total, parts = training_loss(guess, truth, fi, cfg)
    assert float(total.detach()) == pytest.approx(parts["l1"] + 0.5 * parts["peak_kl"], rel=1e-5)
    total.backward()
    assert torch.isfinite(guess.grad).all()
    for term in (peak_kl, peak_deficit):  # each term on its own moves the prediction
        near = patch((7, 6, 6)).requires_grad_(True)
        term(near, truth, fi).sum().backward()
        assert torch.isfinite(near.grad).all() and near.grad.abs().sum() > 0
    _, plain = training_loss(guess, truth, fi, TrainConfig(loss="weighted_l1"))
    assert "peak_kl" not in plain
    # the soft arg-max deficit: least on the truth's own map whatever the amplitude (not 0: the
    # heat of a smooth map reaches the voxels around its peak), growing with the distance
    deficit = [float(peak_deficit(patch(c, a), truth, fi))
               for c, a in (((6, 6, 6), 0.01), ((7, 6, 6), 1.0), ((9, 6, 6), 1.0),
                            ((11, 11, 11), 1.0))]
    assert deficit[0] == pytest.approx(float(peak_deficit(truth, truth, fi)), abs=1e-4)
    assert deficit[0] < 0.05 and deficit[0] < deficit[1] < deficit[2] < deficit[3] <= 1.0
    # linear in the heat map: hedging between two places costs the average of committing
    # to each (the forward KL, which covers both modes, charges the hedge far less)
    two = patch((6, 6, 6)) + patch((11, 11, 11))
    hedge = float(peak_deficit(two, truth, fi))
    assert deficit[0] < hedge < deficit[3]
    assert float(peak_kl(two, truth, fi)) < 0.5 * float(peak_kl(patch((11, 11, 11)), truth, fi))
    total, parts = training_loss(guess, truth, fi, replace(cfg, peak_loss="peak_deficit"))
    assert float(total.detach()) == pytest.approx(parts["l1"] + 0.5 * parts["peak_deficit"],
                                                  rel=1e-5)
    with pytest.raises(ValueError, match="peak_loss"):
        TrainConfig(peak_loss="argmax")
    with pytest.raises(ValueError, match="peak_sharpness"):
        TrainConfig(peak_loss="peak_kl", peak_sharpness=0.0)


def test_a_non_finite_loss_stops_training_before_the_step():
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    before = [p.detach().clone() for p in model.parameters()]
    x = torch.ones(2, 3)
    with pytest.raises(FloatingPointError, match=r"step 7; lower train\.lr"):
        optimizer_step(model(x).sum() * float("nan"), model, opt, 1.0, 7, "lower train.lr")
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))
    assert not opt.state  # no moment was updated either
    value = optimizer_step(model(x).sum(), model, opt, 1.0, 8, "lower train.lr")
    assert value == pytest.approx(float(2 * before[0].sum() + 2 * before[1].sum()))
    assert not torch.equal(before[0], model.weight)


def test_curriculum_widens_to_the_configured_ranges():
    sim = SimConfig(n_sources_min=1, n_sources_max=21, snr_db_min=0.0, snr_db_max=20.0)
    cfg = TrainConfig(curriculum_steps=100, simulate=sim)
    start, mid, end = (step_sim_config(cfg, s) for s in (0, 50, 100))
    assert (start.n_sources_max, start.snr_db_min) == (1, 15.0)
    assert (mid.n_sources_max, mid.snr_db_min) == (11, 7.5)
    assert end == sim
    assert step_sim_config(replace(cfg, curriculum_steps=0), 0) == sim


class _StepSim:
    """Stands in for the simulator (the loader is under test): a batch that names its step's
    random stream."""

    def sample(self, batch_size, generator, cfg=None):
        from types import SimpleNamespace

        x = torch.rand(batch_size, generator=generator)
        return SimpleNamespace(inputs=x, targets=x + cfg.n_sources_max)


def test_simulation_workers_keep_the_step_order_from_a_resume_point():
    from rtsource.train import _Batches, _step_generator

    cfg = TrainConfig(batch_size=2, curriculum_steps=20)
    for workers in (0, 2, 3):
        loader = torch.utils.data.DataLoader(_Batches(_StepSim(), cfg, 0, 3, 11), batch_size=None,
                                             num_workers=workers)
        got = list(loader)
        assert [int(s) for s, _, _ in got] == list(range(3, 11)), workers
        for step, x, y in got:  # each batch is the one of its own step (seed, curriculum)
            assert torch.equal(x, torch.rand(2, generator=_step_generator(cfg.seed, 0, int(step))))
            n_max = step_sim_config(cfg, int(step)).n_sources_max
            assert torch.allclose(y - x, torch.full((2,), float(n_max)))


def test_config_values_are_checked(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="bf61")
    with pytest.raises(ValueError, match="distribution_loss"):
        TrainConfig(distribution_loss="emd")
    with pytest.raises(FileNotFoundError, match="init_from"):
        TrainConfig(init_from=str(tmp_path / "missing.safetensors"))
    monkeypatch.chdir(REPO)
    peaks = load_train_config(REPO / "configs" / "train-w8-peaks.toml")
    assert peaks.loss == "weighted_l1" and peaks.threads == 2
    assert load_checkpoint(peaks.init_from).width == 8
    stage3 = load_train_config(REPO / "configs" / "train-w8-stage3.toml")
    assert stage3.peak_loss == "none" and stage3.simulate.snr_db_max == 30.0
    assert load_checkpoint(stage3.init_from).width == 8


def test_old_configurations_with_amp_still_load(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text("[train]\namp = true\n")
    assert load_train_config(old).precision == "auto"
    old.write_text("[train]\namp = false\n")
    assert load_train_config(old).precision == "fp32"
    old.write_text("[train]\namp = false\nprecision = \"bf16\"\n")
    with pytest.raises(ValueError, match="amp"):
        load_train_config(old)
    with pytest.raises(ValueError, match="workers"):
        TrainConfig(workers=-1)


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


@pytest.mark.slow
def test_simulation_worker_fine_tuning_and_bf16(tmp_path):
    """A simulation worker changes nothing but the speed; init_from starts from given weights;
    bf16 autocast follows float32 closely on the same batches."""
    base = replace(_tiny(tmp_path / "w0"), max_steps=3, precision="fp32",
                   distribution_loss="sliced_wasserstein", loss="weighted_l1")
    a = train(base, progress=False)
    b = train(replace(base, out_dir=str(tmp_path / "w1"), workers=1), progress=False)
    sa = load_checkpoint(a.checkpoint).model.state_dict()
    sb = load_checkpoint(b.checkpoint).model.state_dict()
    for k in sa:
        assert torch.allclose(sa[k], sb[k], rtol=1e-5, atol=1e-7), k
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history])
    assert "sliced_nemd" in a.history[0] and "val_sliced_nemd" in a.metrics
    # fine-tuning: with a negligible learning rate the weights stay those of init_from
    c = train(replace(base, out_dir=str(tmp_path / "ft"), init_from=str(a.checkpoint), lr=1e-12,
                      max_steps=1), progress=False)
    sc = load_checkpoint(c.checkpoint).model.state_dict()
    for k in sa:
        assert torch.allclose(sa[k], sc[k], rtol=1e-4, atol=1e-6), k
    # bf16 autocast (+ channels-last): the same first-step loss within a few per cent
    bf = train(replace(base, out_dir=str(tmp_path / "bf"), precision="bf16", max_steps=1),
               progress=False)
    assert bf.metrics["precision"] == "bf16" and a.metrics["precision"] == "fp32"
    assert bf.history[0]["l1"] == pytest.approx(a.history[0]["l1"], rel=0.03)


@pytest.mark.slow
def test_init_from_a_narrower_checkpoint_widens_it(tmp_path):
    """init_from a width-8 checkpoint into a width-16 run starts from its Net2WiderNet copy
    (rtsource.models.piunet.widen, seeded by train.seed)."""
    from rtsource.models import save_checkpoint, widen
    from rtsource.models.piunet import PIUNet

    torch.manual_seed(4)
    narrow = PIUNet(8)
    src = tmp_path / "w8.safetensors"
    save_checkpoint(narrow, src, spacing_mm=7.0)
    cfg = replace(_tiny(tmp_path / "w16"), width=16, init_from=str(src), lr=1e-12,
                  max_steps=1, precision="fp32")
    run = train(cfg, progress=False)
    ck = load_checkpoint(run.checkpoint)
    assert ck.width == 16
    expected = widen(narrow, 16, seed=cfg.seed).state_dict()
    got = ck.model.state_dict()
    for k in expected:
        assert torch.allclose(got[k], expected[k], rtol=1e-4, atol=1e-6), k
    for width in (12, 4):  # refused before the forward bank is built, naming the setting
        with pytest.raises(ValueError, match="train.init_from .* width-8 network"):
            train(replace(cfg, width=width, out_dir=str(tmp_path / f"w{width}")), progress=False)
    from rtsource.train_temporal import SHIPPED_TEMPORAL

    with pytest.raises(ValueError, match="train.init_from .* not a 3D-PIUNet"):
        train(replace(cfg, init_from=str(SHIPPED_TEMPORAL), out_dir=str(tmp_path / "t")),
              progress=False)


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
