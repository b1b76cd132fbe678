"""``rtsource adapt``: the temporal network fine-tuned on real resting EEG (DeepSIF's 4 × 1 s,
75 channels, written to a FIF with its electrode positions)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import mne
import numpy as np
import pytest
import torch

from rtsource.adapt import AdaptConfig, adapt, forward_residual, minnorm_residual
from rtsource.models.checkpoint import SHIPPED_CHECKPOINT, load_checkpoint
from rtsource.train_temporal import SHIPPED_TEMPORAL

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "deepsif-resting"

pytestmark = [
    pytest.mark.skipif(not (DATA / "realistic_noise.mat").exists(),
                       reason=f"the resting EEG of {DATA} is not on this machine"),
    pytest.mark.skipif(not SHIPPED_TEMPORAL.exists(),
                       reason="the shipped temporal network is not in rtsource/data"),
]

#: quick settings: a clear effect in ~20 s of fine-tuning on one core
QUICK = {"steps": 40, "lr": 3e-4, "forward_weight": 2.0, "anchor_weight": 0.5,
         "batch_sim": 6, "batch_real": 3, "eval_windows": 12, "threads": 1}


def deepsif_raw(n_segments: int = 4) -> mne.io.Raw:
    """The resting EEG as one Raw: segments joined by MNE (BAD/EDGE boundary annotations),
    volts, electrode positions from ``electrode_75.mat`` fitted onto the template head."""
    from scipy.io import loadmat

    data = loadmat(str(DATA / "realistic_noise.mat"))["data"][:n_segments]  # microvolts
    el = loadmat(str(DATA / "electrode_75.mat"), simplify_cells=True)["eloc75"]
    labels = [str(e["labels"]) for e in el]
    # EEGLAB axes (X nose, Y left, Z up; mm) -> MNE head frame (x right, y nose; m)
    pos = np.array([[-e["Y"], e["X"], e["Z"]] for e in el], float) / 1000.0
    tpl = mne.channels.make_standard_montage("colin27_1005").get_positions()["ch_pos"]
    lut = {k.lower(): v for k, v in tpl.items()}
    common = [i for i, lab in enumerate(labels) if lab.lower() in lut]
    q = np.array([lut[labels[i].lower()] for i in common])
    pc, qc = pos[common].mean(0), q.mean(0)
    scale = np.sum((pos[common] - pc) * (q - qc)) / np.sum((pos[common] - pc) ** 2)
    pos = (pos - pc) * scale + qc
    info = mne.create_info(labels, 500.0, "eeg")
    raw = mne.concatenate_raws([mne.io.RawArray(seg.T * 1e-6, info.copy(), verbose="error")
                                for seg in data], verbose="error")
    raw.set_montage(mne.channels.make_dig_montage(dict(zip(labels, pos, strict=True)),
                                                  coord_frame="head"))
    return raw


@pytest.fixture(scope="module")
def recording(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("adapt") / "resting_raw.fif"
    deepsif_raw().save(path, verbose="error")
    return path


@pytest.fixture(scope="module")
def adapted(recording):
    torch.set_num_threads(1)
    out = recording.parent / "adapted.safetensors"
    return adapt(recording, "default", out, progress=False, **QUICK)


def test_forward_residual_physics():
    rng = np.random.default_rng(0)
    L = torch.from_numpy(rng.standard_normal((32, 10)))
    L -= L.mean(0, keepdims=True)
    y = torch.from_numpy(rng.standard_normal((2, 50, 10)))
    x = y @ L.T
    # explained exactly, whatever the scale of the estimate (alpha absorbs it)
    assert torch.allclose(forward_residual(3e-4 * y, x, L), torch.zeros(2, dtype=L.dtype),
                          atol=1e-9)
    # EEG orthogonal to everything the estimate projects to: nothing explained
    other = torch.from_numpy(rng.standard_normal((2, 50, 32)))
    r = forward_residual(y, other, L)
    assert torch.all((r > 0.5) & (r <= 1.0))
    # a regularised minimum-norm estimate explains most of EEG in the lead field's span
    assert float(minnorm_residual(x, L).max()) < 0.1


def test_bad_and_edge_annotations_split_the_recording():
    from rtsource.adapt import _good_spans

    info = mne.create_info(["Cz", "Pz"], 100.0, "eeg")
    raw = mne.io.RawArray(np.zeros((2, 1000)), info, first_samp=500, verbose="error")
    # onsets count from the first sample here (no measurement date): 2-3 s bad, a join at 6 s,
    # a note that is neither bad nor an edge
    raw.set_annotations(mne.Annotations([2.0, 6.0, 8.0], [1.0, 0.0, 0.5],
                                        ["BAD_muscle", "EDGE boundary", "eyes closed"]))
    assert _good_spans(raw) == [(0, 200), (300, 600), (600, 1000)]


def test_writes_loadable_checkpoint_with_provenance(adapted, recording):
    res = adapted
    assert res.path.exists()
    sidecar = Path(str(res.path) + ".sha256").read_text().split()[0]
    assert sidecar == res.sha256 == hashlib.sha256(res.path.read_bytes()).hexdigest()
    ck = load_checkpoint(res.path, architecture="TemporalNet")
    prov = ck.header["adaptation"]
    src = load_checkpoint(SHIPPED_TEMPORAL, architecture="TemporalNet")
    assert prov["source_checkpoint"] == SHIPPED_TEMPORAL.name
    assert prov["source_sha256"] == src.sha256
    for k in ("node_names", "node_kinds", "sfreq", "output_gain", "atlas"):
        assert ck.header[k] == src.header[k]
    assert prov["recording"] == recording.name
    raw = mne.io.read_raw(recording, preload=True, verbose="error")
    h = hashlib.sha256(json.dumps([raw.ch_names, float(raw.info["sfreq"])]).encode())
    h.update(np.ascontiguousarray(raw.get_data(), "<f8").tobytes())
    assert prov["recording_data_sha256"] == h.hexdigest()
    assert prov["n_channels"] == 75 and len(prov["channels"]) == 75
    # 4 stretches of 1 s (the boundaries split the recording): 3 used, the last held out
    assert prov["stretches"] == 4
    assert (prov["n_windows_train"], prov["n_windows_holdout"]) == (3, 1)
    assert prov["steps"] == QUICK["steps"] and prov["minutes"] > 0
    assert prov["loss_weights"] == {"sim": 1.0, "forward": QUICK["forward_weight"],
                                    "anchor": QUICK["anchor_weight"]}
    assert prov["before"]["forward_residual_holdout"] == res.before["forward_residual_holdout"]
    assert prov["after"]["sim"]["score"] == res.after["sim"]["score"]
    # the weights moved, but not far
    moved = [float((a - b).detach().abs().max()) for a, b in zip(ck.model.parameters(),
                                                         src.model.parameters(), strict=True)]
    assert max(moved) > 0


def test_localize_runs_with_adapted_checkpoint(adapted, recording):
    import rtsource

    raw = mne.io.read_raw(recording, preload=True, verbose="error")
    res = rtsource.localize(raw, method="temporal",
                            config={"refine": {"checkpoint": str(adapted.path)}})
    assert res.regions.shape == (raw.n_times // 2, 226)  # 500 Hz -> the network's 250 Hz
    assert np.all(np.isfinite(res.regions)) and np.abs(res.regions).max() > 0
    assert res.provenance["temporal_sha256"] == adapted.sha256


def test_adaptation_lowers_heldout_residual_within_tolerance(adapted):
    b, a = adapted.before, adapted.after
    assert a["forward_residual_holdout"] < b["forward_residual_holdout"]
    assert a["forward_residual_train"] < b["forward_residual_train"]
    tol = AdaptConfig().tolerance
    assert a["sim"]["loss"] <= b["sim"]["loss"] * (1 + tol)
    assert a["sim"]["score"] >= b["sim"]["score"] * (1 - tol)
    assert adapted.checks["met"]
    table = adapted.table()
    assert "held-out real windows" in table and "minimum-norm" in table


def test_command_line(recording, tmp_path, capsys):
    from rtsource.cli import main

    out = tmp_path / "cli.safetensors"
    rc = main(["adapt", str(recording), "--out", str(out), "--steps", "2", "--threads", "1",
               "--json", str(tmp_path / "r.json"), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert out.exists() and Path(str(out) + ".sha256").exists()
    assert "forward residual, held-out real windows" in text and str(out) in text
    assert json.loads((tmp_path / "r.json").read_text())["steps"] == 2


def test_too_short_for_a_heldout_split(tmp_path):
    path = tmp_path / "short_raw.fif"
    deepsif_raw(n_segments=2).save(path, verbose="error")
    with pytest.raises(ValueError, match="too short to adapt on.*1 training and 0 held-out"):
        adapt(path, progress=False)


def test_no_channel_positions(tmp_path):
    raw = deepsif_raw(n_segments=2)
    raw.set_montage(None)
    path = tmp_path / "nopos_raw.fif"
    raw.save(path, verbose="error")
    with pytest.raises(ValueError, match="no EEG channel positions.*--montage"):
        adapt(path, progress=False)


def test_wrong_checkpoint_architecture(recording):
    with pytest.raises(ValueError, match="holds a PIUNet network.*TemporalNet"):
        adapt(recording, SHIPPED_CHECKPOINT, progress=False)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        adapt(recording, recording.parent / "missing.safetensors", progress=False)


def test_invalid_settings(recording):
    with pytest.raises(ValueError, match="holdout = 1.5 must be a share between 0 and 1"):
        adapt(recording, holdout=1.5, progress=False)
    with pytest.raises(TypeError, match="file name or an mne.io.Raw"):
        adapt(np.zeros((75, 2000)), progress=False)
