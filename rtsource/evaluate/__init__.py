"""Evaluation of networks and classical inverses (``rtsource evaluate``).

- :mod:`~rtsource.evaluate.metrics`: per-sample map metrics (NEMD, MLE, AUC, NMSE,
  1 − weighted cosine).
- :mod:`~rtsource.evaluate.sweep`: test conditions, the held-out head model and
  :func:`evaluate`, which runs the sweep.
- :mod:`~rtsource.evaluate.report`: markdown tables, CSV files and plots of a result.
"""

from __future__ import annotations

from .metrics import (
    LOWER_IS_BETTER,
    METRIC_LABELS,
    METRICS,
    auc_close_far,
    emd,
    grid_neighbours,
    local_maxima,
    localisation_error,
    nemd,
    nmse,
    sample_metrics,
    weighted_cosine_error,
)
from .report import markdown_table, peak_targets, targets_markdown, write_report
from .sweep import (
    BASELINES,
    Condition,
    EvalConfig,
    EvalResult,
    InverseCrimeWarning,
    check_inverse_crime,
    default_conditions,
    evaluate,
)

__all__ = [
    "BASELINES", "LOWER_IS_BETTER", "METRICS", "METRIC_LABELS", "Condition", "EvalConfig",
    "EvalResult", "InverseCrimeWarning", "auc_close_far", "check_inverse_crime",
    "default_conditions", "emd", "evaluate", "grid_neighbours", "local_maxima",
    "localisation_error", "markdown_table", "nemd", "nmse", "peak_targets", "sample_metrics",
    "targets_markdown",
    "weighted_cosine_error", "write_report",
]
