"""The soak's flatness verdict and restart report: pure functions over the sampled series, so
that tests/compat/test_soak_verdict.py can judge synthetic series (flat, a slow leak, a step
after the restart that comes back, a drop) without running a broker.

# The rule

A series is **flat** unless it *grows*: the median of the last third of the steady run exceeds
the median of the first third by more than its bound, `max(share x first-third median, floor)`
(GROWTH_BOUNDS). Noise moves single samples, not the median of a third; a drop is never a leak.

The steady run is the duration minus:
- the warm-up, `max(WARMUP_SHARE x duration, warmup floor)`: retention only starts deleting
  once the first segments are older than retention.ms, so segments, fds and data grow until then
  (the caller passes the floor: retention.ms plus two cleanup checks);
- the restart window: for samples, from the restart until `settle_s` later (the caller passes
  retention.ms plus two cleanup checks: the restarted broker reopens segments as they are read,
  and retention needs one period to bring the count back); for p99, the load chunk that starts
  at the restart and the one after it.

The thirds are of time, `[warm-up end, end]` split in three, so with the restart in the middle
the first and last thirds are both steady state of different broker lives.
"""

from __future__ import annotations

WARMUP_SHARE = 0.10
# Series -> (share of the first third's median, absolute floor): the growth the last third's
# median may show and still be flat. Each is a leak signal:
# - rss_mib: memory (the broker's RSS was 16-24 MiB in every earlier run);
# - fds_other: descriptors that are not data files (sockets, timers...): a connection leak;
# - fds_per_segment: data-file descriptors per segment file on disk (about 3: .log, .index,
#   .timeindex); it tracks retention instead of the throughput reached, and a leak of deleted
#   segments' descriptors raises it;
# - fds_deleted: descriptors of files already deleted (a reader that never lets go);
# - data_mib: retention keeps up (it moves with the throughput reached, hence the wide share);
# - load_p99_ms: the loadgen's produce p99 per chunk (open loop, acks=all).
GROWTH_BOUNDS: dict[str, tuple[float, float]] = {
    "rss_mib": (0.20, 16.0),
    "fds_other": (0.20, 32.0),
    "fds_per_segment": (0.10, 0.25),
    "fds_deleted": (1.00, 16.0),
    "data_mib": (0.50, 64.0),
    "load_p99_ms": (1.00, 50.0),
}
SAMPLE_SERIES = ("rss_mib", "fds_other", "fds_per_segment", "fds_deleted", "data_mib")
CHUNK_SERIES = ("load_p99_ms",)
# Chunks judged as the restart window, counting the one that starts at the restart.
RESTART_CHUNKS = 2
# The loadgen's backlog counts as drained once the messages due but not acknowledged are worth
# less than this many seconds of the target rate (and stay so).
DRAINED_LAG_S = 1.0


def median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def warmup_end_s(duration_s: float, warmup_floor_s: float) -> float:
    return max(WARMUP_SHARE * duration_s, warmup_floor_s)


def thirds(start_s: float, end_s: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """The first and last thirds of `[start_s, end_s]`."""
    assert end_s > start_s, "a steady span"
    third = (end_s - start_s) / 3
    return (start_s, start_s + third), (end_s - third, end_s)


def steady_samples(samples: list[dict], warmup_s: float, restarts_t_s: list[float], settle_s: float) -> list[dict]:
    """Samples after the warm-up and outside every restart window."""
    return [s for s in samples if s["t_s"] >= warmup_s
            and not any(r <= s["t_s"] < r + settle_s for r in restarts_t_s)]


def steady_chunks(chunks: list[dict], warmup_s: float, restarts_t_s: list[float]) -> list[dict]:
    """Load chunks that start after the warm-up, without the first RESTART_CHUNKS after a restart."""
    excluded: set[int] = set()
    for restart in restarts_t_s:
        after = sorted((c["t_s"], i) for i, c in enumerate(chunks) if c["t_s"] >= restart)
        excluded.update(i for _, i in after[:RESTART_CHUNKS])
    return [c for i, c in enumerate(chunks) if c["t_s"] >= warmup_s and i not in excluded]


def judge_series(rows: list[dict], key: str, early: tuple[float, float], late: tuple[float, float]) -> dict:
    """One series: the medians of its first and last thirds, the growth, its bound, and ok."""
    first = [r[key] for r in rows if early[0] <= r["t_s"] < early[1] and r.get(key) is not None]
    last = [r[key] for r in rows if late[0] <= r["t_s"] <= late[1] and r.get(key) is not None]
    if not first or not last:
        return {"ok": None, "why": f"no {key} points in a third ({len(first)} first, {len(last)} last)"}
    early_median, late_median = median(first), median(last)
    share, floor = GROWTH_BOUNDS[key]
    bound = max(share * early_median, floor)
    growth = late_median - early_median
    return {"first_third_median": round(early_median, 3), "last_third_median": round(late_median, 3),
            "growth": round(growth, 3), "bound": round(bound, 3), "points": [len(first), len(last)],
            "ok": growth <= bound}


def flatness(samples: list[dict], chunks: list[dict], *, duration_s: float, restarts_t_s: list[float],
             warmup_floor_s: float, settle_s: float) -> dict:
    """The verdict per series plus the windows it used. `samples` rows carry `t_s` and the
    SAMPLE_SERIES keys, `chunks` rows `t_s` (chunk start) and the CHUNK_SERIES keys."""
    warmup_s = warmup_end_s(duration_s, warmup_floor_s)
    if warmup_s >= duration_s:
        return {"windows": {"warmup_end_s": warmup_s},
                "series": {k: {"ok": None, "why": "the warm-up takes the whole run"}
                           for k in SAMPLE_SERIES + CHUNK_SERIES}}
    early, late = thirds(warmup_s, duration_s)
    kept_samples = steady_samples(samples, warmup_s, restarts_t_s, settle_s)
    kept_chunks = steady_chunks(chunks, warmup_s, restarts_t_s)
    series = {key: judge_series(kept_samples, key, early, late) for key in SAMPLE_SERIES}
    series.update({key: judge_series(kept_chunks, key, early, late) for key in CHUNK_SERIES})
    windows = {"warmup_end_s": round(warmup_s, 1), "first_third_s": [round(t, 1) for t in early],
               "last_third_s": [round(t, 1) for t in late],
               "restart_windows_s": [[round(r, 1), round(r + settle_s, 1)] for r in restarts_t_s],
               "restart_chunks": RESTART_CHUNKS}
    return {"windows": windows, "series": series}


def sustained_rate(timeline: list[dict], duration_s: float) -> float:
    """The rate a flat-out loadgen run sustains: the median of its per-second acknowledged
    messages (its report's `timeline`) over the second half of its `duration_s`; the first half,
    where writes still land in free page cache, is left out. Seconds after `duration_s` (the
    drain) are left out too."""
    assert duration_s >= 2, "a probe of at least two seconds"
    half = [point["produced_messages"] for point in timeline if duration_s / 2 < point["t_s"] <= duration_s]
    assert half, "a probe's timeline with seconds in its second half"
    return median(half)


def backlog_lag_s(timeline: list[dict], rate_msgs_per_s: float, duration_s: float) -> list[tuple[float, float]]:
    """Per second of an open-loop loadgen run (its report's `timeline`, acknowledged messages per
    second since producing started): (t_s, lag_s), the messages due by then but not yet
    acknowledged, in seconds of the target rate. A message acknowledged at t waited about lag(t)
    since its intended send time: the loadgen's latency seen second by second."""
    assert rate_msgs_per_s > 0, "an open-loop rate"
    assert duration_s > 0, "a run"
    acked, lags = 0, []
    for point in timeline:
        acked += point["produced_messages"]
        due = rate_msgs_per_s * min(point["t_s"], duration_s)
        lags.append((point["t_s"], round(max(0.0, due - acked) / rate_msgs_per_s, 3)))
    return lags


def drained_after_s(lags: list[tuple[float, float]]) -> float | None:
    """Seconds into the run after which the lag stays under DRAINED_LAG_S; None if it never does."""
    last_over = 0.0
    for t_s, lag_s in lags:
        if lag_s >= DRAINED_LAG_S:
            last_over = t_s
    if lags and lags[-1][1] >= DRAINED_LAG_S:
        return None
    return last_over
