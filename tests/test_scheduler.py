"""The hop scheduler driven with arrays (no LSL, no threads): set input, step, read output.

Every event kind of ``rtsource.online.scheduler.EVENT_KINDS`` is produced by a test here.
The reference for the published values is ``SourceProcessor.process`` on the same samples
(the chain ``localize`` runs).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from rtsource.config import StreamConfig, load_config
from rtsource.online.processing import SourceProcessor
from rtsource.online.scheduler import EVENT_KINDS, HopScheduler
from rtsource.stream.lslio import INDEX_MODULO

SFREQ = 500.0
N_EEG = 32


@pytest.fixture(scope="module")
def cfg():
    return load_config(headmodel={"montage": "biosemi32", "conductor": "sphere"},
                       stream={"window_s": 0.02, "hop_s": 0.01})  # window 10, hop 5 samples


@pytest.fixture(scope="module")
def labels(cfg):
    from rtsource.headmodel import build_headmodel

    return list(build_headmodel(cfg.headmodel, progress=False).ch_names)


def _proc(cfg, labels, types=None):
    return SourceProcessor(cfg, labels + ["sample_index"], SFREQ,
                           ch_types=(types or ["eeg"] * len(labels)) + ["misc"],
                           montage=cfg.headmodel.montage, on_missing="drop", progress=False)


def _signal(n, n_eeg=N_EEG, seed=0, k0=0):
    """(n, n_eeg + 1) EEG in volts plus the sample-index column; stamps at SFREQ."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, n_eeg + 1), np.float32)
    x[:, :n_eeg] = rng.normal(size=(n, n_eeg)) * 10e-6
    x[:, n_eeg] = (np.arange(k0, k0 + n) % INDEX_MODULO).astype(np.float32)
    return x, 100.0 + np.arange(k0, k0 + n) / SFREQ


def _sched(cfg, labels, **kw):
    stream = kw.pop("stream", None)
    c = cfg if stream is None else dataclasses.replace(
        cfg, stream=dataclasses.replace(cfg.stream, **stream))
    proc = kw.pop("proc", None) or _proc(c, labels)
    return HopScheduler(proc, labels + ["sample_index"], SFREQ, c.stream, index_col=N_EEG,
                        **kw)


def _feed(s, x, ts, sizes, **kw):
    """Step through ``x`` in chunks of the given sizes; concatenate what is published."""
    rows, stamps, events, pieces = [], [], [], []
    i = 0
    for n in sizes:
        res = s.step(x[i:i + n], ts[i:i + n], **kw)
        rows.append(res.regions.copy())
        stamps.append(res.stamps.copy())
        events += res.events
        pieces += res.pieces
        i += n
    return np.concatenate(rows), np.concatenate(stamps), events, pieces


def _kinds(events):
    return [e.kind for e in events]


def test_hop_boundaries_and_values(cfg, labels):
    """Arrival schedule: pieces are cut at hop ends (hop = the largest piece), the first
    published sample waits for a whole window, and every published value equals the
    chain on the whole recording."""
    x, ts = _signal(200)
    s = _sched(cfg, labels)
    assert (s.window, s.hop) == (10, 5)
    rows, stamps, events, pieces = _feed(s, x, ts, [3, 4, 7, 1, 12, 30, 143])
    ref = _proc(cfg, labels)
    _, expect = ref.process(x)
    # the first sample is not published: the filters start in its steady state (case 9)
    np.testing.assert_array_equal(stamps, ts[1:])
    np.testing.assert_allclose(rows, expect[1:], rtol=1e-5,
                               atol=1e-7 * np.abs(expect).max())
    assert events == []
    assert max(p.n_new for p in pieces[1:]) == s.hop
    assert pieces[0].n_new == s.window  # nothing before the first full window
    assert (s.n_in, s.n_out, s.n_flagged, s.n_dropped) == (200, 199, 1, 0)


def test_first_sample_after_a_filter_start_is_not_published(cfg, labels):
    """With a high-pass, the chain's first output is zero to rounding (the filters start
    in the first sample's steady state): it represents no data and is never published;
    without a high-pass it carries the signal and is published."""
    x, ts = _signal(20)
    _, expect = _proc(cfg, labels).process(x)
    assert np.abs(expect[0]).max() < 1e-6 * np.abs(expect[1:]).max()
    rows, stamps, _, _ = _feed(_sched(cfg, labels), x, ts, [20])
    assert stamps[0] == ts[1] and np.abs(rows).min(axis=1).max() > 0
    no_hp = dataclasses.replace(cfg, stream=dataclasses.replace(cfg.stream, highpass_hz=None))
    _, stamps, _, _ = _feed(_sched(no_hp, labels, proc=_proc(no_hp, labels)), x, ts, [20])
    np.testing.assert_array_equal(stamps, ts)


def test_hop_schedule_waits_for_whole_hops(cfg, labels):
    x, ts = _signal(23)
    s = _sched(cfg, labels, schedule="hop")
    rows, stamps, _, pieces = _feed(s, x, ts, [12, 6, 5])
    # 10 (first window) + 5 + 5: the last 3 samples wait for the rest of their hop
    assert [p.n_new for p in pieces] == [10, 5, 5]
    np.testing.assert_array_equal(stamps, ts[1:20])
    res = s.step(x[:0], ts[:0], flush=True)  # a pause or a stop flushes the partial hop
    np.testing.assert_array_equal(res.stamps, ts[20:])


def test_decimation_phase_and_event(cfg, labels):
    x, ts = _signal(60)
    s = _sched(cfg, labels, decimate=4, decimation_note="one of every 4 samples")
    rows, stamps, events, _ = _feed(s, x, ts, [7, 13, 40])
    assert _kinds(events) == ["decimation"] and events[0].fields["decimate"] == 4
    k = np.arange(60)
    np.testing.assert_array_equal(stamps, ts[(k + 1) % 4 == 0])
    _, expect = _proc(cfg, labels).process(x)
    np.testing.assert_allclose(rows, expect[(k + 1) % 4 == 0], rtol=1e-5,
                               atol=1e-7 * np.abs(expect).max())


def test_bad_data_withheld_then_resumes_with_fresh_filters(cfg, labels):
    x, ts = _signal(100)
    x[40:43, 3] = np.nan
    s = _sched(cfg, labels)
    rows, stamps, events, _ = _feed(s, x, ts, [5] * 20)
    kinds = _kinds(events)
    assert kinds[0] == "bad_data" and "bad_data_end" in kinds
    bad = events[0]
    assert labels[3] in bad.fields["channels"] and labels[3] in bad.message
    # the hops whose window holds a NaN sample are withheld; nothing non-finite published
    assert np.isfinite(rows).all()
    withheld = np.setdiff1d(ts, stamps)
    assert ts[40] in withheld and len(withheld) == s.n_flagged
    resume = events[kinds.index("bad_data_end")].fields["t_resume"]
    i0 = int(np.searchsorted(ts, resume))
    assert stamps[stamps >= resume][0] == ts[i0 + 1]  # the restart's first sample: no data
    # after the episode the filters restart: values equal a fresh chain from that sample
    _, expect = _proc(cfg, labels).process(x[i0:])
    np.testing.assert_allclose(rows[stamps >= resume], expect[1:], rtol=1e-5,
                               atol=1e-7 * np.abs(expect).max())


def test_flat_and_saturated_channels(cfg, labels):
    """The quality rule (rtsource.online.quality): a constant channel is flat once it has
    lasted stream.flat_s; a channel stuck at its extreme is saturated once it has lasted
    stream.clip_s; a sample beyond the device's range (stream.saturation_uv) at once."""
    n = 200  # 0.4 s at 500 Hz
    x, ts = _signal(n)
    x[100:, 5] = x[100, 5]  # constant from sample 100: flat from 100 + 0.1 s * 500 - 1
    x[60:, 7] = x[:, 7].max() + 1e-4  # stuck at its maximum from 60: a rail from 84
    x[190, 9] = 0.2  # beyond a stated range of +-100 mV
    s = _sched(cfg, labels, stream={"saturation_uv": 1e5})
    _, stamps, events, _ = _feed(s, x, ts, [5] * (n // 5))
    assert _kinds(events)[0] == "bad_data" and labels[7] in events[0].fields["channels"]
    text = " ".join(e.message for e in events)
    assert f"flat: {labels[5]}" in text and f"saturated: {labels[7]}" in text
    assert labels[9] in {c for e in events for c in e.fields.get("channels", [])}
    assert stamps.max() < ts[60 + 25 - 1]  # nothing published from the rail's detection on
    assert np.all(np.isin(ts[1:80], stamps))  # before it, everything


def test_dc_offsets_are_not_saturation(cfg, labels):
    """Case 1 of issue 12: DC-coupled amplifiers stream steady offsets of millivolts."""
    x, ts = _signal(400)
    x[:, :N_EEG] += np.linspace(-5400e-6, -800e-6, N_EEG, dtype=np.float32)
    s = _sched(cfg, labels)
    _, stamps, events, _ = _feed(s, x, ts, [5] * 80)
    assert events == [] and len(stamps) == 399 and s.n_flagged == 1


def test_zero_channel_is_the_reference_and_kept(cfg, labels):
    x, ts = _signal(200)
    x[:, 4] = 0.0  # the reference electrode, exported as zeros
    s = _sched(cfg, labels)
    _, stamps, events, _ = _feed(s, x, ts, [5] * 40)
    assert _kinds(events) == ["reference_channel"]
    assert events[0].fields["channels"] == [labels[4]] and len(stamps) == 199


def test_quantised_device_is_not_flat(cfg, labels):
    """A 12-bit-like device: 0.5 uV steps at 128 Hz; quiet channels stay good, a channel
    toggling by one step for 0.2 s is flat (the tolerance follows the step)."""
    sfreq = 128.0
    c = dataclasses.replace(cfg, stream=dataclasses.replace(cfg.stream, notch_hz=None))
    proc = SourceProcessor(c, labels, sfreq, montage=c.headmodel.montage, on_missing="drop")
    rng = np.random.default_rng(4)
    n = 512
    x = rng.normal(size=(n, N_EEG)) * 3e-6  # a quiet 3 uV rms
    x[300:, 2] = 0.0
    x[300:, 2] += (np.arange(n - 300) % 2) * 0.5e-6  # one step up and down
    x = (np.round(x / 0.5e-6) * 0.5e-6).astype(np.float32)
    s = HopScheduler(proc, labels, sfreq, c.stream)
    _, _, events, _ = _feed(s, x, 100 + np.arange(n) / sfreq, [8] * (n // 8))
    bad = [e for e in events if e.kind == "bad_data"]
    assert bad and {ch for e in bad for ch in e.fields["channels"]} == {labels[2]}
    assert bad[0].fields["t_start"] >= 100 + 300 / sfreq


def test_exclude_rebuilds_the_chain_without_the_channel(cfg, labels):
    x, ts = _signal(80)
    x[30:, 2] = np.nan  # channel 2 breaks for good
    built = []

    def exclude(channels):
        built.append(list(channels))
        types = ["bad" if lab in channels else "eeg" for lab in labels]
        return _proc(cfg, labels, types)

    s = _sched(cfg, labels, stream={"bad_data": "exclude"}, exclude=exclude)
    rows, stamps, events, _ = _feed(s, x, ts, [10] * 8)
    assert built == [[labels[2]]]
    assert _kinds(events)[:2] == ["channel_excluded", "kernel_ready"]
    assert s.excluded == [labels[2]] and s.processor.mapper.n_used == N_EEG - 1
    # not published: the first sample, and the first of the new chain (a filter start)
    assert np.isfinite(rows).all() and len(stamps) == 78 and s.n_flagged == 2


def test_exclude_refused_when_too_few_channels_remain(cfg, labels):
    x, ts = _signal(20)
    x[:, :N_EEG - 2] = np.nan  # all but two channels broken
    s = _sched(cfg, labels, stream={"bad_data": "exclude"},
               exclude=lambda ch: pytest.fail("must not rebuild"))
    _, stamps, events, _ = _feed(s, x, ts, [20])
    assert _kinds(events)[:2] == ["exclude_failed", "bad_data"] and len(stamps) == 0


def test_exclude_failure_is_reported(cfg, labels):
    x, ts = _signal(20)
    x[:, 1] = np.nan

    def exclude(channels):
        raise ValueError("no montage position")

    s = _sched(cfg, labels, stream={"bad_data": "exclude"}, exclude=exclude)
    _, _, events, _ = _feed(s, x, ts, [20])
    assert _kinds(events)[:2] == ["channel_excluded", "exclude_failed"]
    assert "no montage position" in events[1].message


def test_index_gaps_and_duplicates(cfg, labels):
    x, ts = _signal(50)
    keep = np.r_[0:20, 23:30, 29:50]  # 3 skipped, 1 repeated
    _, _, events, _ = _feed(_s := _sched(cfg, labels), x[keep], ts[keep], [25, 24])
    gap = [e for e in events if e.kind == "input_gap"]
    assert gap and (_s.n_index_gaps, _s.n_duplicated) == (3, 1)
    assert _s.n_dropped == 3


def test_samples_missed_while_the_input_was_away_are_counted(cfg, labels):
    """After a return (reset), the sample_index says what never arrived: a restarted
    sender's first indices, or the indices a continuing sender sent meanwhile."""
    for second_k0, missed in ((521, 521), (750, 50), (0, 0)):
        x, ts = _signal(700)  # indices 0-699
        s = _sched(cfg, labels)
        _feed(s, x, ts, [100] * 7)
        s.reset()
        x2, ts2 = _signal(100, k0=second_k0)
        _, _, events, _ = _feed(s, x2, ts2 + 10.0, [100])
        gaps = [e for e in events if e.kind == "input_gap"]
        assert s.n_dropped == missed
        assert (gaps[0].fields["missed_at_return"] == missed) if missed else not gaps


def test_timestamps_backwards_and_gaps(cfg, labels):
    x, ts = _signal(40)
    ts = ts.copy()
    ts[20] = ts[18]  # backwards
    ts[30:] += 0.5  # a gap of half a second
    s = _sched(cfg, labels)
    _, stamps, events, _ = _feed(s, x, ts, [15, 25])
    kinds = _kinds(events)
    assert "timestamps_backwards" in kinds and "timestamp_gap" in kinds
    assert s.n_backwards == 1 and s.n_ts_gaps == 2  # 18->20 jump back, then +0.5 s
    np.testing.assert_array_equal(stamps, ts[1:])  # samples keep their own capture times


def test_declared_rate_differs_from_delivered(cfg, labels):
    """A stream that declares 500 Hz but stamps 250 samples/s (measured over 5 s)."""
    x, _ = _signal(1500)
    ts = 100.0 + np.arange(1500) / (SFREQ / 2)
    s = _sched(cfg, labels)
    _, _, events, _ = _feed(s, x, ts, [100] * 15)
    rate = [e for e in events if e.kind == "rate_mismatch"]
    assert len(rate) == 1
    assert rate[0].fields["declared_hz"] == SFREQ
    assert abs(rate[0].fields["measured_hz"] - SFREQ / 2) < 1.0
    assert rate[0].fields["adopted_hz"] == SFREQ / 2 and s.measured_hz == SFREQ / 2
    assert "500 Hz" in rate[0].message and "250 Hz" in rate[0].message


def test_rate_within_tolerance_is_not_a_mismatch(cfg, labels):
    x, _ = _signal(3000)
    ts = 100.0 + np.arange(3000) / (SFREQ * 1.01)  # a 1 % fast clock
    s = _sched(cfg, labels)
    _, _, events, _ = _feed(s, x, ts, [100] * 30)
    assert "rate_mismatch" not in _kinds(events) and s.measured_hz is None


def test_unix_time_stamps_are_a_foreign_clock(cfg, labels):
    """Case 4 of issue 12: samples stamped with time.time() (~1.8e9 s) on a host whose LSL
    clock reads 5,000 s: said once; output stamps stay the input's ("source")."""
    x, _ = _signal(40)
    ts = 1.8e9 + np.arange(40) / SFREQ
    s = _sched(cfg, labels)
    rows, stamps, events, _ = _feed(s, x, ts, [20, 20], now=5000.0)
    assert _kinds(events) == ["foreign_clock"] and s.foreign_clock
    assert "time.time()" in events[0].message and "stream.timestamps" in events[0].message
    np.testing.assert_array_equal(stamps, ts[1:])
    lsl = _sched(cfg, labels)  # LSL stamps a few ms old: nothing said
    _, _, events, _ = _feed(lsl, x, 4999.9 + np.arange(40) / SFREQ, [40], now=5000.0)
    assert events == [] and not lsl.foreign_clock


def test_arrival_stamps_replace_a_foreign_clock(cfg, labels):
    x, _ = _signal(40)
    s = _sched(cfg, labels, stream={"timestamps": "arrival"})
    res1 = s.step(x[:20], 1.8e9 + np.arange(20) / SFREQ, now=5000.0)
    first = res1.stamps.copy()  # a view, valid until the next step
    res2 = s.step(x[20:], 1.8e9 + np.arange(20, 40) / SFREQ, now=5000.04)
    stamps = np.r_[first, res2.stamps]
    assert not s.foreign_clock and res1.events == res2.events == []
    assert stamps[-1] == pytest.approx(5000.04) and np.all(np.diff(stamps) > 0)
    np.testing.assert_allclose(np.diff(stamps), 1 / SFREQ)


def test_arrival_stamps_never_lie_in_the_future(cfg, labels):
    """Chunks of 50 samples (0.1 s) every 0.1 s, each read in two pulls 1 ms apart (LSL
    delivers a chunk sample by sample): no stamp after its pull, spacing at the rate."""
    x, _ = _signal(500)
    s = _sched(cfg, labels, stream={"timestamps": "arrival"}, schedule="hop")
    got, pulls = [], []
    for c in range(10):
        t = 5000.0 + 0.1 * (c + 1)
        for part, now in ((slice(0, 20), t), (slice(20, 50), t + 0.001)):
            i0 = 50 * c
            chunk = x[i0:i0 + 50][part]
            res = s.step(chunk, np.zeros(len(chunk)), now=now)
            got.append(res.stamps.copy())
            pulls.append(np.full(len(res.stamps), now))
    stamps, pulled = np.concatenate(got), np.concatenate(pulls)
    assert len(stamps) > 400 and np.all(stamps <= pulled + 1e-9)
    assert np.all(np.diff(stamps) > 0)
    # once a least-delayed arrival was seen (the first chunk), spacing is the rate's
    np.testing.assert_allclose(np.diff(stamps[60:]), 1 / SFREQ, atol=1e-6)


def test_units_decided_from_the_first_samples(cfg, labels):
    x, ts = _signal(30)
    xu = x.copy()
    xu[:, :N_EEG] *= 1e6  # microvolts without a unit
    s = _sched(cfg, labels, to_volts=[None] * N_EEG + [1.0])
    rows, _, events, _ = _feed(s, xu, ts, [30])
    assert _kinds(events) == ["units"] and events[0].fields["factor"] == 1e-6
    _, expect = _proc(cfg, labels).process(x)
    np.testing.assert_allclose(rows, expect[1:], rtol=1e-4,
                               atol=1e-6 * np.abs(expect).max())


def test_stated_units_the_values_contradict(cfg, labels):
    """Metadata saying volts on microvolt values (or microvolts on volts): corrected to
    what the values show, said with a units event; a unit the user set is kept, with a
    warning."""
    x, ts = _signal(30)
    xu = x.copy()
    xu[:, :N_EEG] *= 1e6
    _, expect = _proc(cfg, labels).process(x)
    for data, stated in ((xu, 1.0), (x, 1e-6)):
        s = _sched(cfg, labels, to_volts=[stated] * N_EEG + [1.0])
        rows, _, events, _ = _feed(s, data, ts, [30])
        assert _kinds(events) == ["units"] and "no EEG has" in events[0].message
        np.testing.assert_allclose(rows, expect[1:], rtol=1e-4,
                                   atol=1e-6 * np.abs(expect).max())
    s = _sched(cfg, labels, to_volts=[1.0] * N_EEG + [1.0], stream={"units": "V"})
    rows, _, events, _ = _feed(s, xu, ts, [30])
    assert _kinds(events) == ["units"] and "--units uV" in events[0].message
    assert np.abs(rows).max() > 1e3 * np.abs(expect).max()  # kept as the user said


def test_overflow_drops_oldest(cfg, labels):
    x, ts = _signal(600)
    s = _sched(cfg, labels, stream={"buffer_s": 0.5, "schedule": "hop"})  # 250 samples
    res = s.step(x, ts)  # one huge pull: the ring keeps the newest 250
    assert "overflow" in _kinds(res.events) and s.ring.n_dropped == 350
    np.testing.assert_array_equal(res.stamps, ts[351:])


def test_nonfinite_output_is_never_published(cfg, labels):
    x, ts = _signal(20)
    x[:, :N_EEG] *= 1e36  # finite input that overflows float32 inside the chain
    s = _sched(cfg, labels, stream={"saturation_uv": None})
    _, stamps, events, _ = _feed(s, x, ts, [20])
    assert "nonfinite_output" in _kinds(events) and len(stamps) == 0


def test_stop_deadline_discards_the_backlog(cfg, labels):
    x, ts = _signal(40)
    s = _sched(cfg, labels, schedule="hop")
    res = s.step(x, ts, flush=True, deadline=-1.0, clock=lambda: 0.0)
    assert _kinds(res.events) == ["stop_discarded"] and len(res.stamps) == 0
    assert res.events[0].fields["n_samples"] == 40


def test_reset_restarts_grid_and_filters(cfg, labels):
    """A restart (the stream returned): the hop grid, decimation phase and filters start
    again, as for a fresh chain on the new segment."""
    x, ts = _signal(60)
    s = _sched(cfg, labels, decimate=3)
    _feed(s, x[:25], ts[:25], [25])
    s.reset()
    x2, ts2 = _signal(30, seed=5, k0=1000)
    rows, stamps, _, pieces = _feed(s, x2, ts2 + 50, [30])
    assert pieces[0].n_new == s.window
    k = np.arange(30)
    np.testing.assert_array_equal(stamps, (ts2 + 50)[(k + 1) % 3 == 0])
    _, expect = _proc(cfg, labels).process(x2)
    np.testing.assert_allclose(rows, expect[(k + 1) % 3 == 0], rtol=1e-5,
                               atol=1e-7 * np.abs(expect).max())


def test_every_event_kind_is_tested():
    text = open(__file__).read()
    for kind in EVENT_KINDS:
        assert f'"{kind}"' in text.split("def test_every_event_kind_is_tested")[0], kind


def test_invalid_settings_are_named(cfg, labels):
    proc = _proc(cfg, labels)
    with pytest.raises(ValueError, match="schedule = 'hopp'.*Did you mean"):
        HopScheduler(proc, labels + ["sample_index"], SFREQ, cfg.stream, schedule="hopp")
    with pytest.raises(ValueError, match="exclude"):
        HopScheduler(proc, labels + ["sample_index"], SFREQ,
                     StreamConfig(bad_data="exclude"))
    with pytest.raises(ValueError, match="decimate"):
        HopScheduler(proc, labels + ["sample_index"], SFREQ, cfg.stream, decimate=0)


def test_max_pieces_hands_back_a_backlog_piece_by_piece(cfg, labels):
    x, ts = _signal(40)
    s = _sched(cfg, labels)
    res = s.step(x, ts, max_pieces=1)
    got = [res.stamps.copy()]
    assert res.more and len(res.pieces) == 1
    while res.more:
        res = s.step(x[:0], ts[:0], max_pieces=1)
        got.append(res.stamps.copy())
        assert len(res.pieces) <= 1
    np.testing.assert_array_equal(np.concatenate(got), ts[1:])
