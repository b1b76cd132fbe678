"""Signal quality: NaN/Inf, flat channels and saturation, one rule for live and offline.

:class:`SignalCheck` scans samples as they come (a stream piece by piece, or a recording
at once: the result is the same) and carries its state from call to call. The rules are
written for how amplifiers behave, not for one device:

* **NaN/Inf**: any non-finite sample.
* **Flat**: a channel whose values stay within a tolerance for at least ``flat_s``
  seconds. The tolerance is ``flat_uv`` or one quantisation step of the stream, whichever
  is larger (the step is measured: the smallest non-zero difference between consecutive
  samples seen so far, over all channels), so a quantised device's quiet channel toggling
  by one step is flat and a live channel is not.
* **Reference channel**: a channel that has been exactly zero since the start is the
  recording reference as many amplifiers and files export it (MNE's
  ``add_reference_channels`` writes it so too). It is not bad: it is kept (the average
  reference includes it) and reported once.
* **Saturated**: a sample at or beyond the device's stated range (``range_uv``, when
  known); or a channel stuck at a rail: the same value repeated for at least ``clip_s``
  seconds at the channel's extreme (its largest or smallest value since the start) after
  it had varied. A large steady offset (DC-coupled amplifiers stream offsets of several
  millivolts) is none of these: the filters remove it.

Durations are in seconds, so the rules hold at every sampling rate. A run is reported
from its first sample where that sample is in the samples given (a recording at once);
live, the run's samples in earlier pieces were already published.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numba
import numpy as np
from numpy.typing import NDArray

__all__ = ["CLIP_S", "FLAT_S", "BadDataReport", "SignalCheck"]

#: Default shortest flat run (seconds).
FLAT_S = 0.1
#: Default shortest run of one repeated value at a channel's extreme (seconds).
CLIP_S = 0.05
#: Fewest samples a flat or clipped run needs, whatever the rate.
MIN_RUN_SAMPLES = 5


@dataclass(frozen=True)
class BadDataReport:
    """What :class:`SignalCheck` found in one piece of samples.

    Attributes
    ----------
    nonfinite : dict of str to list of int
        Channel -> sample indices (within the piece) holding NaN or ±Inf.
    flat : list of str
        Channels in a flat run of at least ``flat_s`` seconds within the piece.
    saturated : dict of str to list of int
        Channel -> sample indices at or beyond the device's range, or stuck at a rail.
    """

    nonfinite: dict[str, list[int]]
    flat: list[str]
    saturated: dict[str, list[int]]

    @property
    def ok(self) -> bool:
        """True when nothing was flagged."""
        return not (self.nonfinite or self.flat or self.saturated)

    @property
    def bad_channels(self) -> list[str]:
        """Every flagged channel, each once, in flag order."""
        seen: dict[str, None] = {}
        for name in (*self.nonfinite, *self.flat, *self.saturated):
            seen[name] = None
        return list(seen)

    def message(self, max_items: int = 8, offset: int = 0) -> str:
        """A sentence naming the channels and samples (empty when :attr:`ok`); ``offset``
        is added to the sample indices (to count them from a stream's start)."""
        if self.ok:
            return ""

        def idx(d: dict[str, list[int]]) -> str:
            items = [f"{k} (samples {_ranges([i + offset for i in v])})"
                     for k, v in list(d.items())[:max_items]]
            more = f" and {len(d) - max_items} more" if len(d) > max_items else ""
            return ", ".join(items) + more

        parts = []
        if self.nonfinite:
            parts.append(f"NaN/Inf in {idx(self.nonfinite)}")
        if self.flat:
            more = f" and {len(self.flat) - max_items} more" if len(self.flat) > max_items else ""
            parts.append(f"flat: {', '.join(self.flat[:max_items])}{more}")
        if self.saturated:
            parts.append(f"saturated: {idx(self.saturated)}")
        return "Bad data: " + "; ".join(parts) + "."


def _ranges(indices: Sequence[int], max_ranges: int = 4) -> str:
    """Compact '0-4, 9, 12-13' rendering of sorted indices."""
    out: list[str] = []
    start = prev = None
    for i in indices:
        if start is None:
            start = prev = i
        elif i == prev + 1:  # type: ignore[operator]
            prev = i
        else:
            out.append(f"{start}" if start == prev else f"{start}-{prev}")
            start = prev = i
    if start is not None:
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
    if len(out) > max_ranges:
        return ", ".join(out[:max_ranges]) + ", ..."
    return ", ".join(out)


@numba.njit(cache=True, nogil=True)
def _scan(x, flat_v, n_flat, n_clip, range_v, state, qstep, nonfinite, flat, sat):  # pragma: no cover - compiled
    """One pass over ``x`` (n, c), updating ``state`` (c, 8) and ``qstep`` (1,) in place;
    returns how many flags it set (0: the usual case, nothing to report).

    state columns: 0 last value, 1 repeats of it, 2 run low, 3 run high, 4 run length,
    5 channel min, 6 channel max, 7 still all-zero (1.0) or not (0.0).
    """
    n, c = x.shape
    n_flagged = 0
    for i in range(n):
        tol = max(flat_v, 1.05 * qstep[0])  # one step, with float32 rounding slack
        for j in range(c):
            v = np.float64(x[i, j])
            if not np.isfinite(v):
                nonfinite[i, j] = True
                n_flagged += 1
                state[j, 1] = 0.0
                state[j, 4] = 0.0
                continue
            if range_v > 0.0 and abs(v) >= range_v:
                sat[i, j] = True
                n_flagged += 1
            if state[j, 1] > 0.0 and v == state[j, 0]:
                state[j, 1] += 1.0
            else:
                if state[j, 1] > 0.0:
                    d = abs(v - state[j, 0])
                    if d < qstep[0]:
                        qstep[0] = d
                state[j, 1] = 1.0
                state[j, 0] = v
            if v != 0.0:
                state[j, 7] = 0.0
            if v < state[j, 5]:
                state[j, 5] = v
            if v > state[j, 6]:
                state[j, 6] = v
            if state[j, 4] == 0.0:
                state[j, 2] = v
                state[j, 3] = v
                state[j, 4] = 1.0
            else:
                lo = min(state[j, 2], v)
                hi = max(state[j, 3], v)
                if hi - lo > tol:
                    state[j, 2] = v
                    state[j, 3] = v
                    state[j, 4] = 1.0
                else:
                    state[j, 2] = lo
                    state[j, 3] = hi
                    state[j, 4] += 1.0
            if (state[j, 1] >= n_clip and state[j, 6] > state[j, 5]
                    and (v >= state[j, 6] or v <= state[j, 5])):
                sat[i, j] = True  # stuck at a rail (not also called flat)
                n_flagged += 1
                if state[j, 1] == n_clip:  # the run just qualified: from its start
                    for b in range(max(0, i - n_clip + 1), i):
                        sat[b, j] = True
            elif state[j, 4] >= n_flat and state[j, 7] == 0.0:
                flat[i, j] = True
                n_flagged += 1
                if state[j, 4] == n_flat:
                    for b in range(max(0, i - n_flat + 1), i):
                        flat[b, j] = True

    return n_flagged

#: The report of a piece with nothing to flag (shared: reports are frozen).
_OK = BadDataReport(nonfinite={}, flat=[], saturated={})


class SignalCheck:
    """Flag NaN/Inf, flat and saturated channels, sample by sample, with state.

    Parameters
    ----------
    ch_names : sequence of str
        Channel names (the columns of the samples given).
    sfreq : float
        Sampling rate (Hz): durations are converted to samples with it.
    flat_uv : float | None
        Flat tolerance in microvolts (a quantisation step larger than this replaces it);
        None disables the flat check.
    flat_s : float
        Shortest flat run, seconds.
    clip_s : float | None
        Shortest run of one repeated value at the channel's extreme that counts as stuck
        at a rail, seconds; None disables the rail check.
    range_uv : float | None
        The device's stated input range (± microvolts): samples at or beyond it are
        saturated. None: unknown (only the rail rule applies).

    Raises
    ------
    ValueError
        For a non-positive rate or duration.

    Notes
    -----
    Call it with samples in volts. The check is causal: a flat or clipped run is reported
    from the sample at which it has lasted ``flat_s`` / ``clip_s`` (the run's earlier
    samples were already seen). :meth:`reset` starts afresh (a new recording or a stream
    that returned).
    """

    def __init__(self, ch_names: Sequence[str], sfreq: float, *, flat_uv: float | None = 0.1,
                 flat_s: float = FLAT_S, clip_s: float | None = CLIP_S,
                 range_uv: float | None = None) -> None:
        if not (sfreq > 0 and math.isfinite(sfreq)):
            raise ValueError(f"sfreq = {sfreq!r} must be a positive rate in Hz.")
        for name, value in (("flat_s", flat_s), ("clip_s", clip_s)):
            if value is not None and not value > 0:
                raise ValueError(f"{name} = {value!r} must be a positive duration in seconds.")
        self.ch_names = list(ch_names)
        self.sfreq = float(sfreq)
        self.flat_v = math.inf if flat_uv is None else float(flat_uv) * 1e-6
        self._flat_on = flat_uv is not None
        self.n_flat = max(MIN_RUN_SAMPLES, math.ceil(flat_s * self.sfreq))
        self.n_clip = (2**62 if clip_s is None
                       else max(MIN_RUN_SAMPLES, math.ceil(clip_s * self.sfreq)))
        self.range_v = 0.0 if range_uv is None else float(range_uv) * 1e-6
        self.reset()

    def reset(self) -> None:
        """Forget every run, extreme and the quantisation step."""
        c = len(self.ch_names)
        self._state = np.zeros((c, 8))
        self._state[:, 5] = np.inf
        self._state[:, 6] = -np.inf
        self._state[:, 7] = 1.0
        self._q = np.array([np.inf])
        self._flags = np.zeros((3, 0, c), np.bool_)  # nonfinite, flat, saturated (reused)

    @property
    def reference_channels(self) -> list[str]:
        """Channels exactly zero since the start (taken as the recording reference) that
        have lasted a flat run."""
        s = self._state
        return [n for n, z, r in zip(self.ch_names, s[:, 7], s[:, 4], strict=True)
                if z == 1.0 and r >= self.n_flat]

    @property
    def quantisation_step_v(self) -> float | None:
        """The smallest non-zero step between consecutive samples seen (volts), or None."""
        q = float(self._q[0])
        return None if math.isinf(q) else q

    def __call__(self, x: NDArray) -> BadDataReport:
        """Check the next samples.

        Parameters
        ----------
        x : (n_samples, n_channels) array in volts (any real dtype).

        Returns
        -------
        BadDataReport
            Indices are within ``x``.

        Raises
        ------
        ValueError
            For a wrong shape.
        """
        if x.ndim != 2 or x.shape[1] != len(self.ch_names):
            raise ValueError(
                f"Expected samples of shape (n_samples, {len(self.ch_names)}), got {x.shape}.")
        n, c = x.shape
        if n > self._flags.shape[1]:
            self._flags = np.zeros((3, max(n, 2 * self._flags.shape[1]), c), np.bool_)
        flags = self._flags[:, :n]
        flags[...] = False
        nonfinite, flat, sat = flags
        flat_v = self.flat_v if self._flat_on else 1e300
        n_flat = self.n_flat if self._flat_on else 2**62
        if n == 0 or not _scan(x, flat_v, n_flat, self.n_clip, self.range_v, self._state,
                               self._q, nonfinite, flat, sat):
            return _OK
        names = self.ch_names
        return BadDataReport(
            nonfinite={names[j]: np.flatnonzero(nonfinite[:, j]).tolist()
                       for j in np.flatnonzero(nonfinite.any(axis=0))},
            flat=[names[j] for j in np.flatnonzero(flat.any(axis=0))],
            saturated={names[j]: np.flatnonzero(sat[:, j]).tolist()
                       for j in np.flatnonzero(sat.any(axis=0))},
        )
