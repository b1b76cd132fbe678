"""What the live pipeline reports: :class:`PipelineStatus` (a snapshot for people and
programs) and :class:`StageLog` (per-piece timings for benchmarks)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

__all__ = ["PipelineStatus", "StageLog"]


@dataclass
class PipelineStatus:
    """A snapshot of the pipeline (the loop refreshes rates and latency once a second).

    Attributes
    ----------
    state : str
        ``"created"``, ``"running"``, ``"waiting"`` (input lost), ``"stopped"`` or
        ``"failed"``.
    elapsed_s : float
        Seconds since the loop started.
    n_in, n_out : int
        Input samples pulled and output samples published.
    n_flagged : int
        Input samples not published because their window held bad data.
    n_dropped : int
        Input samples known lost: ring-buffer overflow plus gaps in the ``sample_index``
        channel (when the input has one).
    n_duplicated : int
        Repeated ``sample_index`` values seen.
    n_ts_gaps : int
        Gaps of more than 2.5 sample periods between consecutive input timestamps.
    n_backwards : int
        Input timestamps earlier than their predecessor.
    n_reconnects : int
        Times the input came back after being lost.
    in_rate_hz, out_rate_hz : float
        Samples per second over the last second.
    out_rate_expected_hz : float
        Output rate that the input rate calls for (``in_rate_hz / decimate``).
    decimate : int
        One of every ``decimate`` input samples is published (1: every sample).
    latency_ms : (float, float, float)
        Median, 95th percentile and maximum over the last second of (publish time - capture
        time) of the newest published sample of each processed piece, in milliseconds.
    lag_ms : float
        How far processing trails the input: the input received and not yet processed
        (in the inlet's and the ring's buffers), in milliseconds of signal.
    behind : bool
        True while processing trails the input by more than a quarter of a second (or
        five hops): the output is late and the input backlog grows.
    method, backend : str
    n_channels : int
        EEG channels used by the inverse.
    excluded : list of str
        Channels excluded because of bad data (``bad_data = "exclude"``).
    sfreq : float
        The input rate the chain runs at: the declared rate, or the measured one after a
        ``rate_mismatch`` (filters and the outlet then follow the measured rate).
    declared_hz : float
        The rate the input stream declares.
    clock : str
        ``"lsl"``; ``"foreign"`` when the input's stamps are far from the LSL clock
        (latency is then unknown and shown as such); ``"arrival"`` when samples are
        re-stamped on arrival (``stream.timestamps = "arrival"``).
    warnings : list of str
        Lasting conditions a user should know about (rate mismatch, foreign clock), each
        once.
    """

    state: str = "created"
    elapsed_s: float = 0.0
    n_in: int = 0
    n_out: int = 0
    n_flagged: int = 0
    n_dropped: int = 0
    n_duplicated: int = 0
    n_ts_gaps: int = 0
    n_backwards: int = 0
    n_reconnects: int = 0
    in_rate_hz: float = 0.0
    out_rate_hz: float = 0.0
    out_rate_expected_hz: float = 0.0
    decimate: int = 1
    latency_ms: tuple[float, float, float] = (math.nan, math.nan, math.nan)
    lag_ms: float = math.nan
    behind: bool = False
    method: str = ""
    backend: str = ""
    n_channels: int = 0
    excluded: list[str] = field(default_factory=list)
    sfreq: float = math.nan
    declared_hz: float = math.nan
    clock: str = "lsl"
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One status line for a terminal."""
        med, p95, mx = self.latency_ms
        if self.clock == "foreign":
            lat = "latency unknown (input clock is not LSL's)"
        elif math.isnan(med):
            lat = "latency    -   "
        else:
            lat = f"latency {med:5.1f} ms (p95 {p95:5.1f}, max {mx:6.1f})"
        extra = f" excluded {','.join(self.excluded)}" if self.excluded else ""
        dec = f" (1/{self.decimate} refined)" if self.decimate > 1 else ""
        by = "" if math.isnan(self.lag_ms) else f" by {self.lag_ms / 1e3:.2f} s"
        behind = (f" | BEHIND{by} (out {self.out_rate_hz:.1f} of "
                  f"{self.out_rate_expected_hz:.1f} Hz)" if self.behind else "")
        rate = (f" | rate {self.sfreq:g} Hz (declared {self.declared_hz:g})"
                if self.sfreq == self.sfreq and self.declared_hz == self.declared_hz
                and self.sfreq != self.declared_hz else "")
        warn = f" | {len(self.warnings)} warning(s) on the marker stream" if self.warnings else ""
        return (
            f"[{self.elapsed_s:7.1f} s] in {self.in_rate_hz:7.1f} Hz | out {self.out_rate_hz:7.1f} Hz"
            f"{dec} | {lat}{behind} | drops {self.n_dropped} | flagged {self.n_flagged}"
            f" | {self.method}/{self.backend} | {self.state}{extra}{rate}{warn}"
        )


class StageLog:
    """Per-piece timings recorded by a :class:`Pipeline` made with ``record_stages=True``.

    One row per processed piece (withheld pieces are not recorded). Columns
    (:attr:`FIELDS`): ``ts`` capture time of the newest published sample (of the newest
    sample when none was published), ``n_new`` samples processed, ``n_out`` samples
    published, ``t_pulled`` LSL clock when the pull that brought the newest sample
    returned, ``t_start`` LSL clock when processing began, ``preprocess``, ``inverse``,
    ``refine``, ``regions`` and ``push`` wall seconds, ``t_pushed`` LSL clock after the
    push.
    """

    FIELDS = ("ts", "n_new", "n_out", "t_pulled", "t_start", "preprocess", "inverse",
              "refine", "regions", "push", "t_pushed")

    def __init__(self, capacity: int = 4096) -> None:
        self._rows = np.zeros((capacity, len(self.FIELDS)))
        self.n = 0

    def append(self, row: Sequence[float]) -> None:
        if self.n == len(self._rows):
            self._rows = np.concatenate((self._rows, np.zeros_like(self._rows)))
        self._rows[self.n] = row
        self.n += 1

    def as_dict(self) -> dict[str, NDArray]:
        """Each column as an array (copies)."""
        return {f: self._rows[: self.n, i].copy() for i, f in enumerate(self.FIELDS)}
