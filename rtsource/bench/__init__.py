"""Latency benchmark of the live pipeline over real loopback LSL (``rtsource bench``).

One invocation runs, each side in its own process as it would be deployed:

* **amplifier** (this process, a thread): :class:`~rtsource.simulate.amplifier.SimulatedAmplifier`
  data (generated beforehand) pushed on a real LSL outlet in real time, in chunks of
  ``chunk`` samples, each sample when its capture time has come. The LSL clock right after
  each push is logged: the reference of every latency.
* **pipeline** (a child process): :class:`~rtsource.online.pipeline.Pipeline` with per-piece
  stage timings (``record_stages``), its process CPU time over the run, GPU use where torch
  sees CUDA, and (method piunet) the refinement engine's own timings.
* **subscriber** (this process): pulls the region stream; the latency of a region sample
  is its arrival minus the push of the EEG sample it represents (found from its capture
  timestamp).
* **baseline** (another child process, unless disabled): what a user would otherwise write
  -- pylsl ``pull_chunk`` + MNE ``apply_inverse_raw`` with a prepared eLORETA operator on
  every window, one hop at a time, atlas weights on ``|J|`` -- measured the same way.

:func:`refine_benchmark` times the refinement network alone: per volume at batch 1
(median, p99) and batched throughput (volumes/s).

Results are plain dicts (JSON-ready); :func:`plot_results` draws the latency histogram and
timeline; :func:`summary_lines` is the short text ``rtsource bench`` prints.

Modules: :mod:`~rtsource.bench.spec` (what a run measures), :mod:`~rtsource.bench.streams`
(the amplifier and the subscriber), :mod:`~rtsource.bench.protocol` (parent <-> worker
lines), :mod:`~rtsource.bench.pipeline` and :mod:`~rtsource.bench.baseline` (both sides of
each contender), :mod:`~rtsource.bench.refine` (the network alone),
:mod:`~rtsource.bench.stats` (latency, matching, drops, machine, JSON),
:mod:`~rtsource.bench.run` (a whole run; the workers' entry point, ``python -m
rtsource.bench``) and :mod:`~rtsource.bench.report` (plot and summary).
"""

from __future__ import annotations

from .refine import refine_benchmark
from .report import plot_results, summary_lines
from .run import main, run_benchmark
from .spec import BenchSpec
from .stats import latency_stats, machine_info, to_json
from .streams import AmplifierPusher, Subscriber

__all__ = [
    "AmplifierPusher",
    "BenchSpec",
    "Subscriber",
    "latency_stats",
    "machine_info",
    "main",
    "plot_results",
    "refine_benchmark",
    "run_benchmark",
    "summary_lines",
    "to_json",
]
