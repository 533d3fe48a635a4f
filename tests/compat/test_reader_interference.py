"""scripts/reader_interference.py splits the machine's CPU time over a run into shares from two
/proc/stat readings; checked on synthetic readings, so a steal share can't be misread."""

from __future__ import annotations

import sys

import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import reader_interference  # noqa: E402


def test_shares_of_the_cpu_time_between_two_readings():
    # user nice system idle iowait irq softirq steal
    before = [100, 0, 50, 1000, 10, 0, 5, 2]
    after = [160, 0, 90, 1060, 30, 0, 15, 22]  # +60 +0 +40 +60 +20 +0 +10 +20 = 210 ticks
    shares = reader_interference.shares(before, after)
    assert shares["steal"] == pytest.approx(20 / 210)
    assert shares["iowait"] == pytest.approx(20 / 210)
    assert shares["softirq"] == pytest.approx(10 / 210)
    # Busy is everything but idle and iowait: steal counts as busy (the vCPU had work).
    assert shares["busy"] == pytest.approx(130 / 210)


def test_no_ticks_between_readings_is_all_zero_shares():
    reading = [1, 2, 3, 4, 5, 6, 7, 8]
    shares = reader_interference.shares(reading, reading)
    assert set(shares) == {*reader_interference.STAT_FIELDS, "busy"}
    assert all(share == 0.0 for share in shares.values())
