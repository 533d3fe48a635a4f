"""Several data dirs on small fixed-size file systems (tmpfs mounts, so these tests need root):
placement by free space and across a restart, a full disk refused and resumed, ENOSPC in the
middle of a write, a data dir gone at start, and what /metrics and DescribeLogDirs say of each.

Each test mounts its own tmpfs dirs under its temp dir and unmounts them at the end, also when it
fails. The broker runs with `--disk-check-interval-ms 100` so state changes show quickly; no test
asserts how quickly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import Broker, BrokerPool, fail_if_any, free_port

MIB = 1024 * 1024
WAIT_S = 30


def mount_tmpfs(path: Path, size_mib: int) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs", str(path)], check=True)
    return path


def fill(path: Path, leave_free_bytes: int) -> Path:
    """A filler file that leaves about `leave_free_bytes` free on the file system of `path`."""
    stat = os.statvfs(path)
    free = stat.f_bavail * stat.f_frsize
    filler = path / "filler"
    with open(filler, "wb") as out:
        chunk = b"\xa5" * MIB
        remaining = max(0, free - leave_free_bytes)
        while remaining > 0:
            remaining -= out.write(chunk[: min(len(chunk), remaining)])
    return filler


@pytest.fixture
def jbod(ringtail_bin, tmp_path, request):
    """Factory: `jbod(sizes_mib, *extra_args)` mounts one tmpfs per size and starts a broker with
    them as its data dirs (the first holds the registry); everything is torn down at the end."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount tmpfs data dirs (CI runs as root)")
    mounts: list[Path] = []
    pool = BrokerPool(request)

    def start(sizes_mib: list[int], *extra_args: str) -> tuple[Broker, list[Path]]:
        dirs = [mount_tmpfs(tmp_path / f"disk{len(mounts) + i}", size) for i, size in enumerate(sizes_mib)]
        mounts.extend(dirs)
        metrics_port = free_port()
        args = [a for d in dirs[1:] for a in ("--data-dir", str(d))]
        args += ["--disk-check-interval-ms", "100", "--metrics-listen", f"127.0.0.1:{metrics_port}", *extra_args]
        broker = Broker(ringtail_bin, dirs[0], tmp_path / f"ringtail-{len(pool)}.log", args, free_port())
        broker.metrics_port = metrics_port
        return pool.start(broker), dirs

    try:
        yield start
    finally:
        failures = pool.stop_all()
        for mount in reversed(mounts):
            subprocess.run(["umount", "-l", str(mount)], check=False)
        fail_if_any(failures)


def wait_until_port_is_free(port: int) -> None:
    """After a SIGKILL the dead broker's listening socket can outlive the process for a moment (its
    io_uring, holding an accept in flight, is torn down asynchronously): connections to the port
    are still taken, and a new broker refuses to share the port. Wait until it can be bound."""
    deadline = time.monotonic() + 30
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
                return
            except OSError:
                assert time.monotonic() < deadline, f"port {port} still held 30 s after SIGKILL"
        time.sleep(0.05)


def restart(broker: Broker) -> None:
    """A graceful restart that waits for the Kafka and metrics ports to be free again."""
    broker.stop()
    wait_until_port_is_free(broker.port)
    wait_until_port_is_free(broker.metrics_port)
    broker.start()


def metrics(broker: Broker) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{broker.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    values = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values


def dir_state(broker: Broker, directory: Path) -> str:
    # One scrape for all three gauges: scraping per state read a dir that changed state between
    # scrapes as in two states or none (['online', 'read-only'], [], a flake under load).
    scraped = metrics(broker)
    found = [state for state in ("online", "read-only", "offline")
             if scraped.get(f'ringtail_data_dir_state{{dir="{directory}",state="{state}"}}') == 1]
    assert len(found) == 1, f"exactly one state for {directory}: {found}"
    return found[0]


def wait_for_state(broker: Broker, directory: Path, state: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while dir_state(broker, directory) != state:
        assert time.monotonic() < deadline, f"{directory} never became {state}"
        time.sleep(0.1)


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        future.result(timeout=30)


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int = 1, **config) -> list:
    """Produces `values` round-robin over `partitions` partitions; returns the delivery reports as
    (error, partition, offset, value)."""
    reports = []
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})

    def delivered(err, msg):
        reports.append((err, msg.partition(), msg.offset(), msg.value()))

    for i, value in enumerate(values):
        producer.produce(topic, value, partition=i % partitions, on_delivery=delivered)
    assert producer.flush(120) == 0, "every message got a delivery report"
    return reports


def consume_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple[int, bytes]]]:
    """Every record of every partition up to its high watermark: {partition: [(offset, value)]}."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{time.monotonic_ns()}",
                         "enable.auto.commit": False})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1] for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
        got: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(partitions)}
        deadline = time.monotonic() + WAIT_S
        while any(len(got[p]) < ends[p] for p in range(partitions)):
            assert time.monotonic() < deadline, f"consumed {[len(v) for v in got.values()]} of {ends}"
            msg = consumer.poll(0.5)
            if msg is None or msg.error():
                continue
            got[msg.partition()].append((msg.offset(), msg.value()))
        return got
    finally:
        consumer.close()


def homes(dirs: list[Path], topic: str, partitions: int) -> dict[int, Path]:
    """Which data dir holds each partition's directory (exactly one each)."""
    found = {}
    for p in range(partitions):
        holding = [d for d in dirs if (d / f"{topic}-{p}").is_dir()]
        assert len(holding) == 1, f"{topic}-{p} in {holding}"
        found[p] = holding[0]
    return found


def test_new_partitions_go_to_the_freest_dir_and_stay_there_across_a_restart(jbod):
    # Placement by free space (a nearly full dir gets nothing, equal dirs share), recorded in
    # placement.json in every dir, and the same homes and records after a restart.
    broker, dirs = jbod([64, 64, 64])
    fill(dirs[1], 8 * MIB)
    # The disk monitor has seen the filler once the dir's free bytes drop.
    deadline = time.monotonic() + WAIT_S
    while metrics(broker)[f'ringtail_data_dir_free_bytes{{dir="{dirs[1]}"}}'] > 16 * MIB:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    create_topic(broker.bootstrap, "placed", 6)
    reports = produce(broker.bootstrap, "placed", [f"v{i}".encode() for i in range(60)], 6)
    assert all(err is None for err, *_ in reports)
    placed = homes(dirs, "placed", 6)
    assert dirs[1] not in placed.values(), "the nearly full dir got no partition"
    assert {dirs[0], dirs[2]} == set(placed.values()), "the two free dirs share the partitions"
    for d in dirs:
        recorded = json.loads((d / "placement.json").read_text())
        entries = {(e["topic"], e["partition"]): e["data_dir"] for e in recorded["partitions"]}
        assert all(entries[("placed", p)] == str(home) for p, home in placed.items())
    values = metrics(broker)
    assert sum(values[f'ringtail_data_dir_partitions{{dir="{d}"}}'] for d in dirs) == 8  # + __consumer_offsets, __transaction_state
    assert values[f'ringtail_data_dir_partition_bytes{{dir="{dirs[2]}"}}'] > 0
    assert values[f'ringtail_data_dir_total_bytes{{dir="{dirs[0]}"}}'] == 64 * MIB
    before = consume_all(broker.bootstrap, "placed", 6)
    # After a restart, with the filler gone (free space would now favour dir 1), homes hold.
    (dirs[1] / "filler").unlink()
    restart(broker)
    assert homes(dirs, "placed", 6) == placed
    assert consume_all(broker.bootstrap, "placed", 6) == before


def test_describe_log_dirs_lists_each_dir_with_its_partitions(jbod):
    # API 35 as kafka-python's admin client asks it: every dir, its space, its partitions and sizes.
    from kafka import KafkaAdminClient

    broker, dirs = jbod([32, 32])
    create_topic(broker.bootstrap, "described", 4)
    produce(broker.bootstrap, "described", [b"x" * 100 for _ in range(40)], 4)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        (response,) = admin.describe_log_dirs()
    finally:
        admin.close()
    results = {r["log_dir"]: r for r in response["log_dirs"]}
    assert set(results) == {str(d) for d in dirs}
    seen = {}
    for log_dir, result in results.items():
        assert result["error_code"] == 0, result
        assert result["total_bytes"] == 32 * MIB
        assert 0 < result["usable_bytes"] <= 32 * MIB
        for topic in result["topics"]:
            for partition in topic["partitions"]:
                seen[(topic["name"], partition["partition_index"])] = (log_dir, partition["partition_size"])
    placed = homes(dirs, "described", 4)
    for p, home in placed.items():
        log_dir, size = seen[("described", p)]
        assert log_dir == str(home)
        assert size > 0


def test_a_full_dir_refuses_produce_and_producing_resumes_when_space_returns(jbod):
    # Above the hard watermark Produce gets KAFKA_STORAGE_ERROR, which confluent-kafka retries:
    # the message is delivered, without a restart, once the filler is removed. Reads and group
    # commits keep working meanwhile.
    broker, dirs = jbod([64])
    create_topic(broker.bootstrap, "full", 1)
    first = produce(broker.bootstrap, "full", [f"before-{i}".encode() for i in range(20)])
    assert all(err is None for err, *_ in first)
    filler = fill(dirs[0], 1 * MIB)
    wait_for_state(broker, dirs[0], "read-only")

    reports = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "linger.ms": 5, "message.timeout.ms": 120_000})
    producer.produce("full", b"during", on_delivery=lambda err, msg: reports.append((err, msg.offset())))
    # Wait for the broker's refusal itself, not for a fixed time: on a loaded machine the
    # producer may take seconds to send its first request.
    deadline = time.monotonic() + WAIT_S
    while "data dir full: refusing produce" not in broker.log_tail(400):
        assert time.monotonic() < deadline, "no produce was refused while the dir is full"
        producer.poll(0.2)
    assert len(producer) == 1 and reports == [], "not delivered while the dir is full"

    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    try:
        consumer.assign([TopicPartition("full", 0, 0)])
        read = []
        deadline = time.monotonic() + WAIT_S
        while len(read) < 20:
            assert time.monotonic() < deadline
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                read.append(msg.value())
        assert read == [f"before-{i}".encode() for i in range(20)]
        consumer.commit(offsets=[TopicPartition("full", 0, 20)], asynchronous=False)
        committed = consumer.committed([TopicPartition("full", 0)], timeout=10)
        assert committed[0].offset == 20
    finally:
        consumer.close()

    filler.unlink()
    assert producer.flush(120) == 0, "delivered once space came back"
    assert len(reports) == 1 and reports[0][0] is None, reports
    assert reports[0][1] == 20
    assert dir_state(broker, dirs[0]) == "online"
    got = consume_all(broker.bootstrap, "full", 1)[0]
    assert [v for _, v in got] == [f"before-{i}".encode() for i in range(20)] + [b"during"]


def test_enospc_in_the_middle_of_a_write_loses_nothing_acknowledged(jbod):
    # With the watermarks out of the way, a batch larger than the space left fails mid-write:
    # answered with an error, nothing acknowledged is lost, the broker stays up, produce resumes
    # after space returns (the log is reopened), and a restart finds exactly the acknowledged data.
    broker, dirs = jbod([32], "--disk-limit-used-percent", "100", "--disk-warn-used-percent", "100")
    create_topic(broker.bootstrap, "enospc", 1)
    acked = produce(broker.bootstrap, "enospc", [f"ok-{i}".encode() for i in range(50)])
    assert all(err is None for err, *_ in acked)
    filler = fill(dirs[0], 256 * 1024)
    big = os.urandom(900 * 1024)  # incompressible, larger than the space left
    failed = produce(broker.bootstrap, "enospc", [big], retries=0,
                     **{"enable.idempotence": False, "message.max.bytes": 2 * MIB})
    assert len(failed) == 1
    assert failed[0][0] is not None and failed[0][0].code() == KafkaError.KAFKA_STORAGE_ERROR, failed
    assert "No space left on device" in broker.log_tail(400)
    assert broker.proc.poll() is None, "the broker is still running"
    assert [v for _, v in consume_all(broker.bootstrap, "enospc", 1)[0]] == [f"ok-{i}".encode() for i in range(50)]

    filler.unlink()
    wait_for_state(broker, dirs[0], "online")
    after = produce(broker.bootstrap, "enospc", [b"after"], **{"message.timeout.ms": 60_000})
    assert after[0][0] is None, after
    assert after[0][2] == 50, "the failed batch took no offset"
    restart(broker)
    got = consume_all(broker.bootstrap, "enospc", 1)[0]
    assert [offset for offset, _ in got] == list(range(51))
    assert [v for _, v in got] == [f"ok-{i}".encode() for i in range(50)] + [b"after"]


def test_a_data_dir_gone_at_start_is_offline_and_the_others_are_served(jbod):
    # A known dir that is missing at start (an unmounted disk) is offline, loudly; the broker
    # serves the other dir's partitions and answers the missing dir's with KAFKA_STORAGE_ERROR,
    # and does not recreate them empty elsewhere.
    broker, dirs = jbod([32, 32])
    create_topic(broker.bootstrap, "split", 4)
    assert all(err is None for err, *_ in produce(broker.bootstrap, "split", [f"{i}".encode() for i in range(40)], 4))
    placed = homes(dirs, "split", 4)
    lost = [p for p, home in placed.items() if home == dirs[1]]
    kept = [p for p, home in placed.items() if home == dirs[0]]
    assert lost and kept, placed
    broker.stop()
    subprocess.run(["umount", str(dirs[1])], check=True)
    dirs[1].rmdir()
    wait_until_port_is_free(broker.port)
    wait_until_port_is_free(broker.metrics_port)
    broker.start()
    assert "DATA DIR OFFLINE" in broker.log_tail(400)
    assert not dirs[1].exists(), "the missing dir was not recreated"
    assert dir_state(broker, dirs[1]) == "offline"
    assert dir_state(broker, dirs[0]) == "online"
    reports = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 3_000})
    for p in range(4):
        producer.produce("split", f"again-{p}".encode(), partition=p,
                         on_delivery=lambda err, msg: reports.append((msg.partition(), err)))
    producer.flush(30)
    errors = dict(reports)
    for p in kept:
        assert errors[p] is None, errors
    for p in lost:
        assert errors[p] is not None, f"partition {p} of the offline dir took a write"
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "offline-check"})
    try:
        for p in kept:
            low, high = consumer.get_watermark_offsets(TopicPartition("split", p), timeout=10)
            assert high == 11
    finally:
        consumer.close()
