"""Moving a partition between data dirs (AlterReplicaLogDirs, `ringtail move-partition`) on tmpfs
mounts: under load with every offset checked, SIGKILLed at random points, into a dir too small,
and to a dir the broker does not have. Needs root (mounts), like test_disks.py."""

from __future__ import annotations

import os
import random
import re
import subprocess
import threading
import time
from pathlib import Path

from confluent_kafka import Producer

from test_disks import (MIB, consume_all, create_topic, homes, jbod, metrics, produce,  # noqa: F401 (fixture)
                        wait_until_port_is_free)

SEED = int(os.environ.get("RINGTAIL_MOVE_SEED", time.time_ns() % 1_000_000))


def move(broker, topic: str, partition: int, to: Path, wait_ms: int = 120_000) -> subprocess.CompletedProcess:
    return subprocess.run([str(broker.binary), "move-partition", "--bootstrap", broker.bootstrap, "--topic", topic,
                           "--partition", str(partition), "--to", str(to), "--wait-ms", str(wait_ms)],
                          capture_output=True, text=True, timeout=wait_ms / 1000 + 30)


def leftovers(dirs: list[Path]) -> list[Path]:
    return [p for d in dirs if d.exists() for p in d.iterdir() if p.name.endswith(".move")]


def test_a_move_under_load_keeps_every_offset_and_value(jbod):
    # A producer keeps producing while the partition moves (the copy paced so the two overlap):
    # every acknowledged record is read back once, at the offset it was acknowledged with, from
    # the new dir; the switch pause is reported in the log.
    broker, dirs = jbod([128, 128], "--move-bytes-per-sec", str(4 * MIB))
    create_topic(broker.bootstrap, "moving", 1)
    preload = produce(broker.bootstrap, "moving", [os.urandom(10_000) for _ in range(1000)])  # ~10 MB
    assert all(err is None for err, *_ in preload)
    source = homes(dirs, "moving", 1)[0]
    dest = dirs[1] if source == dirs[0] else dirs[0]

    acked: dict[int, bytes] = {offset: value for _, _, offset, value in preload}
    failures = []
    stop = threading.Event()

    def keep_producing():
        producer = Producer({"bootstrap.servers": broker.bootstrap, "enable.idempotence": True, "linger.ms": 2})
        sent = 0

        def delivered(err, msg):
            if err is None:
                acked[msg.offset()] = msg.value()
            else:
                failures.append(err)

        while not stop.is_set():
            producer.produce("moving", f"live-{sent}".encode(), on_delivery=delivered)
            sent += 1
            producer.poll(0)
            time.sleep(0.002)
        assert producer.flush(60) == 0

    thread = threading.Thread(target=keep_producing)
    thread.start()
    try:
        done = move(broker, "moving", 0, dest)
    finally:
        time.sleep(0.5)
        stop.set()
        thread.join()
    assert done.returncode == 0, done.stdout + done.stderr
    assert failures == [], failures
    assert homes(dirs, "moving", 1)[0] == dest
    assert leftovers(dirs) == []
    got = consume_all(broker.bootstrap, "moving", 1)[0]
    assert [offset for offset, _ in got] == list(range(len(got))), "offsets contiguous, none lost"
    assert dict(got) == acked, "every acknowledged record, once, at its offset"
    pause = re.findall(r"switch_pause_ms=(\d+)", broker.log_tail(2000))
    assert pause, "the switch pause is logged"
    print(f"switch pause: {pause[-1]} ms, records during the move: {len(acked) - 1000}")


def test_sigkill_at_random_points_of_moves_leaves_exactly_one_complete_copy(jbod):
    # 20 moves back and forth, each SIGKILLed after a random delay (during the copy, the switch,
    # or after): after each restart the partition lives in exactly one dir, no partial copy is
    # left, and every acknowledged record is there.
    rng = random.Random(SEED)
    print(f"RINGTAIL_MOVE_SEED={SEED}")
    broker, dirs = jbod([64, 64], "--move-bytes-per-sec", str(8 * MIB))
    create_topic(broker.bootstrap, "killed", 1)
    values = [os.urandom(4000) for _ in range(1000)]  # ~4 MB: a paced copy of about half a second
    assert all(err is None for err, *_ in produce(broker.bootstrap, "killed", values))
    for round_number in range(20):
        home = homes(dirs, "killed", 1)[0]
        dest = dirs[1] if home == dirs[0] else dirs[0]
        mover = subprocess.Popen([str(broker.binary), "move-partition", "--bootstrap", broker.bootstrap,
                                  "--topic", "killed", "--partition", "0", "--to", str(dest)],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0, 0.8))
        broker.kill()
        mover.kill()
        mover.wait()
        wait_until_port_is_free(broker.port)
        broker.start()
        assert leftovers(dirs) == [], f"round {round_number} (seed {SEED})"
        homes(dirs, "killed", 1)  # exactly one copy, asserted inside
        got = consume_all(broker.bootstrap, "killed", 1)[0]
        assert [v for _, v in got] == values, f"round {round_number} (seed {SEED})"


def test_a_move_into_a_dir_too_small_fails_and_the_partition_serves_from_its_source(jbod):
    # The destination fills up during the copy: the move fails, its partial copy is removed, the
    # partition keeps its home and takes writes, and the failure is counted on /metrics.
    broker, dirs = jbod([64, 8], "--disk-limit-used-percent", "100", "--disk-warn-used-percent", "100")
    create_topic(broker.bootstrap, "toobig", 1)
    assert all(err is None for err, *_ in produce(broker.bootstrap, "toobig", [os.urandom(10_000) for _ in range(1500)]))
    assert homes(dirs, "toobig", 1)[0] == dirs[0]
    done = move(broker, "toobig", 0, dirs[1])
    assert done.returncode != 0
    assert "failed" in done.stderr, done.stderr
    assert homes(dirs, "toobig", 1)[0] == dirs[0]
    assert leftovers(dirs) == []
    assert metrics(broker)["ringtail_partition_moves_failed_total"] == 1
    assert "partition move failed" in broker.log_tail(400)
    after = produce(broker.bootstrap, "toobig", [b"after"])
    assert after[0][0] is None and after[0][2] == 1500


def test_a_move_to_an_unknown_dir_is_refused_with_log_dir_not_found(jbod):
    # A path the broker does not have is Kafka's LOG_DIR_NOT_FOUND (57); nothing moves.
    broker, dirs = jbod([16])
    create_topic(broker.bootstrap, "nowhere", 1)
    assert produce(broker.bootstrap, "nowhere", [b"x"])[0][0] is None
    done = move(broker, "nowhere", 0, Path("/no/such/dir"))
    assert done.returncode != 0
    assert "error code 57" in done.stderr, done.stderr
    assert homes(dirs, "nowhere", 1)[0] == dirs[0]
