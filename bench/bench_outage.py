"""One-off outage run: the amplifier stream disappears for a long gap (default 60 s) and
comes back with the same source_id; what does the live pipeline do?

A simulated amplifier (:class:`~rtsource.simulate.amplifier.SimulatedAmplifier`, a real LSL
outlet with a source_id and the ``sample_index`` channel) feeds a
:class:`~rtsource.online.pipeline.Pipeline` (``stream.lost_timeout_s`` raised above the
gap). After ``--before-s`` seconds the amplifier stops (its outlet is destroyed, as when
the app quits); ``--gap-s`` seconds later a new amplifier with the same name and
source_id starts (its sample index restarts at 0) and streams ``--after-s`` seconds,
pushing at once as a real amplifier does (``--return-waits-for-consumer``: only once the
pipeline's inlet is connected). The
region stream and the marker stream are read throughout, and the pipeline's status every
0.5 s.

Written to ``bench/results/outage-<gap>s.json`` (``--out``): every marker with its time
relative to the loss, the state changes, when output stopped and resumed, output samples
stamped inside the gap (must be none), samples of each run that were never published,
and the final counters.

    python bench/bench_outage.py --gap-s 60
"""

from __future__ import annotations

from rtsource._threads import limit_threads  # noqa: E402 (before numpy/torch load)

limit_threads()

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("RTSOURCE_CACHE", str(REPO / ".cache"))

import numpy as np  # noqa: E402
import pylsl  # noqa: E402


class Reader:
    """Reads the region stream and the marker stream of a pipeline."""

    def __init__(self, out: str, markers: str) -> None:
        from rtsource.stream.lslio import resolve_stream

        self.inlet = pylsl.StreamInlet(resolve_stream(name=out, timeout=10.0), max_buflen=360)
        self.inlet.open_stream(timeout=5.0)
        self.minlet = pylsl.StreamInlet(resolve_stream(name=markers, timeout=10.0))
        self.minlet.open_stream(timeout=5.0)
        n = self.inlet.info(timeout=5.0).channel_count()
        self.buf = np.zeros((4096, n), dtype=np.float32)
        self.ts: list[float] = []
        self.arrival: list[float] = []
        self.n_nonfinite = 0
        self.markers: list[dict[str, Any]] = []

    def poll(self, timeout: float = 0.02) -> None:
        _, ts = self.inlet.pull_chunk(timeout=timeout, max_samples=len(self.buf),
                                      dest_obj=self.buf, min_samples=1)
        now = pylsl.local_clock()
        if ts:
            self.ts.extend(ts)
            self.arrival.extend([now] * len(ts))
            self.n_nonfinite += int(len(ts) - np.isfinite(self.buf[:len(ts)]).all(axis=1).sum())
        while True:
            sample, t = self.minlet.pull_sample(timeout=0.0)
            if sample is None:
                break
            self.markers.append({"t_lsl": t, "arrival": pylsl.local_clock(),
                                 **json.loads(sample[0])})

    def close(self) -> None:
        self.inlet.close_stream()
        self.minlet.close_stream()


def outage(args: argparse.Namespace) -> dict[str, Any]:
    from rtsource._util import cpu_features, loadavg
    from rtsource.bench.stats import to_json
    from rtsource.config import load_config
    from rtsource.online.pipeline import Pipeline
    from rtsource.simulate.amplifier import SimulatedAmplifier

    tag = uuid.uuid4().hex[:8]
    name, sid, out = f"rtsource-outage-{tag}", f"amp-{tag}", f"rtsource-outage-out-{tag}"
    first, second = (SimulatedAmplifier(args.montage, args.rate, name, source_id=sid,
                                        conductor="sphere", chunk_size=args.chunk, seed=s)
                     for s in (5, 6))
    cfg = load_config(headmodel={"montage": args.montage, "conductor": args.conductor},
                      stream={"input": name, "output": out, "resolve_timeout_s": 30.0,
                              "lost_timeout_s": args.gap_s + 60.0})
    load0 = loadavg()
    first.start(wait_for_consumer_s=600.0)
    pipe = Pipeline(cfg, linger_s=1.0).open()
    rd = Reader(pipe.output_name, pipe.marker_name)
    pipe.start(wait_for_consumer_s=30.0)
    states: list[dict[str, Any]] = []

    def watch(until: float) -> None:
        """Read the outputs until LSL time ``until``; note state changes."""
        while pylsl.local_clock() < until:
            rd.poll(0.05)
            st = pipe.status()
            if not states or states[-1]["state"] != st.state:
                states.append({"t_lsl": pylsl.local_clock(), "state": st.state})

    try:
        while first.t0 is None:
            time.sleep(0.01)
        watch(first.t0 + args.before_s)
        first.stop()
        t_gone = pylsl.local_clock()
        last_first = first.sample_time(first.n_pushed - 1)
        print(f"Amplifier stopped after {first.n_pushed} samples; gap of {args.gap_s:g} s.",
              flush=True)
        watch(t_gone + args.gap_s)
        status_in_gap = dataclasses.asdict(pipe.status())
        # a real amplifier pushes as soon as it is back, whether anyone listens or not
        second.start(wait_for_consumer_s=60.0 if args.return_waits_for_consumer else None)
        t_back = pylsl.local_clock()
        print("Amplifier back with the same source_id.", flush=True)
        while second.t0 is None:
            time.sleep(0.01)
        watch(second.t0 + args.after_s)
        second.stop()
        watch(pylsl.local_clock() + 1.0)
    finally:
        rd.close()
        error = None
        try:
            pipe.stop()
        except Exception as err:  # reported in the results
            error = f"{type(err).__name__}: {err}"
        pipe.close()
        first.stop()
        second.stop()
    st = pipe.status()
    ts, arr = np.asarray(rd.ts), np.asarray(rd.arrival)
    tol, period = 2e-4, 1.0 / args.rate
    assert second.t0 is not None and first.t0 is not None
    inside = (ts > last_first + tol) & (ts < second.t0 - tol)
    before, after = ts <= last_first + tol, ts >= second.t0 - tol
    k1 = np.round((ts[before] - first.t0) / period).astype(int)
    k2 = np.round((ts[after] - second.t0) / period).astype(int)

    def rel(t: float | None) -> float | None:
        return None if t is None else round(float(t - t_gone), 4)

    def first_kind(kind: str) -> dict | None:
        return next((m for m in rd.markers if m["kind"] == kind), None)

    lost, back = first_kind("stream_lost"), first_kind("stream_returned")
    res: dict[str, Any] = {
        "benchmark": "bench/bench_outage.py", "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu": cpu_features(), "load_average": {"start": load0, "end": loadavg()},
        "settings": {"montage": args.montage, "rate_hz": args.rate, "chunk": args.chunk,
                     "conductor": args.conductor, "gap_s": args.gap_s,
                     "before_s": args.before_s, "after_s": args.after_s,
                     "lost_timeout_s": cfg.stream.lost_timeout_s,
                     "return_waits_for_consumer": args.return_waits_for_consumer},
        "times_note": "seconds of LSL time relative to the moment the first amplifier's "
                      "outlet was destroyed (t = 0)",
        "first_run": {"samples_pushed": first.n_pushed,
                      "last_sample_t": rel(last_first),
                      "published": int(before.sum()),
                      "never_published": int(first.n_pushed - len(np.unique(k1))),
                      "never_published_indices_tail": sorted(
                          set(range(first.n_pushed)) - set(k1.tolist()))[-20:]},
        "second_run": {"samples_pushed": second.n_pushed, "start_t": rel(t_back),
                       "first_sample_t": rel(second.t0), "published": int(after.sum()),
                       "first_published_index": int(k2.min()) if len(k2) else None,
                       "never_published": int(second.n_pushed - len(np.unique(k2)))},
        "output": {"stamped_inside_gap": int(inside.sum()),
                   "duplicated": int(len(k1) - len(np.unique(k1)) + len(k2)
                                     - len(np.unique(k2))),
                   "nonfinite_rows": rd.n_nonfinite,
                   "last_before_gap_arrival_t": rel(arr[before].max()) if before.any() else None,
                   "first_after_gap_arrival_t": rel(arr[after].min()) if after.any() else None,
                   "first_after_gap_stamp_t": rel(ts[after].min()) if after.any() else None},
        "stream_lost_marker_t": rel(lost["arrival"]) if lost else None,
        "stream_returned_marker_t": rel(back["arrival"]) if back else None,
        "markers": [{"t": rel(m["arrival"]), **{k: v for k, v in m.items()
                                                 if k not in ("arrival", "t_lsl")}}
                    for m in rd.markers],
        "states": [{"t": rel(s["t_lsl"]), "state": s["state"]} for s in states],
        "status_in_gap": status_in_gap,
        "status_end": dataclasses.asdict(st), "pipeline_error": error or (
            None if pipe.error is None else repr(pipe.error)),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(to_json(res))
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gap-s", type=float, default=60.0)
    p.add_argument("--before-s", type=float, default=10.0)
    p.add_argument("--after-s", type=float, default=10.0)
    p.add_argument("--montage", default="biosemi64")
    p.add_argument("--rate", type=float, default=1000.0)
    p.add_argument("--chunk", type=int, default=10)
    p.add_argument("--conductor", default="sphere")
    p.add_argument("--return-waits-for-consumer", action="store_true",
                   help="the returning amplifier waits for an inlet before its first push "
                        "(default: it pushes at once, as a real amplifier does)")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    if args.out is None:
        args.out = str(REPO / "bench" / "results" / f"outage-{args.gap_s:g}s.json")
    res = outage(args)
    print(json.dumps({k: res[k] for k in ("first_run", "second_run", "output",
                                          "stream_lost_marker_t", "stream_returned_marker_t",
                                          "states", "pipeline_error")}, indent=1))
    print("markers:", [(m["t"], m["kind"]) for m in res["markers"]])
    return 0


if __name__ == "__main__":
    sys.exit(main())
