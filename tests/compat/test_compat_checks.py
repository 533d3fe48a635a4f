"""The round-trip checker itself (no broker): it accepts a good round trip and names each kind of
fault, so a passing client test means what it says."""

from __future__ import annotations

import re
import zlib

import pytest

from compat_checks import Rec, check_roundtrip, keyed_messages


def good_roundtrip(n=60, partitions=3):
    produced, next_offset = [], [0] * partitions
    for k, v in keyed_messages(n, keys=9):
        p = zlib.crc32(k.encode()) % partitions
        produced.append(Rec(p, next_offset[p], k, v, (("seq", v[1:].split("-")[0]),)))
        next_offset[p] += 1
    consumed = sorted(produced, key=lambda r: (r.partition, r.offset))
    return produced, consumed, {p: n for p, n in enumerate(next_offset)}


def test_accepts_a_good_roundtrip():
    produced, consumed, high = good_roundtrip()
    check_roundtrip(produced, consumed, 3, high_watermarks=high, low_watermarks={0: 0, 1: 0, 2: 0},
                    check_headers=True)


def renumber(records):
    """Offsets 0.. per partition in the given order (what a broker would assign)."""
    out, nxt = [], {}
    for r in records:
        out.append(Rec(r.partition, nxt.get(r.partition, 0), r.key, r.value, r.headers))
        nxt[r.partition] = nxt.get(r.partition, 0) + 1
    return out


@pytest.mark.parametrize("fault, expect", [
    ("missing", "never consumed"),
    ("duplicate", "more than once"),
    ("gap", "not contiguous"),
    ("reorder", "not in produce order"),
    ("split_key", "several partitions"),
    ("wrong_report", "disagree"),
    ("high_watermark", "high watermark"),
    ("headers", "wrong headers"),
    ("stranger", "never produced"),
])
def test_names_each_fault(fault, expect):
    produced, consumed, high = good_roundtrip()
    if fault == "missing":
        last = max(consumed, key=lambda r: (r.partition, r.offset))
        consumed = [r for r in consumed if r is not last]
        high[last.partition] -= 1
    elif fault == "duplicate":
        consumed = consumed + [consumed[-1]]
    elif fault == "gap":
        consumed = [Rec(r.partition, r.offset + (r.offset >= 3), r.key, r.value, r.headers) for r in consumed]
    elif fault == "reorder":
        p0 = [r for r in consumed if r.partition == 0]
        p0[0], p0[1] = p0[1], p0[0]
        consumed = renumber(p0 + [r for r in consumed if r.partition != 0])
        produced = [next(c for c in consumed if c.value == r.value) for r in produced]
    elif fault == "split_key":
        r = consumed[0]
        other = (r.partition + 1) % 3
        consumed = renumber([Rec(other, None, r.key, r.value, r.headers)] + consumed[1:])
        produced = [Rec(-1, None, r.key, r.value) for r in produced]
        high = None
    elif fault == "wrong_report":
        produced = [Rec(r.partition, r.offset + 1 if i == 5 else r.offset, r.key, r.value)
                    for i, r in enumerate(produced)]
    elif fault == "high_watermark":
        high[1] += 1
    elif fault == "headers":
        consumed = [Rec(r.partition, r.offset, r.key, r.value, (("seq", "x"),) if i == 2 else r.headers)
                    for i, r in enumerate(consumed)]
    elif fault == "stranger":
        consumed = consumed + [Rec(0, high[0], "k0", "v999-k0", (("seq", "999"),))]
        high[0] += 1
    with pytest.raises(AssertionError, match=re.escape(expect)):
        check_roundtrip(produced, consumed, 3, high_watermarks=high, check_headers=True)
