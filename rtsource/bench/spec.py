"""What a benchmark run measures: :class:`BenchSpec` and the pipeline configuration it
describes (:func:`make_config`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import load_config

__all__ = ["BenchSpec", "make_config"]


@dataclass(frozen=True)
class BenchSpec:
    """What to benchmark.

    Attributes
    ----------
    montage : str
        Montage streamed by the simulated amplifier and used by the pipeline.
    rate : float
        Input sampling rate (Hz).
    method : str
        Inverse method (``"eloreta"``, ``"piunet"``, ...).
    conductor, atlas : str | None
        Head model and atlas (None: the configuration's).
    width : int | None
        Method piunet: a network of this width with random weights (timing only).
    checkpoint : str | None
        Method piunet: a checkpoint path (or ``"default"``); ignored when ``width`` is set.
    backend : str
        Refinement backend (``auto``, ``tensorrt``, ``cuda``, ``onnx``, ``cpu``, ``eager``).
    decimate : int | str | None
        ``refine.decimate`` (None: the configuration's).
    hop_s, window_s : float | None
        Hop and window in seconds (None: the configuration's).
    schedule : str
        The pipeline's schedule, ``"arrival"`` or ``"hop"``.
    duration_s : float
        Seconds of EEG pushed to the pipeline.
    chunk : int | None
        Samples per push (default: 10 ms worth).
    baseline : bool
        Run the MNE baseline too.
    baseline_duration_s : float | None
        Seconds of EEG for the baseline (default: the shorter of ``duration_s`` and 5 s;
        it falls behind, so its latency grows with the input's length).
    config : str | None
        TOML configuration the settings above override.
    warmup_s : float
        Samples captured in the first ``warmup_s`` seconds are left out of the latency
        statistics (first window, start-up).
    refine_runs : int
        Calls timed per batch size in the refinement section.
    refine_batch : int
        Batch size of the throughput measurement (refinement-only mode).
    threads : int | None
        Refinement-only mode: CPU threads of the engine (default: all cores).
    seed : int
        Seed of the simulated EEG.
    start_timeout_s : float
        How long the pipeline may take to start (head model, kernel, compilation).
    """

    montage: str = "biosemi128"
    rate: float = 1000.0
    method: str = "eloreta"
    conductor: str | None = None
    atlas: str | None = None
    width: int | None = None
    checkpoint: str | None = None
    backend: str = "auto"
    decimate: int | str | None = None
    hop_s: float | None = None
    window_s: float | None = None
    schedule: str = "arrival"
    duration_s: float = 30.0
    chunk: int | None = None
    baseline: bool = True
    baseline_duration_s: float | None = None
    config: str | None = None
    warmup_s: float = 1.0
    refine_runs: int = 30
    refine_batch: int = 8
    threads: int | None = None
    seed: int = 1
    start_timeout_s: float = 900.0

    @property
    def push_chunk(self) -> int:
        return int(self.chunk) if self.chunk else max(1, round(self.rate * 0.010))


def make_config(spec: BenchSpec, checkpoint: str | None = None) -> Any:
    """The pipeline configuration a spec describes (stream names are filled in later)."""
    refine = {"backend": spec.backend, "decimate": spec.decimate}
    if checkpoint is not None:
        refine["checkpoint"] = checkpoint
    return load_config(
        spec.config,
        method=spec.method,
        headmodel={"montage": spec.montage, "conductor": spec.conductor},
        regions={"atlas": spec.atlas},
        stream={"hop_s": spec.hop_s, "window_s": spec.window_s},
        refine=refine,
    )
