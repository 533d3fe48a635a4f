"""The soak script's smoke form (issue 14, section 4): scripts/soak.py for one minute, so CI knows
the script works and that, through a consumer group whose members come and go, retention,
compaction and a broker restart, every acknowledged record is read and compaction keeps each
key's last value. Flatness is the long run's verdict (scripts/soak.sh, results/soak/), not
asserted here: one minute says nothing about growth (the verdict's rule has its own unit tests,
test_soak_verdict.py); only that every series was judged or said why not.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO


# One minute of soak plus the broker's starts, the drain and the checks: over the default 120 s.
@pytest.mark.timeout(240)
def test_one_minute_soak_loses_nothing_through_churn_retention_compaction_and_a_restart(
        ringtail_bin, loadgen_bin, tmp_path):
    out = tmp_path / "soak"
    command = [sys.executable, str(REPO / "scripts" / "soak.py"), "--duration", "60s", "--max-rate", "3000", "--load-retention-ms", "10000",
               "--chunk-s", "15", "--churn-s", "8", "--sample-s", "2", "--ringtail", str(ringtail_bin),
               "--loadgen", str(loadgen_bin), "--work-dir", str(tmp_path), "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=220)
    summary_path = out / "summary.json"
    assert summary_path.exists(), f"no summary\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    summary = json.loads(summary_path.read_text())
    verdict = summary["verdict"]
    assert summary["errors"] == [], summary["errors"]
    assert verdict["records_lost"] == 0, summary["group"]
    assert summary["group"]["read"] == summary["group"]["acknowledged"] > 0
    assert summary["group"]["members_left"] >= 3, "members came and went"
    assert summary["compacted"]["ok"], summary["compacted"]
    assert len(summary["restart"]) == 1 and summary["restart"][0]["stop_exit"] == 0
    assert summary["restart"][0]["chunks"], "the chunks after the restart are reported apart"
    assert summary["loadgen"]["produced"] > 0
    assert summary["loadgen"]["consumed"] == summary["loadgen"]["produced"]
    assert summary["retention"]["load_log_start"] > 0, "retention deleted the load topic's first segments"
    assert set(summary["verdict"]["flat"]) == {"rss_mib", "fds_other", "fds_per_segment", "fds_deleted",
                                               "data_mib", "load_p99_ms"}
    for name in ("samples.csv", "chunks.csv", "lag.csv", "soak.svg"):
        assert (out / name).stat().st_size > 0, name

