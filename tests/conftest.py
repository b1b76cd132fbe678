"""Shared test setup: a persistent per-checkout cache, single-threaded numerics."""

from __future__ import annotations

import os
from pathlib import Path

# Before numpy/torch import: two cores are shared by LSL threads, BLAS and torch.
from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()
# Head models and kernels are cached between test runs in <repo>/.cache (ignored by git);
# a fresh clone (CI) builds them once per run.
os.environ.setdefault("RTSOURCE_CACHE", str(Path(__file__).resolve().parents[1] / ".cache"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import mne  # noqa: E402
import pytest  # noqa: E402

mne.set_log_level("error")


@pytest.fixture(scope="session")
def sphere_cfg():
    """Fast template: three-shell sphere, 7 mm grid, biosemi128."""
    from rtsource.config import HeadModelConfig

    return HeadModelConfig(montage="biosemi128", conductor="sphere")


@pytest.fixture(scope="session")
def sphere_model(sphere_cfg):
    from rtsource.headmodel import build_headmodel

    return build_headmodel(sphere_cfg, progress=False)
