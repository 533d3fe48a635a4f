"""Log compaction seen by a real client (confluent-kafka): a topic with cleanup.policy=compact and
small segments, keyed updates (plain and compressed), then — once the broker's maintenance has
rolled (segment.ms) and cleaned the log — a read from the beginning gives one record per key, the
latest, at the offset it was produced at. Also: a null key is refused with INVALID_RECORD, and the
offsets topic is compacted."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import OFFSET_BEGINNING, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from compat_checks import confluent_consumer, topic_name

COMMON = {"socket.connection.setup.timeout.ms": 5000}
# Maintenance (retention, segment.ms rolls, compaction) every 200 ms instead of every 5 minutes.
BROKER_ARGS = ("--log-cleanup-check-ms", "200")
COMPACTION_TIMEOUT_S = 60.0
KEYS = 12
UPDATES_PER_KEY = 25


def create_compacted_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap, **COMMON})
    config = {
        "cleanup.policy": "compact",
        "segment.bytes": "4096",
        "segment.ms": "300",
        "min.cleanable.dirty.ratio": "0.01",
    }
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1, config=config)],
                                  operation_timeout=10)
    futures[topic].result(timeout=20)


def produce(bootstrap: str, topic: str, messages, compression: str) -> dict[str, tuple[int, str | None]]:
    """Produce (key, value) pairs in several flushes (several batches and segments); returns each
    key's latest (offset, value) from the delivery reports."""
    latest: dict[str, tuple[int, str | None]] = {}
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                         "compression.type": compression, **COMMON})

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        key = msg.key().decode()
        value = msg.value().decode() if msg.value() is not None else None
        if key not in latest or latest[key][0] < msg.offset():
            latest[key] = (msg.offset(), value)

    for index, (key, value) in enumerate(messages):
        producer.produce(topic, key=key, value=value, on_delivery=on_delivery)
        if index % 40 == 39:
            producer.flush(30)
    assert producer.flush(30) == 0
    assert not errors, errors
    return latest


def read_all(bootstrap: str, topic: str) -> list[tuple[int, str, str | None]]:
    """Every record from the log start to the high watermark: (offset, key, value)."""
    consumer = confluent_consumer(bootstrap, **{"enable.partition.eof": True})
    out = []
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error() is not None:
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    return out
                raise AssertionError(str(msg.error()))
            value = msg.value().decode() if msg.value() is not None else None
            out.append((msg.offset(), msg.key().decode(), value))
        raise AssertionError(f"no end of partition within 30 s; read {len(out)}")
    finally:
        consumer.close()


def wait_for_compaction(bootstrap: str, topic: str, keys: int) -> list[tuple[int, str, str | None]]:
    """Reads the topic from the start until it holds one record per key (or fails after the timeout)."""
    deadline = time.monotonic() + COMPACTION_TIMEOUT_S
    while True:
        records = read_all(bootstrap, topic)
        if len(records) <= keys or time.monotonic() > deadline:
            return records
        time.sleep(0.5)


@pytest.mark.parametrize("compression", ["none", "lz4", "zstd", "snappy", "gzip"])
def test_compaction_keeps_the_latest_record_per_key_at_its_offset(start_broker, compression):
    broker = start_broker(*BROKER_ARGS)
    topic = topic_name(f"compact-{compression}")
    create_compacted_topic(broker.bootstrap, topic)
    messages = [(f"key-{i % KEYS}", f"value-{i}-" + "x" * 40) for i in range(KEYS * UPDATES_PER_KEY)]
    # One key ends deleted: its tombstone (null value) stays, as delete.retention.ms is a day.
    messages.append(("key-0", None))
    latest = produce(broker.bootstrap, topic, messages, compression)
    records = wait_for_compaction(broker.bootstrap, topic, KEYS)
    expected = sorted((offset, key, value) for key, (offset, value) in latest.items())
    assert records == expected
    # The log's end is unchanged, and new appends go on after it.
    consumer = confluent_consumer(broker.bootstrap)
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    finally:
        consumer.close()
    assert (low, high) == (0, len(messages))
    # A restart recovers the compacted log as it was.
    broker.restart()
    assert read_all(broker.bootstrap, topic) == expected


def test_null_key_is_refused_by_a_compacted_topic(start_broker):
    broker = start_broker(*BROKER_ARGS)
    topic = topic_name("compact-nullkey")
    create_compacted_topic(broker.bootstrap, topic)
    reports = []
    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "all", "retries": 0, **COMMON})
    # Separate flushes: a refusal is for the whole batch, as in Kafka.
    producer.produce(topic, value=b"no key", on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(30) == 0
    producer.produce(topic, key=b"k", value=b"keyed", on_delivery=lambda err, msg: reports.append(err))
    assert producer.flush(30) == 0
    codes = sorted(err.code() if err is not None else 0 for err in reports)
    assert codes == [0, KafkaError.INVALID_RECORD], reports


def test_offsets_topic_is_compacted(start_broker):
    broker = start_broker(*BROKER_ARGS)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **COMMON})
    resource = ConfigResource("TOPIC", "__consumer_offsets")
    described = admin.describe_configs([resource])[resource].result(timeout=20)
    assert described["cleanup.policy"].value == "compact"


def offsets_topic_records(bootstrap: str) -> list[tuple[int, str, str | None]]:
    return read_all(bootstrap, "__consumer_offsets")


def test_offsets_topic_compaction_keeps_commits_and_deletions(start_broker):
    # The coordinator keys every record and writes tombstones: after the offsets topic is compacted
    # and the broker restarts, the latest commit is there and a deleted group stays deleted.
    from confluent_kafka import Consumer
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    broker = start_broker(*BROKER_ARGS)
    admin = AdminClient({"bootstrap.servers": broker.bootstrap, **COMMON})
    entries = [ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
               for name, value in [("segment.ms", "300"), ("min.cleanable.dirty.ratio", "0.01")]]
    resource = ConfigResource("TOPIC", "__consumer_offsets", incremental_configs=entries)
    admin.incremental_alter_configs([resource])[resource].result(timeout=20)
    topic = topic_name("compact-offsets")
    create_compacted_topic(broker.bootstrap, topic)
    produce(broker.bootstrap, topic, [(f"k{i}", f"v{i}") for i in range(5)], "none")

    def committer(group: str):
        return Consumer({"bootstrap.servers": broker.bootstrap, "group.id": group, "enable.auto.commit": False,
                         **COMMON})

    keep, gone = topic_name("keep"), topic_name("gone")
    for group, commits in [(keep, range(1, 31)), (gone, range(1, 3))]:
        consumer = committer(group)
        try:
            for offset in commits:
                consumer.commit(offsets=[TopicPartition(topic, 0, offset)], asynchronous=False)
        finally:
            consumer.close()
    admin.delete_consumer_groups([gone])[gone].result(timeout=15)

    def commits_of(group: str, records) -> list:
        return [r for r in records if r[1].startswith(f"offset\0{group}\0")]

    deadline = time.monotonic() + COMPACTION_TIMEOUT_S
    while True:
        records = offsets_topic_records(broker.bootstrap)
        if len(commits_of(keep, records)) == 1 and len(commits_of(gone, records)) == 1:
            break
        assert time.monotonic() < deadline, f"offsets topic not compacted: {len(records)} records"
        time.sleep(0.5)
    assert commits_of(gone, records)[0][2] is None, "the deleted group's offset is a tombstone"

    broker.restart()
    for group, want in [(keep, 30), (gone, -1001)]:
        consumer = committer(group)
        try:
            assert consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == want, group
        finally:
            consumer.close()
