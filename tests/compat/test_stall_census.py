"""scripts/stall_census.py counts a second as a stall by its longest produce latency; checked on a
synthetic report, including one from a loadgen that did not record it."""

from __future__ import annotations

import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import stall_census  # noqa: E402


def test_seconds_over_the_bound_are_stalls():
    report = {"produce": {"latency_us": {"p99": 8_000, "p999": 120_000}},
              "timeline": [{"t_s": 1, "produce_latency_max_us": 9_000},
                           {"t_s": 2, "produce_latency_max_us": 150_000},
                           {"t_s": 3, "produce_latency_max_us": 50_000},
                           {"t_s": 4}]}
    figures = stall_census.summary(report, stall_ms=50)
    assert figures == {"p99_ms": 8.0, "p999_ms": 120.0, "worst_second_ms": 150.0, "stall_seconds": 1}
