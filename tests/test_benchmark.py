"""``rtsource bench`` end to end over real loopback LSL (small sizes, no wall-clock
assertions) and the benchmark's bookkeeping."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from rtsource.bench import latency_stats, to_json
from rtsource.bench.stats import drop_counts
from rtsource.cli import main as cli

REQUIRED = ("latency_ms", "stages_ms", "samples_in", "samples_out", "dropped", "baseline",
            "config", "machine")


def _check_percentiles(lat: dict) -> None:
    assert lat["n"] > 0
    assert 0 < lat["p50"] <= lat["p95"] <= lat["p99"] <= lat["max"]


def _run_bench(tmp_path: Path, *extra: str) -> tuple[dict, Path, Path]:
    js, png = tmp_path / "bench.json", tmp_path / "bench.png"
    rc = cli(["bench", "--channels", "32", "--conductor", "sphere", "--rate", "250",
              "--duration", "3", "--warmup", "0.5", "--json", str(js), "--plot", str(png),
              "--quiet", *extra])
    assert rc == 0
    return json.loads(js.read_text()), js, png


@pytest.mark.lsl
def test_bench_command_end_to_end(tmp_path: Path, capsys):
    res, _, png = _run_bench(tmp_path, "--no-baseline")
    printed = capsys.readouterr().out
    assert "latency p50" in printed and "stages median/p99" in printed
    for key in REQUIRED:
        assert key in res, key
    assert res["baseline"] is None
    n_in = res["samples_in"]
    assert n_in == 750  # 3 s at 250 Hz
    assert 0 < res["samples_out"] <= n_in
    assert res["samples_out"] == n_in - 1  # every sample but the filters' first (no data)
    assert res["dropped"] == 0 and res["pipeline"]["drops"]["duplicated"] == 0
    assert res["pipeline"]["timestamp_error_max_us"] < 200
    _check_percentiles(res["latency_ms"])
    for stage in ("pull", "wait", "preprocess", "inverse", "regions", "push", "deliver"):
        st = res["stages_ms"][stage]
        assert st["median"] <= st["p99"] <= st["max"], stage
    assert res["stages_ms"]["refine"]["median"] < 0.05  # no network for eLORETA
    cfg = res["config"]
    assert cfg["method"] == "eloreta" and cfg["montage"] == "biosemi32"
    assert cfg["pipeline"]["conductor"] == "sphere"
    rates = res["pipeline"]["rates_hz"]
    assert rates["output_declared"] == 250 and rates["input"] > 0
    cpu = res["pipeline"]["cpu"]
    assert cpu["cpu_s"] > 0 and cpu["wall_s"] > 0 and cpu["cores_used"] > 0
    assert res["machine"]["cpu_count"] >= 1 and "load_average" in res["machine"]
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.lsl
@pytest.mark.slow
def test_bench_with_the_mne_baseline_in_the_same_run(tmp_path: Path):
    res, _, _ = _run_bench(tmp_path, "--baseline-duration", "2")
    base = res["baseline"]
    assert base is not None and base["samples_in"] == 500
    _check_percentiles(base["latency_ms"])
    assert base["compute_per_hop_ms"]["n"] > 0
    # late, but every sample arrives except the last partial hop (a user's loop does not
    # flush it)
    assert base["dropped"] < base["hop_samples"]
    cmp_ = res["comparison"]
    assert cmp_["baseline_over_rtsource_latency_p50"] > 0


def test_refine_only_times_the_network(tmp_path: Path):
    js = tmp_path / "refine.json"
    rc = cli(["bench", "--refine-only", "--width", "8", "--backend", "onnx",
              "--refine-batch", "2", "--refine-runs", "3", "--json", str(js), "--quiet"])
    assert rc == 0
    res = json.loads(js.read_text())
    ref = res["refine"]
    assert ref["backend"] == "onnx" and ref["width"] == 8
    assert 0 < ref["batch1_ms"]["median"] <= ref["batch1_ms"]["p99"]
    assert set(ref["batches"]) == {"1", "2"}
    assert ref["throughput"]["volumes_per_s"] > 0
    assert "latency_ms" not in res  # no LSL in this mode


def test_latency_stats_and_json():
    s = latency_stats([0.001, 0.002, 0.003, 0.010])
    assert s["n"] == 4 and s["p50"] == pytest.approx(2.5)
    assert s["p50"] <= s["p95"] <= s["p99"] <= s["max"] == pytest.approx(10.0)
    empty = latency_stats([])
    assert empty["n"] == 0 and math.isnan(empty["p50"])
    text = to_json({"a": empty, "_series": {"t": np.arange(3)}, "b": np.float32(1.5)})
    back = json.loads(text)
    assert back["a"]["p50"] is None and "_series" not in back and back["b"] == 1.5


def test_drop_counts_on_a_decimated_grid():
    # one of every 4 samples of 20 (k = 3, 7, 11, 15, 19); 11 missing, 15 twice, 5 off grid
    k = np.array([3, 7, 15, 15, 19, 5])
    m = {"k": k, "ok": np.ones(len(k), bool)}
    d = drop_counts(m, 20, 4, 3)
    assert d["expected_out"] == 5 and d["missing"] == 1
    assert d["duplicated"] == 1 and d["off_grid"] == 1
