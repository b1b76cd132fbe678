"""The command line: every command documented, errors reported without tracebacks."""

from __future__ import annotations

import json

import pytest

from rtsource.cli import COMMANDS, main


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_command_has_help(name, capsys):
    with pytest.raises(SystemExit) as exc:
        main([name, "--help"])
    assert exc.value.code == 0
    assert "usage: rtsource " + name in capsys.readouterr().out


def test_headmodel_command(capsys):
    assert main(["headmodel", "--conductor", "sphere"]) == 0
    out = capsys.readouterr().out
    assert "5218 sources" in out and "Brainnetome BN246: 246 regions" in out


def test_error_is_one_line_without_traceback(capsys):
    assert main(["headmodel", "--montage", "biosemi-64", "--conductor", "sphere"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("rtsource headmodel: error: Unknown montage 'biosemi-64'")
    assert "Traceback" not in err


def test_localize_command(tmp_path, capsys):
    import mne
    import numpy as np

    names = ["Fp1", "Fz", "Cz", "Pz", "O1", "O2", "C3", "C4", "T7", "T8", "P3", "P4"]
    raw = mne.io.RawArray(np.random.default_rng(0).normal(size=(12, 500)) * 1e-5,
                          mne.create_info(names, 250.0, "eeg"))
    raw.set_montage("colin27_1005")
    path = tmp_path / "x_raw.fif"
    raw.save(path)
    out_npz = tmp_path / "res.npz"
    assert main(["localize", str(path), "--conductor", "sphere", "--top", "3",
                 "--out", str(out_npz)]) == 0
    assert "top 3 regions" in capsys.readouterr().out
    res = np.load(out_npz)
    assert res["regions"].shape == (500, 246)
    prov = json.loads(str(res["provenance"]))
    assert prov["method"] == "eloreta" and prov["headmodel_hash"] and prov["atlas"]


def test_sys_info_reports_backends_with_reasons(capsys):
    import json

    assert main(["sys-info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info["backends"]) >= {"tensorrt", "cuda", "onnx", "cpu"}
    for b in info["backends"].values():
        assert b["detail"]  # every backend says why (not) available
    assert info["packages"]["mne"]


@pytest.mark.parametrize("argv, says", [
    # options of the dynamic sweep without --dynamic would silently do nothing
    (["--focus-snr", "20", "10", "--focus-snr-at", "scalp"],
     "--focus-snr, --focus-snr-at only apply to the dynamic evaluation: add --dynamic"),
    (["--dynamic", "--focus-snr", "nan", "10"], "(nan, 10.0) must be two finite numbers"),
    (["--dynamic", "--focus-snr", "20", "10"], "LO <= HI, e.g. --focus-snr 10 20"),
    (["--dynamic", "--focus-snr", "5000", "5000"], "within -60..60"),
])
def test_evaluate_refuses_focus_snr_it_cannot_use(argv, says, tmp_path, capsys):
    assert main(["evaluate", *argv, "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()  # refused before any work
