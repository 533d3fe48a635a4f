"""kafka-python 3.x against the real broker: KafkaAdminClient, KafkaProducer (idempotent by default
in 3.x), KafkaConsumer with group_id=None and manual assignment, the four codecs, a restart."""

from __future__ import annotations

import dataclasses
import time

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import TopicAlreadyExistsError

from compat_checks import CODECS, CONSUME_TIMEOUT_S, Rec, check_roundtrip, keyed_messages, seq_of, topic_name

COMMON = {"request_timeout_ms": 15000, "bootstrap_timeout_ms": 10000}


def admin_client(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ringtail-compat-kafka-python", **COMMON)


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = admin_client(bootstrap)
    try:
        admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1}},
                            timeout_ms=10000, wait_for_metadata=True)
    finally:
        admin.close()


def describe_topic(admin: KafkaAdminClient, topic: str) -> dict:
    (t,) = [t for t in admin.describe_topics([topic]) if t["name"] == topic]
    return t


def produce(bootstrap: str, topic: str, messages, **conf) -> list[Rec]:
    """Send all messages (header seq=message number), then wait for every future; fail on any error."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, **COMMON, **conf)
    try:
        futures = [producer.send(topic, key=k.encode(), value=v.encode(), headers=[("seq", str(seq_of(v)).encode())])
                   for k, v in messages]
        producer.flush(timeout=40)
        produced = []
        for (k, v), f in zip(messages, futures):
            md = f.get(timeout=10)
            produced.append(Rec(md.partition, md.offset if md.offset >= 0 else None, k, v))
        if conf.get("enable_idempotence"):
            pid = producer._transaction_manager.producer_id_and_epoch
            assert pid.producer_id >= 0, f"no producer id from InitProducerId: {pid}"
        return produced
    finally:
        producer.close(timeout=10)


def read_all(bootstrap: str, topic: str, partitions: int, expected: int):
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", client_id="ringtail-compat-kafka-python", **COMMON)
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    records: list[Rec] = []
    try:
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while len(records) < expected and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500, max_records=1000).items():
                for m in batch:
                    records.append(Rec(tp.partition, m.offset, m.key.decode(), m.value.decode(),
                                       tuple((k, v.decode()) for k, v in m.headers)))
        low = {tp.partition: o for tp, o in consumer.beginning_offsets(tps, timeout_ms=10000).items()}
        high = {tp.partition: o for tp, o in consumer.end_offsets(tps, timeout_ms=10000).items()}
    finally:
        consumer.close(autocommit=False)
    return records, low, high


def read_and_check(bootstrap, topic, partitions, produced):
    records, low, high = read_all(bootstrap, topic, partitions, len(produced))
    check_roundtrip(produced, records, partitions, high_watermarks=high, low_watermarks=low, check_headers=True)


def test_metadata(broker):
    admin = admin_client(broker.bootstrap)
    try:
        cluster = admin.describe_cluster()
        brokers = cluster["brokers"]
        assert len(brokers) == 1, brokers
        assert (brokers[0]["host"], brokers[0]["port"]) == ("127.0.0.1", broker.port)
        assert isinstance(admin.list_topics(), list)
    finally:
        admin.close()


def test_admin_create_describe_grow(bootstrap):
    admin = admin_client(bootstrap)
    topic = topic_name("kp-admin")
    try:
        admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}},
                            timeout_ms=10000, wait_for_metadata=True)
        assert topic in admin.list_topics()
        t = describe_topic(admin, topic)
        assert t["error_code"] == 0
        assert sorted(p["partition_index"] for p in t["partitions"]) == [0, 1, 2]
        assert all(p["error_code"] == 0 and p["leader_id"] >= 0 for p in t["partitions"]), t

        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics({topic: {"num_partitions": 3, "replication_factor": 1}}, timeout_ms=10000)

        admin.create_partitions({topic: 5}, timeout_ms=10000)
        deadline = time.monotonic() + 10
        while len(describe_topic(admin, topic)["partitions"]) != 5:
            assert time.monotonic() < deadline, "CreatePartitions did not show up in metadata within 10 s"
            time.sleep(0.2)

        configs = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        assert isinstance(configs, dict)

        admin.delete_topics([topic], timeout_ms=10000)
        deadline = time.monotonic() + 10
        while topic in admin.list_topics():
            assert time.monotonic() < deadline, f"{topic} still listed 10 s after DeleteTopics"
            time.sleep(0.2)
    finally:
        admin.close()


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_roundtrip(bootstrap, codec):
    # kafka-python 3.x defaults: acks=all, enable_idempotence=True (InitProducerId first).
    topic = topic_name(f"kp-{codec}")
    create_topic(bootstrap, topic, 4)
    produced = produce(bootstrap, topic, keyed_messages(600),
                       compression_type=None if codec == "none" else codec)
    read_and_check(bootstrap, topic, 4, produced)


@pytest.mark.parametrize("acks", [0, 1])
def test_acks_without_idempotence(bootstrap, acks):
    topic = topic_name(f"kp-acks{acks}")
    create_topic(bootstrap, topic, 3)
    produced = produce(bootstrap, topic, keyed_messages(300, keys=12), acks=acks, enable_idempotence=False)
    if acks == 0:
        # No answer, so no offsets: kafka-python 3.0.12 synthesizes a success with base offset 0
        # and reports batch positions as offsets, which match the log only when each partition got
        # exactly one batch. Check what was stored, not those made-up offsets.
        produced = [dataclasses.replace(record, offset=None) for record in produced]
    read_and_check(bootstrap, topic, 3, produced)


def test_idempotent_producer(bootstrap):
    topic = topic_name("kp-idem")
    create_topic(bootstrap, topic, 4)
    produced = produce(bootstrap, topic, keyed_messages(800), acks="all", enable_idempotence=True,
                       compression_type="zstd")
    read_and_check(bootstrap, topic, 4, produced)


def test_restart_keeps_acknowledged_messages(broker):
    topic = topic_name("kp-durable")
    create_topic(broker.bootstrap, topic, 4)
    before = produce(broker.bootstrap, topic, keyed_messages(1500), acks="all")
    broker.restart()
    read_and_check(broker.bootstrap, topic, 4, before)
    after = produce(broker.bootstrap, topic, keyed_messages(1700)[1500:], acks="all")
    read_and_check(broker.bootstrap, topic, 4, before + after)


def test_group_consumer_consumes_to_the_end_and_commits(bootstrap):
    # kafka-python's group consumer: subscribe, read every message once, commit, and the committed
    # offsets are the partitions' ends.
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = topic_name("kp-group")
    create_topic(bootstrap, topic, 3)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for i in range(300):
        producer.send(topic, key=str(i % 11).encode(), value=f"m{i}".encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=topic_name("kpg"), auto_offset_reset="earliest",
                             enable_auto_commit=False, consumer_timeout_ms=20000)
    try:
        seen = set()
        for message in consumer:
            seen.add((message.partition, message.offset))
            if len(seen) == 300:
                break
        assert len(seen) == 300
        consumer.commit()
        partitions = [TopicPartition(topic, p) for p in range(3)]
        ends = consumer.end_offsets(partitions)
        assert {tp.partition: consumer.committed(tp) for tp in partitions} == {tp.partition: ends[tp] for tp in partitions}
    finally:
        consumer.close()
