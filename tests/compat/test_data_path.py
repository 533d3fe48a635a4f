"""The data-path APIs of Kafka 4.x with real clients: kafka-python infers a 4.x broker and produces
and consumes at Produce v13 / Fetch v17 (topic ids); DeleteRecords from confluent-kafka and
kafka-python; ListOffsets' max-timestamp (KIP-734) from confluent-kafka; kcat's `-Q` timestamp
lookup; a transactional producer refused at once (transactions are not served yet)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from kafka import KafkaConsumer
from kafka import TopicPartition as KpTopicPartition

from compat_checks import confluent_create_topic, confluent_read, keyed_messages, topic_name
from test_kafka_python import COMMON as KP_COMMON
from test_kafka_python import admin_client as kp_admin_client
from test_kafka_python import create_topic as kp_create_topic
from test_kafka_python import produce as kp_produce
from test_kafka_python import read_and_check as kp_read_and_check

CONFLUENT = {"socket.connection.setup.timeout.ms": 5000}


def confluent_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **CONFLUENT})


def produce_timed(bootstrap: str, topic: str, timestamps: list[int]) -> None:
    """One message per timestamp (CreateTime), to partition 0, each acknowledged."""
    errors: list[str] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0, **CONFLUENT})
    for i, timestamp in enumerate(timestamps):
        producer.produce(topic, value=f"v{i}", partition=0, timestamp=timestamp,
                         on_delivery=lambda err, _msg: err is not None and errors.append(str(err)))
        producer.flush(10)
    assert producer.flush(10) == 0
    assert not errors, errors


def test_kafka_python_infers_a_4x_broker_and_round_trips_at_the_newest_versions(bootstrap):
    # kafka-python reads the broker's release from ApiVersions (Produce v13 means Kafka 4.1) and
    # then uses the newest versions both know: Produce v13 and Fetch v17 name topics by id.
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **KP_COMMON)
    try:
        inferred = consumer.config["api_version"]
    finally:
        consumer.close()
    assert inferred >= (4, 1), f"kafka-python took the broker for Kafka {inferred}"
    topic = topic_name("kp-v4")
    kp_create_topic(bootstrap, topic, 2)
    produced = kp_produce(bootstrap, topic, keyed_messages(200))
    kp_read_and_check(bootstrap, topic, 2, produced)


def test_kafka_python_delete_records(bootstrap):
    # The low watermark moves: beginning_offsets follows, and a consumer from the beginning
    # starts at the new start offset.
    topic = topic_name("kp-delete")
    kp_create_topic(bootstrap, topic, 1)
    kp_produce(bootstrap, topic, keyed_messages(30))
    admin = kp_admin_client(bootstrap)
    try:
        admin.delete_records({KpTopicPartition(topic, 0): 12})
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **KP_COMMON)
    try:
        tp = KpTopicPartition(topic, 0)
        assert consumer.beginning_offsets([tp], timeout_ms=10000) == {tp: 12}
    finally:
        consumer.close()


def test_confluent_delete_records_and_consume_from_the_new_start(bootstrap):
    # librdkafka's DeleteRecords answers the new low watermark; errors per partition are Kafka's;
    # a consumer reading from the beginning gets exactly the records from the start on.
    topic = topic_name("ck-delete")
    confluent_create_topic(bootstrap, topic, 1)
    produce_timed(bootstrap, topic, [1_000 + i for i in range(40)])
    admin = confluent_admin(bootstrap)
    (future,) = admin.delete_records([TopicPartition(topic, 0, 25)]).values()
    assert future.result(timeout=15).low_watermark == 25
    (beyond,) = admin.delete_records([TopicPartition(topic, 0, 41)]).values()
    with pytest.raises(KafkaException) as refused:
        beyond.result(timeout=15)
    assert refused.value.args[0].code() == KafkaError.OFFSET_OUT_OF_RANGE
    records, errors, low, high = confluent_read(bootstrap, topic, 1, 15)
    assert not errors, errors
    assert (low, high) == ({0: 25}, {0: 40})
    assert sorted(r.offset for r in records) == list(range(25, 40))


def test_confluent_list_offsets_max_timestamp(bootstrap):
    # KIP-734: the offset of the record with the largest timestamp, not the last one.
    topic = topic_name("ck-maxts")
    confluent_create_topic(bootstrap, topic, 1)
    produce_timed(bootstrap, topic, [5_000, 9_000, 7_000, 8_000])
    admin = confluent_admin(bootstrap)
    tp = TopicPartition(topic, 0)
    (future,) = admin.list_offsets({tp: OffsetSpec.max_timestamp()}).values()
    found = future.result(timeout=15)
    assert (found.offset, found.timestamp) == (1, 9_000)
    (future,) = admin.list_offsets({tp: OffsetSpec.earliest()}).values()
    assert future.result(timeout=15).offset == 0
    (future,) = admin.list_offsets({tp: OffsetSpec.for_timestamp(7_500)}).values()
    assert future.result(timeout=15).offset == 1


KCAT = shutil.which("kcat")


@pytest.mark.skipif(KCAT is None, reason="kcat is not installed (bash scripts/setup-test-deps.sh)")
def test_kcat_query_offsets_by_timestamp(bootstrap):
    # `kcat -Q -t topic:partition:timestamp` prints the first offset at or after the timestamp.
    topic = topic_name("kcat-q")
    confluent_create_topic(bootstrap, topic, 1)
    produce_timed(bootstrap, topic, [1_000, 2_000, 3_000, 4_000])
    # One query per run: kcat keeps a single timestamp per partition.
    for timestamp, offset in [(2_500, 2), (1_000, 0), (9_999, -1)]:
        cmd = [KCAT, "-b", bootstrap, "-X", "socket.connection.setup.timeout.ms=5000",
               "-Q", "-t", f"{topic}:0:{timestamp}"]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.strip() == f"{topic} [0] offset {offset}", (timestamp, done.stdout)
