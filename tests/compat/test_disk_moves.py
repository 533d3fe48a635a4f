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

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                  ResourceType)

from test_disks import (MIB, consume_all, create_topic, homes, jbod, metrics, produce,  # noqa: F401 (fixture)
                        wait_until_port_is_free)

SEED = int(os.environ.get("RINGTAIL_MOVE_SEED", time.time_ns() % 1_000_000))


def move(broker, topic: str, partition: int, to: Path, wait_ms: int = 120_000) -> subprocess.CompletedProcess:
    return subprocess.run([str(broker.binary), "move-partition", "--bootstrap", broker.bootstrap, "--topic", topic,
                           "--partition", str(partition), "--to", str(to), "--wait-ms", str(wait_ms)],
                          capture_output=True, text=True, timeout=wait_ms / 1000 + 30)


def leftovers(dirs: list[Path]) -> list[Path]:
    return [p for d in dirs if d.exists() for p in d.iterdir() if p.name.endswith((".move", "-delete"))]


@pytest.mark.parametrize("write_direct", ["false", "true"])
def test_a_move_under_load_keeps_every_offset_and_value(jbod, write_direct):
    # A producer keeps producing while the partition moves (the copy paced so the two overlap):
    # every acknowledged record is read back once, at the offset it was acknowledged with, from
    # the new dir; the switch pause is reported in the log. With direct writes too, which rewrite
    # the active segment's last block in place between the copy's rounds.
    broker, dirs = jbod([128, 128], "--move-bytes-per-sec", str(4 * MIB), "--write-direct", write_direct)
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


def wait_until(what: str, condition) -> None:
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.2)


def alter_topic(bootstrap: str, topic: str, configs: dict[str, str]) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    resource = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET) for name, value in configs.items()])
    admin.incremental_alter_configs([resource])[resource].result(timeout=30)


def partition_bytes(broker, directory: Path) -> float:
    return metrics(broker)[f'ringtail_data_dir_partition_bytes{{dir="{directory}"}}']


def low_watermark(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "low-watermark"})
    try:
        return consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)[0]
    finally:
        consumer.close()


def test_a_move_into_a_dir_too_small_fails_visibly_and_the_partition_keeps_serving_and_cleaning(jbod):
    # The destination fills up during the copy: the move fails, its partial copy is removed, the
    # partition keeps its home and takes writes; the failure is in the log, on /metrics (a counter
    # and a gauge naming the partition), in DescribeLogDirs as Kafka's clients see it (the
    # partition in its source, no future replica) and in `ringtail log-dirs` with its reason; and
    # compaction and retention still run on the partition afterwards (Kafka's KAFKA-14824 leaves
    # cleaning paused after a failed move).
    from kafka import KafkaAdminClient

    broker, dirs = jbod([64, 8], "--disk-limit-used-percent", "100", "--disk-warn-used-percent", "100",
                        "--log-cleanup-check-ms", "200")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    topic_created = admin.create_topics([NewTopic("toobig", 1, 1, config={"segment.bytes": str(MIB)})])
    topic_created["toobig"].result(timeout=30)
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5})
    for i in range(1500):
        producer.produce("toobig", os.urandom(10_000), key=f"k{i % 10}".encode(), partition=0)
    assert producer.flush(120) == 0
    assert homes(dirs, "toobig", 1)[0] == dirs[0]

    done = move(broker, "toobig", 0, dirs[1])
    assert done.returncode != 0
    assert "failed" in done.stderr, done.stderr
    assert "No space left" in done.stderr, "the reason reaches the operator: " + done.stderr
    assert homes(dirs, "toobig", 1)[0] == dirs[0]
    assert leftovers(dirs) == []
    values = metrics(broker)
    assert values["ringtail_partition_moves_failed_total"] == 1
    assert values[f'ringtail_partition_move_failed{{topic="toobig",partition="0",to_dir="{dirs[1]}"}}'] == 1
    assert "partition move failed" in broker.log_tail(400)

    kafka_admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        (response,) = kafka_admin.describe_log_dirs()
    finally:
        kafka_admin.close()
    seen = [(r["log_dir"], p["is_future_key"]) for r in response["log_dirs"] for t in r["topics"]
            if t["name"] == "toobig" for p in t["partitions"]]
    assert seen == [(str(dirs[0]), False)], seen
    listed = subprocess.run([str(broker.binary), "log-dirs", "--bootstrap", broker.bootstrap],
                            capture_output=True, text=True, timeout=30)
    assert listed.returncode == 0, listed.stderr
    line = next(line for line in listed.stdout.splitlines() if "toobig-0" in line)
    assert f"last move to {dirs[1]} failed" in line and "No space left" in line, listed.stdout

    after = produce(broker.bootstrap, "toobig", [b"after"])
    assert after[0][0] is None and after[0][2] == 1500

    # Compaction runs on the partition (ten keys: the closed segments shrink to a few records).
    full_bytes = partition_bytes(broker, dirs[0])
    alter_topic(broker.bootstrap, "toobig", {"cleanup.policy": "compact"})
    wait_until("compaction shrinks the partition", lambda: partition_bytes(broker, dirs[0]) < full_bytes / 2)
    assert low_watermark(broker.bootstrap, "toobig") == 0, "compaction keeps the log start"
    # And retention: size-based deletion moves the log start.
    alter_topic(broker.bootstrap, "toobig", {"cleanup.policy": "delete", "retention.bytes": "1"})
    wait_until("retention deletes closed segments", lambda: low_watermark(broker.bootstrap, "toobig") > 0)


def test_consumer_offsets_move_and_committed_offsets_stay_across_a_restart(jbod):
    # The group coordinator's own log (__consumer_offsets) moves like any partition: commits made
    # before the move read back after it, commits made after it land in the new dir, and both
    # survive a restart (the coordinator replays the moved log).
    broker, dirs = jbod([64, 64])
    create_topic(broker.bootstrap, "tracked", 2)
    assert all(err is None for err, *_ in produce(broker.bootstrap, "tracked", [b"v"] * 40, 2))

    def commit(group: str, offsets: dict[int, int]) -> None:
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False})
        try:
            consumer.commit(offsets=[TopicPartition("tracked", p, o) for p, o in offsets.items()], asynchronous=False)
        finally:
            consumer.close()

    def committed(group: str) -> dict[int, int]:
        consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group})
        try:
            found = consumer.committed([TopicPartition("tracked", p) for p in range(2)], timeout=30)
            return {tp.partition: tp.offset for tp in found}
        finally:
            consumer.close()

    commit("before", {0: 7, 1: 11})
    source = homes(dirs, "__consumer_offsets", 1)[0]
    dest = dirs[1] if source == dirs[0] else dirs[0]
    done = move(broker, "__consumer_offsets", 0, dest)
    assert done.returncode == 0, done.stdout + done.stderr
    assert homes(dirs, "__consumer_offsets", 1)[0] == dest
    assert leftovers(dirs) == []
    assert committed("before") == {0: 7, 1: 11}
    commit("after", {0: 3, 1: 5})
    assert committed("after") == {0: 3, 1: 5}
    broker.stop()
    wait_until_port_is_free(broker.port)
    broker.start()
    assert homes(dirs, "__consumer_offsets", 1)[0] == dest
    assert committed("before") == {0: 7, 1: 11}
    assert committed("after") == {0: 3, 1: 5}
    # And back again, with the coordinator still writing.
    done = move(broker, "__consumer_offsets", 0, source)
    assert done.returncode == 0, done.stdout + done.stderr
    commit("back", {0: 1, 1: 2})
    assert committed("back") == {0: 1, 1: 2}
    assert committed("before") == {0: 7, 1: 11}


def test_a_move_to_an_unknown_dir_is_refused_with_log_dir_not_found(jbod):
    # A path the broker does not have is Kafka's LOG_DIR_NOT_FOUND (57); nothing moves.
    broker, dirs = jbod([16])
    create_topic(broker.bootstrap, "nowhere", 1)
    assert produce(broker.bootstrap, "nowhere", [b"x"])[0][0] is None
    done = move(broker, "nowhere", 0, Path("/no/such/dir"))
    assert done.returncode != 0
    assert "error code 57" in done.stderr, done.stderr
    assert homes(dirs, "nowhere", 1)[0] == dirs[0]
