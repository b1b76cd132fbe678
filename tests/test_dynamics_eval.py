"""The dynamic evaluation end to end on a tiny setting: real kernels, real libraries, report."""

from __future__ import annotations

import math

import pytest

from rtsource.config import HeadModelConfig
from rtsource.evaluate.dynamic import (
    DynamicEvalConfig,
    dynamic_markdown,
    evaluate_dynamic,
    write_dynamic_report,
)


def test_dynamic_sweep_writes_rows_per_region_class(tmp_path):
    cfg = DynamicEvalConfig(
        headmodel=HeadModelConfig(montage="biosemi32", conductor="sphere"),
        regimes=("interictal",), snr_db=(20.0,), n_windows=4, window_s=0.4,
        library_runs=2, library_s=2.0, seed=3, lead_in_s=0.0)
    res = evaluate_dynamic(cfg, methods=("eloreta", "dspm"), progress=False)
    classes = {r["regions"] for r in res.rows}
    assert classes == {"cortical", "thalamic"}  # the tiny library has one focus of each kind
    for r in res.rows:
        assert 0.0 <= r["recall"] <= 1.0 and 0.0 <= r["corr"] <= 1.0
        assert math.isnan(r["precision"]) or 0.0 <= r["precision"] <= 1.0
    assert {s["method"] for s in res.summary} == {"eloreta", "dspm"}
    assert res.meta["host"]["cpu"] and res.meta["wall_s"] >= 0
    files = write_dynamic_report(res, tmp_path, command="rtsource evaluate --dynamic")
    text = files["report"].read_text()
    assert "| interictal | 20 | thalamic | dspm |" in text and "Command:" in text
    # the scoring step changes every metric: the report says which one it used
    assert "Metrics on every sample, active = above Otsu" in text  # piunet_every = 1
    assert files["dynamic_interictal"].stat().st_size > 0
    assert dynamic_markdown(res).count("\n") == len(res.summary) + 2
    with pytest.raises(ValueError, match="method.*'piunet'"):
        evaluate_dynamic(cfg, methods=("eloretta",), progress=False)
    with pytest.raises(ValueError, match="regime"):
        DynamicEvalConfig(regimes=("seizure",))


def test_inverse_headmodel_follows_inverse_from_as_in_the_static_evaluation():
    from rtsource.evaluate.sweep import EvalConfig

    for where in ("eval", "template"):
        dyn, static = DynamicEvalConfig(inverse_from=where), EvalConfig(inverse_from=where)
        assert dyn.inverse_headmodel == static.inverse_headmodel
        assert dyn.inverse_headmodel == (dyn.headmodel if where == "eval" else dyn.template)
    assert DynamicEvalConfig(inverse_from="template").inverse_headmodel.conductor == "bem"
