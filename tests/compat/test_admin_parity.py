"""Issue 16, config and admin half, through real clients: kafka-python 3 (describe_configs of the
BROKER and of topics with Kafka's types, the legacy alter_configs, describe_cluster, the paged
describe_topic_partitions, elect_leaders, reassignments, list_config_resources, describe_producers,
features) and confluent-kafka / librdkafka 2.16 (describe_cluster with authorized operations,
incremental_alter_configs APPEND/SUBTRACT, describe_configs sources and synonyms, a LogAppendTime
topic, compression.type recompression)."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition as CTopicPartition
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource as CResource,
                                   ConfigSource, NewTopic, ResourceType)
from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType

from compat_checks import topic_name

COMMON = {"request_timeout_ms": 15000, "bootstrap_timeout_ms": 10000}
RETENTION_MS = "86400000"


@pytest.fixture
def static_broker(start_broker):
    """A broker with one topic-config default set by flag, so a STATIC_BROKER_CONFIG shows."""
    return start_broker("--retention-ms", RETENTION_MS)


def kp_admin(bootstrap: str) -> KafkaAdminClient:
    return KafkaAdminClient(bootstrap_servers=bootstrap, client_id="ringtail-admin-parity", **COMMON)


def ck_admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


def ck_create(admin: AdminClient, topic: str, partitions: int, config: dict | None = None) -> None:
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1,
                                            config=config or {})], operation_timeout=10)
    futures[topic].result(timeout=20)


def kp_create(admin: KafkaAdminClient, topic: str, partitions: int, configs: dict | None = None) -> None:
    admin.create_topics({topic: {"num_partitions": partitions, "replication_factor": 1, "configs": configs or {}}},
                        timeout_ms=10000, wait_for_metadata=True)


def entries(result: dict, kind: str, name: str) -> dict:
    """One resource of kafka-python's describe_configs answer: {config name: entry}."""
    return result[kind][name]


def test_kafka_python_describes_the_broker_and_topics_with_kafka_types(static_broker):
    admin = kp_admin(static_broker.bootstrap)
    try:
        described = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "0")],
                                           include_synonyms=True, config_filter="all")
        broker = entries(described, "broker", "0")
        assert broker["log.retention.ms"]["value"] == RETENTION_MS
        # Dynamic in Kafka (AlterConfigs on the broker may change it), so not read-only.
        assert broker["log.retention.ms"]["read_only"] is False
        assert broker["num.partitions"]["read_only"] is True
        assert broker["advertised.listeners"]["value"] == f"PLAINTEXT://{static_broker.bootstrap}"
        assert broker["log.dirs"]["value"] == str(static_broker.data_dir)
        assert broker["num.partitions"]["value"] == "1"

        topic = topic_name("kp-types")
        kp_create(admin, topic, 1, {"file.delete.delay.ms": "1000", "min.compaction.lag.ms": "5"})
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        configs = entries(described, "topic", topic)
        assert configs["file.delete.delay.ms"]["value"] == "1000"
        assert configs["retention.ms"]["value"] == RETENTION_MS
        types = {name: configs[name]["config_type"] for name in
                 ("retention.bytes", "segment.bytes", "cleanup.policy", "preallocate", "min.cleanable.dirty.ratio")}
        assert types == {"retention.bytes": "LONG", "segment.bytes": "INT", "cleanup.policy": "LIST",
                         "preallocate": "BOOLEAN", "min.cleanable.dirty.ratio": "DOUBLE"}, types
        assert broker["log.retention.ms"]["config_source"] == "STATIC_BROKER_CONFIG"
        assert configs["retention.ms"]["config_source"] == "STATIC_BROKER_CONFIG"
    finally:
        admin.close()


def test_kafka_python_alter_configs_and_describe_cluster(broker):
    admin = kp_admin(broker.bootstrap)
    try:
        topic = topic_name("kp-alter")
        kp_create(admin, topic, 1)
        # incremental=False sends the legacy AlterConfigs (API 33), which resets left-out configs;
        # kafka-python therefore resends the topic's other overrides with it (its documented way).
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"retention.ms": "1000"})],
                            incremental=False)
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        assert entries(described, "topic", topic)["retention.ms"]["value"] == "1000"
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs={"segment.ms": "60000"})],
                            incremental=False)
        described = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)], config_filter="all")
        configs = entries(described, "topic", topic)
        assert configs["retention.ms"]["value"] == "1000"
        assert configs["retention.ms"]["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        assert configs["segment.ms"]["value"] == "60000"

        cluster = admin.describe_cluster()
        assert [b["broker_id"] for b in cluster["brokers"]] == [0]
        assert cluster["controller_id"] == 0
    finally:
        admin.close()


def test_kafka_python_one_broker_admin_answers(broker):
    admin = kp_admin(broker.bootstrap)
    try:
        topic = topic_name("kp-admin")
        kp_create(admin, topic, 3)
        first = admin.describe_topic_partitions([topic], response_partition_limit=2)
        rest = admin.describe_topic_partitions([topic], response_partition_limit=2, cursor=first["next_cursor"])
        described = [p["partition_index"] for page in (first, rest) for t in page["topics"] for p in t["partitions"]]
        assert described == [0, 1, 2]
        assert rest["next_cursor"] is None

        assert admin.list_partition_reassignments() == {}
        listed = admin.list_config_resources()
        assert topic in listed["topic"] and listed["broker"] == ["0"], listed
        features = admin.describe_features()
        assert features["metadata.version"]["finalized"] == (27, 27), features
        assert "finalized" not in features["transaction.version"], features
        elected = admin.elect_leaders(0, {topic: [0]}, raise_errors=False)
        (result,) = elected.replica_election_results
        assert [p.error_code for p in result.partition_result] == [84], elected  # ELECTION_NOT_NEEDED

        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, enable_idempotence=True, **COMMON)
        try:
            producer.send(topic, value=b"v", partition=1).get(timeout=10)
            pid = producer._transaction_manager.producer_id_and_epoch.producer_id
        finally:
            producer.close(timeout=10)
        states = admin.describe_producers([TopicPartition(topic, 1)])
        (state,) = states.values()
        assert [p.producer_id for p in state.active_producers] == [pid], state
    finally:
        admin.close()


def test_confluent_describe_cluster_with_authorized_operations(broker):
    admin = ck_admin(broker.bootstrap)
    cluster = admin.describe_cluster(include_authorized_operations=True).result(timeout=15)
    assert [node.id for node in cluster.nodes] == [0]
    assert cluster.controller.id == 0
    assert cluster.authorized_operations, "all operations are allowed while there are no ACLs"


def test_confluent_incremental_append_subtract_and_describe_sources(static_broker):
    admin = ck_admin(static_broker.bootstrap)
    topic = topic_name("ck-lists")
    ck_create(admin, topic, 1)
    resource = CResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    admin.incremental_alter_configs([resource])[resource].result(timeout=15)

    def describe() -> dict:
        target = CResource(ResourceType.TOPIC, topic)
        return admin.describe_configs([target])[target].result(timeout=15)

    assert describe()["cleanup.policy"].value == "delete,compact"
    resource = CResource(ResourceType.TOPIC, topic, incremental_configs=[
        ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT)])
    admin.incremental_alter_configs([resource])[resource].result(timeout=15)
    configs = describe()
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == ConfigSource.DYNAMIC_TOPIC_CONFIG.value
    retention = configs["retention.ms"]
    assert retention.source == ConfigSource.STATIC_BROKER_CONFIG.value
    assert "log.retention.ms" in retention.synonyms, retention.synonyms

    target = CResource(ResourceType.BROKER, "0")
    broker = admin.describe_configs([target])[target].result(timeout=15)
    assert broker["log.retention.ms"].value == RETENTION_MS
    assert not broker["log.retention.ms"].is_read_only


def consume_one(bootstrap: str, topic: str):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"g-{topic}", "enable.auto.commit": False,
                        "auto.offset.reset": "earliest"})
    try:
        consumer.assign([CTopicPartition(topic, 0, 0)])
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return message
        pytest.fail(f"nothing consumed from {topic}")
    finally:
        consumer.close()


def test_confluent_log_append_time_and_recompression(broker):
    # librdkafka 0052: a LogAppendTime topic hands consumers the broker's time, not the producer's.
    admin = ck_admin(broker.bootstrap)
    stamped, packed = topic_name("ck-lat"), topic_name("ck-zstd")
    ck_create(admin, stamped, 1, config={"message.timestamp.type": "LogAppendTime"})
    ck_create(admin, packed, 1, config={"compression.type": "zstd"})
    producer = Producer({"bootstrap.servers": broker.bootstrap, "compression.type": "gzip"})
    before_ms = int(time.time() * 1000)
    producer.produce(stamped, value=b"stamp me", timestamp=1_000)
    producer.produce(packed, value=b"x" * 2000)
    assert producer.flush(20) == 0
    kind, timestamp = consume_one(broker.bootstrap, stamped).timestamp()
    assert kind == TIMESTAMP_LOG_APPEND_TIME
    assert timestamp >= before_ms
    assert consume_one(broker.bootstrap, packed).value() == b"x" * 2000


def test_names_colliding_on_dot_and_underscore_are_not_created(start_broker):
    """Kafka refuses a topic whose name differs from an existing one only in '.' against '_'
    (they are the same in metric names): on CreateTopics with INVALID_TOPIC_EXCEPTION, and on
    Metadata auto-creation by not creating it."""
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import NewTopic
    from hostile_clients import connect, metadata_v4, read_response

    broker = start_broker()
    base = topic_name("collide")
    admin = ck_admin(broker.bootstrap)
    admin.create_topics([NewTopic(f"{base}.x", 1)])[f"{base}.x"].result(timeout=20)
    with pytest.raises(KafkaException) as refused:
        admin.create_topics([NewTopic(f"{base}_x", 1)])[f"{base}_x"].result(timeout=20)
    assert refused.value.args[0].code() == 17, refused.value  # INVALID_TOPIC_EXCEPTION
    # Metadata v4 asking to auto-create the colliding name and a fresh one: only the fresh one.
    with connect(broker.port, "127.0.0.9") as s:
        s.sendall(metadata_v4([f"{base}_x", f"{base}-y"], auto_create=True))
        assert read_response(s)
    deadline = time.monotonic() + 20
    while f"{base}-y" not in admin.list_topics(timeout=10).topics and time.monotonic() < deadline:
        time.sleep(0.2)
    topics = admin.list_topics(timeout=10).topics
    assert f"{base}-y" in topics and f"{base}.x" in topics
    assert f"{base}_x" not in topics
