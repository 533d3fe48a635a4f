"""scripts/ab_latency_goals.py summarises alternating goals runs: ratios are taken within a round,
never across rounds, and a round where a variant is missing gives no ratio."""

from __future__ import annotations

import json
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import ab_latency_goals  # noqa: E402


def write(directory, label, round_number, **figures):
    met = figures.pop("met", {})
    (directory / f"{label}-round-{round_number}.json").write_text(json.dumps({**figures, "met": met}))


def test_ratios_are_per_round_and_their_median_is_shown(tmp_path):
    # The second round is slow for both: across rounds b looks worse than a, within rounds better.
    write(tmp_path, "a", 1, catch_up_mb_s=1000.0, met={"catch_up_share_of_disk": True})
    write(tmp_path, "b", 1, catch_up_mb_s=900.0, met={"catch_up_share_of_disk": True})
    write(tmp_path, "a", 2, catch_up_mb_s=500.0, met={"catch_up_share_of_disk": False})
    write(tmp_path, "b", 2, catch_up_mb_s=550.0, met={"catch_up_share_of_disk": False})
    write(tmp_path, "a", 3, catch_up_mb_s=1200.0, met={"catch_up_share_of_disk": True})
    write(tmp_path, "b", 3, catch_up_mb_s=1080.0, met={"catch_up_share_of_disk": False})
    rounds = ab_latency_goals.load_rounds(tmp_path, ["a", "b"])
    assert sorted(rounds) == [1, 2, 3]
    assert [round(r, 3) for r in ab_latency_goals.ratios(rounds, "catch_up_mb_s", "b", "a")] == [0.9, 1.1, 0.9]
    text = ab_latency_goals.markdown(rounds, ["a", "b"])
    row = next(line for line in text.splitlines() if line.startswith("| catch-up MB/s |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:] == ["1,000 / 500 / 1,200", "1,000", "900 / 550 / 1,080", "900", "0.90 / 1.10 / 0.90 (**0.90x**)"]
    assert "- `a` met: catch_up_share_of_disk 2 of 3." in text
    assert "- `b` met: catch_up_share_of_disk 1 of 3." in text


def test_a_round_without_one_variant_gives_no_ratio(tmp_path):
    write(tmp_path, "a", 1, fixed_rate_p99_ms=2.0)
    write(tmp_path, "b", 1, fixed_rate_p99_ms=3.0)
    write(tmp_path, "a", 2, fixed_rate_p99_ms=4.0)  # b's run of round 2 failed
    # Matched by a's glob (a-round-*.json) but not a round file: left out.
    (tmp_path / "a-round-2.bak.json").write_text(json.dumps({"fixed_rate_p99_ms": 100.0}))
    rounds = ab_latency_goals.load_rounds(tmp_path, ["a", "b"])
    assert ab_latency_goals.ratios(rounds, "fixed_rate_p99_ms", "b", "a") == [1.5]
    text = ab_latency_goals.markdown(rounds, ["a", "b"])
    row = next(line for line in text.splitlines() if line.startswith("| fixed rate p99, ms |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[2:] == ["2.00 / 4.00", "3.00", "3.00 / –", "3.00", "1.50 (**1.50x**)"]
    # A figure no run has is a dash, not a zero.
    row = next(line for line in text.splitlines() if line.startswith("| catch-up MB/s |"))
    assert "0.00" not in row and "–" in row
