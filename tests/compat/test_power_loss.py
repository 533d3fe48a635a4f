"""Power loss, for real (issue 14): the `ringtail` binary on a filesystem that forgets.

The broker's data dir is on tests/forgetful-fs, a FUSE filesystem that keeps what was not
fsynced in memory only; the harness (power_loss.py) SIGKILLs the broker and drops everything not
durable, again and again. Under `every_batch`, nothing acknowledged may be lost or duplicated;
under `none`, acknowledged records are lost (so we know the harness can see a loss), but the log
that recovery leaves is still a valid prefix. scripts/power-loss.sh runs the long form
(POWER_LOSS_ROUNDS, POWER_LOSS_SEED).

Needs root and /dev/fuse (the filesystem mounts through /dev/fuse directly); without them each
test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import random

import pytest

from power_loss import forgetful_fs_bin, needs_fuse, powered, run_rounds  # noqa: F401 (fixtures)

ROUNDS = int(os.environ.get("POWER_LOSS_ROUNDS", "20"))
SEED = int(os.environ.get("POWER_LOSS_SEED", str(random.SystemRandom().getrandbits(32))))
# About 3 s per round on 2 shared cores, plus the broker's starts.
TIMEOUT_S = 60 + ROUNDS * 10



def describe(report, seed: int) -> str:
    return (f"seed {seed}: {report.rounds} rounds, {report.power_losses} power losses, "
            f"{report.acked} records acknowledged, {report.records_checked} record reads checked; "
            f"forgetful-fs {report.fs_stats}")


def record(test: str, flush: str, report, lost: int) -> None:
    """Appends the run's figures to POWER_LOSS_REPORT (a JSON-lines file), if set."""
    path = os.environ.get("POWER_LOSS_REPORT")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"test": test, "flush": flush, "seed": SEED, "rounds": report.rounds,
                                  "power_losses": report.power_losses, "acked": report.acked,
                                  "records_checked": report.records_checked, "acked_lost": lost,
                                  "forgetful_fs": report.fs_stats}) + "\n")


@needs_fuse
@pytest.mark.timeout(TIMEOUT_S)
def test_every_batch_keeps_every_acknowledged_record_through_power_losses(powered):
    """Under every_batch with acks=all, after each of ROUNDS power losses: every acknowledged
    record at its offset, exactly once, no gap, and the committed offsets as last committed."""
    fs, broker = powered("every_batch")
    ledger, report = run_rounds(fs, broker, ROUNDS, SEED, stop_on_loss=False)
    record("every_batch", "every_batch", report, sum(len(check.missing) for check in report.checks))
    for round_no, check in enumerate(report.checks):
        where = f"{describe(report, SEED)}; after power loss {round_no + 1}"
        assert check.missing == [], f"{where}: acknowledged records lost: {check.missing[:10]}"
        assert check.duplicates == [], f"{where}: records twice: {check.duplicates[:10]}"
        assert check.gaps == [], f"{where}: {check.gaps[:10]}"
        assert check.read_errors == [], f"{where}: {check.read_errors[:10]}"
        assert check.offsets_lost == [], f"{where}: {check.offsets_lost}"
    assert ledger.offsets_reused == [], f"offsets acknowledged twice: {ledger.offsets_reused[:10]}"
    assert ledger.produce_errors == [], ledger.produce_errors[:10]
    assert report.power_losses == ROUNDS
    assert report.acked >= ROUNDS * 20, "each round acknowledged records before its power loss"


@needs_fuse
@pytest.mark.timeout(TIMEOUT_S)
def test_flush_none_loses_acknowledged_records_yet_recovers_a_valid_prefix(powered):
    """Under none, the harness must see acknowledged records lost (else it could not fail), and
    the log recovery leaves is still a valid prefix: no gap, no corrupt batch, no record twice."""
    fs, broker = powered("none")
    ledger, report = run_rounds(fs, broker, ROUNDS, SEED, stop_on_loss=True)
    lost = sum(len(check.missing) for check in report.checks)
    record("none", "none", report, lost)
    assert lost > 0, f"{describe(report, SEED)}: no acknowledged record lost under flush=none"
    for check in report.checks:
        assert check.gaps == [], check.gaps[:10]
        assert check.read_errors == [], check.read_errors[:10]
        assert check.records > 0 or check.missing, "the log was read"
