"""The soak's flatness verdict (scripts/soak_verdict.py) on synthetic series: it must fail on
growth (a leak) and only on growth, not on noise, a drop, or a restart's step that comes back.
No broker: the series are made here, seeded, so every run judges the same numbers.
"""

from __future__ import annotations

import random
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import soak_verdict as verdict  # noqa: E402

DURATION_S = 1800.0
RESTART_S = 900.0
SETTLE_S = 80.0
WARMUP_FLOOR_S = 80.0


def samples(rss=lambda t: 20.0, fds_deleted=lambda t: 0.0, fds_per_segment=lambda t: 3.0,
            noise=0.1, seed=7) -> list[dict]:
    """A sample every 5 s; each value of the named shape times (1 +- noise)."""
    rng = random.Random(seed)

    def jitter(value):
        return value * (1 + rng.uniform(-noise, noise))
    return [{"t_s": float(t), "rss_mib": jitter(rss(t)), "fds_other": jitter(40.0),
             "fds_per_segment": jitter(fds_per_segment(t)), "fds_deleted": fds_deleted(t),
             "data_mib": jitter(1700.0)} for t in range(0, int(DURATION_S), 5)]


def chunks(p99=lambda t: 200.0, noise=0.5, seed=11) -> list[dict]:
    """A load chunk every 60 s, restarting the sequence at the restart (as the soak does)."""
    rng = random.Random(seed)
    starts = [float(t) for t in range(0, int(RESTART_S), 60)] + [
        RESTART_S + 1 + t for t in range(0, int(DURATION_S - RESTART_S), 60)]
    return [{"t_s": t, "load_p99_ms": p99(t) * (1 + rng.uniform(-noise, noise))} for t in starts]


def judge(sample_rows: list[dict], chunk_rows: list[dict]) -> dict:
    result = verdict.flatness(sample_rows, chunk_rows, duration_s=DURATION_S, restarts_t_s=[RESTART_S],
                              warmup_floor_s=WARMUP_FLOOR_S, settle_s=SETTLE_S)
    return {key: judged["ok"] for key, judged in result["series"].items()}


def all_flat() -> dict:
    return {key: True for key in verdict.SAMPLE_SERIES + verdict.CHUNK_SERIES}


def test_flat_noisy_series_are_flat():
    # 10% noise on every sample and 50% on every chunk's p99 is not growth.
    assert judge(samples(), chunks()) == all_flat()


def test_a_slow_rss_leak_fails_only_rss():
    # 3 MiB a minute: +90 MiB over 30 minutes, small against the noise of any one minute.
    leaking = judge(samples(rss=lambda t: 20.0 + 0.05 * t), chunks())
    assert leaking == {**all_flat(), "rss_mib": False}


def test_leaked_descriptors_of_deleted_segments_fail():
    # A reader that never closes: one more deleted file held every 10 s, and the data
    # descriptors per segment rising with them.
    leaking = judge(samples(fds_deleted=lambda t: t / 10, fds_per_segment=lambda t: 3.0 + t / 1000), chunks())
    assert leaking == {**all_flat(), "fds_deleted": False, "fds_per_segment": False}


def test_a_step_after_the_restart_that_comes_back_is_flat():
    # RSS triples and p99 reaches 30 s right after the restart, then both are back to normal.
    def rss(t):
        return 60.0 if RESTART_S <= t < RESTART_S + 60 else 20.0

    def p99(t):
        if RESTART_S <= t < RESTART_S + 60:
            return 30_000.0
        return 4_000.0 if RESTART_S + 60 <= t < RESTART_S + 120 else 200.0
    assert judge(samples(rss=rss), chunks(p99=p99)) == all_flat()


def test_a_step_after_the_restart_that_stays_fails():
    # The restart window is excluded, not the broker life after it: a level that stays up counts.
    stays_up = judge(samples(rss=lambda t: 20.0 if t < RESTART_S else 60.0), chunks())
    assert stays_up == {**all_flat(), "rss_mib": False}


def test_a_drop_is_not_a_leak():
    # p99 falling from 1 s to 200 ms and RSS halving (the machine got quieter) is flat.
    dropping = judge(samples(rss=lambda t: 40.0 - t / 90), chunks(p99=lambda t: 1000.0 - t / 2.25))
    assert dropping == all_flat()


def test_spikes_in_the_last_third_do_not_make_growth():
    # A few samples ten times the level (a burst, a busy neighbour): medians do not move.
    def rss(t):
        return 200.0 if t % 300 == 0 else 20.0

    def p99(t):
        return 20_000.0 if t in (1501.0, 1621.0) else 200.0
    assert judge(samples(rss=rss), chunks(p99=p99)) == all_flat()


def test_a_run_shorter_than_its_warm_up_is_not_judged():
    result = verdict.flatness(samples(), chunks(), duration_s=60, restarts_t_s=[30.0],
                              warmup_floor_s=70.0, settle_s=10.0)
    assert all(judged["ok"] is None for judged in result["series"].values())


def test_growth_bound_is_the_larger_of_share_and_floor():
    # RSS 20 MiB: 20% is 4 MiB, so the 16 MiB floor is the bound; +15 MiB passes, +17 fails.
    def judged(growth_mib):
        rows = samples(rss=lambda t: 20.0 if t < RESTART_S else 20.0 + growth_mib, noise=0.0)
        return verdict.flatness(rows, chunks(), duration_s=DURATION_S, restarts_t_s=[RESTART_S],
                                warmup_floor_s=WARMUP_FLOOR_S, settle_s=SETTLE_S)["series"]["rss_mib"]
    assert judged(15.0)["bound"] == 16.0
    assert judged(15.0)["ok"] is True
    assert judged(17.0)["ok"] is False


def test_backlog_lag_follows_a_stall_and_its_drain():
    # 1000 msg/s due; nothing acknowledged for the first 10 s (a stall), then 2000/s until caught
    # up: the lag peaks at 10 s and is under a second from t = 20 s on.
    timeline, acked = [], 0
    for t in range(1, 41):
        due = 1000 * t
        rate = 0 if t <= 10 else 2000
        step = min(rate, due - acked)
        acked += step
        timeline.append({"t_s": float(t), "produced_messages": step})
    lags = verdict.backlog_lag_s(timeline, 1000.0, duration_s=40.0)
    assert max(lag for _, lag in lags) == 10.0
    assert lags[9] == (10.0, 10.0)
    assert verdict.drained_after_s(lags) == 19.0
    assert lags[-1][1] == 0.0


def test_backlog_that_never_drains_has_no_drain_time():
    timeline = [{"t_s": float(t), "produced_messages": 500} for t in range(1, 31)]
    lags = verdict.backlog_lag_s(timeline, 1000.0, duration_s=30.0)
    assert lags[-1][1] == 15.0
    assert verdict.drained_after_s(lags) is None


def test_sustained_rate_is_the_probes_second_half_not_its_fast_start():
    # 10 fast seconds (page cache absorbing writes), then 10 at the disk's pace, then the drain.
    timeline = [{"t_s": float(t), "produced_messages": 400_000 if t <= 10 else 150_000 + t} for t in range(1, 21)]
    timeline += [{"t_s": 21.0, "produced_messages": 5}, {"t_s": 22.0, "produced_messages": 0}]
    rate = verdict.sustained_rate(timeline, 20)
    assert 150_011 <= rate <= 150_020
    # The run's mean would have said 275k.
    assert rate < sum(p["produced_messages"] for p in timeline[:20]) / 20 * 0.6
