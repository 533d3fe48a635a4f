"""Consumer-group takeover under crashes (issue: a crashed member's partitions were sometimes never
reassigned). The driver is group_takeover.py; each member is a confluent-kafka consumer in a child
process (takeover_member.py) looping on consume(500) and a synchronous commit().

- Every protocol (classic range, roundrobin and cooperative-sticky; KIP-848 uniform and range) at
  once on one broker, RINGTAIL_TAKEOVER_KILLS kills each (20 here; scripts/stress-group-takeover.sh
  runs more): SIGKILL right after an assignment, during a commit, during a rebalance and of the
  group leader. The survivors must own every partition within session timeout + 10 s of each kill;
  at the end every record was consumed, the committed offsets reach the high watermarks, and every
  close() returns within 10 s.
- A member that leaves cleanly, a static member restarted after a crash (and a second instance of
  it fencing the first), and the broker restarted in the middle of a rebalance.

Each case prints its seed (`case: run=... seed=...`), and failures name it: RINGTAIL_TAKEOVER_SEED=N
replays the same choices."""

from __future__ import annotations

import os
import random

import pytest

import group_takeover as takeover

KILLS = int(os.environ.get("RINGTAIL_TAKEOVER_KILLS", "20"))
SEED = int(os.environ.get("RINGTAIL_TAKEOVER_SEED") or random.randrange(1 << 31))


@pytest.fixture
def broker(start_broker):
    """KIP-848 members get the same session timeout and heartbeat interval as the classic ones."""
    return start_broker("--group-consumer-session-timeout-ms", str(takeover.SESSION_TIMEOUT_MS),
                        "--group-consumer-heartbeat-interval-ms", str(takeover.HEARTBEAT_INTERVAL_MS),
                        # Kafka's bounds (45 s and 5 s at least) lowered to let them be this short.
                        "--group-consumer-min-session-timeout-ms", str(takeover.SESSION_TIMEOUT_MS),
                        "--group-consumer-min-heartbeat-interval-ms", str(takeover.HEARTBEAT_INTERVAL_MS))


def log(line: str) -> None:
    print(line, flush=True)


@pytest.mark.timeout(1500)
def test_killed_members_partitions_are_taken_over_under_every_protocol(broker):
    log(f"seed {SEED}, {KILLS} kills per protocol")
    failures = takeover.run_all(broker.bootstrap, takeover.PROTOCOLS, KILLS, SEED, log)
    assert not failures, f"seed {SEED} (RINGTAIL_TAKEOVER_SEED={SEED} replays it):\n" + "\n".join(failures)


@pytest.fixture
def long_session_broker(start_broker):
    """KIP-848 members' session as long as the classic ones' LONG_SESSION."""
    return start_broker("--group-consumer-session-timeout-ms", str(takeover.LONG_SESSION_S * 1000),
                        "--group-consumer-heartbeat-interval-ms", str(takeover.HEARTBEAT_INTERVAL_MS),
                        # Kafka's bounds (45 s and 5 s at least) lowered to let them be this short.
                        "--group-consumer-min-session-timeout-ms", str(takeover.LONG_SESSION_S * 1000),
                        "--group-consumer-min-heartbeat-interval-ms", str(takeover.HEARTBEAT_INTERVAL_MS))


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,protocol,assignor", takeover.PROTOCOLS, ids=[p[0] for p in takeover.PROTOCOLS])
def test_a_member_that_leaves_cleanly_is_taken_over_without_waiting_for_its_session(
        long_session_broker, name, protocol, assignor):
    takeover.check_clean_leave(long_session_broker.bootstrap, name, protocol, assignor, SEED, log)


@pytest.mark.timeout(300)
def test_a_restarted_static_member_takes_its_place_back_and_fences_an_older_instance(long_session_broker):
    takeover.check_static_member_restart(long_session_broker.bootstrap, "static", SEED, log)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name,protocol,assignor", takeover.PROTOCOLS, ids=[p[0] for p in takeover.PROTOCOLS])
def test_a_broker_restart_in_the_middle_of_a_rebalance_loses_nothing(broker, name, protocol, assignor):
    takeover.check_broker_restart_mid_rebalance(broker, name, protocol, assignor, SEED, log)
