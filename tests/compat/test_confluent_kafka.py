"""confluent-kafka (librdkafka 2.16) against the real broker: admin (metadata, create/grow/describe/
delete topics), keyed produce, manual-assignment consume, the four codecs, acks 0/1/all, pipelined
produce requests, the idempotent producer, auto-creation on and off, durability across a restart."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, ResourceType

from compat_checks import (CODECS, Rec, confluent_create_topic as create_topic, confluent_read_and_check,
                           keyed_messages, seq_of, topic_name)

COMMON = {"socket.connection.setup.timeout.ms": 5000}


def admin_client(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap, **COMMON})


def wait_for_partitions(admin: AdminClient, topic: str, want: int, timeout_s: float = 10.0):
    """Metadata for `topic` once it shows `want` partitions (fails after timeout_s)."""
    deadline = time.monotonic() + timeout_s
    while True:
        md = admin.list_topics(topic=topic, timeout=10)
        t = md.topics.get(topic)
        if t is not None and t.error is None and len(t.partitions) == want:
            return md, t
        if time.monotonic() > deadline:
            pytest.fail(f"metadata for {topic} never showed {want} partitions: "
                        f"{None if t is None else (t.error, sorted(t.partitions))}")
        time.sleep(0.2)


def produce(bootstrap: str, topic: str, messages, **conf) -> list[Rec]:
    """Produce keyed messages (header seq=message number), wait for every delivery report, fail on any error.
    Returns the delivered messages in send order with the partition and offset the broker gave."""
    errors: list[str] = []
    results: dict[int, Rec] = {}
    client_errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 10,
                         "message.timeout.ms": 30000, "error_cb": client_errors.append, **COMMON, **conf})

    def report(i, key, value):
        def on_delivery(err, msg):
            if err is not None:
                errors.append(f"message {i}: {err}")
            else:
                offset = msg.offset()  # None (acks=0) or -1001 when the broker gave none
                results[i] = Rec(msg.partition(), offset if offset is not None and offset >= 0 else None, key, value)
        return on_delivery

    for i, (key, value) in enumerate(messages):
        while True:
            try:
                producer.produce(topic, key=key, value=value, headers=[("seq", str(seq_of(value)))],
                                 on_delivery=report(i, key, value))
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(40)
    assert left == 0, f"{left} messages still undelivered after 40 s; errors so far: {errors[:5]}"
    assert not errors, f"{len(errors)} delivery errors: {errors[:10]}"
    fatal = [e for e in client_errors if e.fatal()]
    assert not fatal, f"fatal producer errors: {fatal}"
    assert len(results) == len(messages)
    return [results[i] for i in range(len(messages))]


def test_metadata_lists_the_broker(broker):
    md = admin_client(broker.bootstrap).list_topics(timeout=10)
    assert len(md.brokers) == 1, md.brokers
    (b,) = md.brokers.values()
    # Clients connect to the advertised address: it must be the one they bootstrapped from.
    assert (b.host, b.port) == ("127.0.0.1", broker.port)
    assert isinstance(md.topics, dict)


def test_create_topic_and_metadata(bootstrap):
    admin = admin_client(bootstrap)
    topic = topic_name("ck-create")
    create_topic(bootstrap, topic, 5)
    md, t = wait_for_partitions(admin, topic, 5)
    (broker_id,) = md.brokers.keys()
    assert sorted(t.partitions) == [0, 1, 2, 3, 4]
    for p in t.partitions.values():
        assert p.error is None, (p.id, p.error)
        assert p.leader == broker_id
        assert list(p.replicas) == [broker_id]
        assert list(p.isrs) == [broker_id]
    assert topic in admin.list_topics(timeout=10).topics

    again = admin.create_topics([NewTopic(topic, num_partitions=5, replication_factor=1)], operation_timeout=10)
    with pytest.raises(KafkaException) as info:
        again[topic].result(timeout=20)
    assert info.value.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS


def test_create_partitions_then_use_them(bootstrap):
    admin = admin_client(bootstrap)
    topic = topic_name("ck-grow")
    create_topic(bootstrap, topic, 2)
    wait_for_partitions(admin, topic, 2)
    admin.create_partitions([NewPartitions(topic, 5)], operation_timeout=10)[topic].result(timeout=20)
    wait_for_partitions(admin, topic, 5)
    produced = produce(bootstrap, topic, keyed_messages(300, keys=30), **{"topic.metadata.refresh.interval.ms": 1000})
    assert {r.partition for r in produced} - {0, 1}, "nothing went to the new partitions"
    confluent_read_and_check(bootstrap, topic, 5, produced, check_headers=True)


def test_describe_configs(bootstrap):
    topic = topic_name("ck-configs")
    create_topic(bootstrap, topic, 1)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    admin = admin_client(bootstrap)  # keep the handle alive until the future resolves
    configs = admin.describe_configs([resource], request_timeout=10)[resource].result(timeout=20)
    assert isinstance(configs, dict)
    for name, entry in configs.items():
        assert entry.name == name


def test_delete_topic(bootstrap):
    admin = admin_client(bootstrap)
    topic = topic_name("ck-delete")
    create_topic(bootstrap, topic, 3)
    wait_for_partitions(admin, topic, 3)
    admin.delete_topics([topic], operation_timeout=10)[topic].result(timeout=20)
    deadline = time.monotonic() + 10
    while topic in admin.list_topics(timeout=10).topics:
        assert time.monotonic() < deadline, f"{topic} still listed 10 s after DeleteTopics"
        time.sleep(0.2)


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_roundtrip(bootstrap, codec):
    topic = topic_name(f"ck-{codec}")
    create_topic(bootstrap, topic, 4)
    produced = produce(bootstrap, topic, keyed_messages(800), **{"compression.type": codec})
    confluent_read_and_check(bootstrap, topic, 4, produced, check_headers=True)


@pytest.mark.parametrize("acks", ["0", "1"])
def test_acks(bootstrap, acks):
    topic = topic_name(f"ck-acks{acks}")
    create_topic(bootstrap, topic, 3)
    produced = produce(bootstrap, topic, keyed_messages(300, keys=12), acks=acks)
    if acks == "0":
        assert all(r.offset is None for r in produced)
    confluent_read_and_check(bootstrap, topic, 3, produced, check_headers=True)


def test_idempotent_producer(bootstrap):
    topic = topic_name("ck-idem")
    create_topic(bootstrap, topic, 4)
    produced = produce(bootstrap, topic, keyed_messages(1000),
                       **{"enable.idempotence": True, "compression.type": "lz4"})
    confluent_read_and_check(bootstrap, topic, 4, produced, check_headers=True)


def test_restart_keeps_acknowledged_messages(broker):
    topic = topic_name("ck-durable")
    create_topic(broker.bootstrap, topic, 4)
    before = produce(broker.bootstrap, topic, keyed_messages(2000), acks="all")
    broker.restart()
    confluent_read_and_check(broker.bootstrap, topic, 4, before, check_headers=True)
    # The log goes on where it stopped: offsets stay contiguous across the restart.
    more = keyed_messages(2200)[2000:]
    after = produce(broker.bootstrap, topic, more, acks="all")
    confluent_read_and_check(broker.bootstrap, topic, 4, before + after, check_headers=True)


def test_auto_create_on_produce(start_broker):
    b = start_broker("--auto-create-topics", "true", "--default-partitions", "3")
    topic = topic_name("ck-auto")
    produced = produce(b.bootstrap, topic, keyed_messages(200, keys=12))
    wait_for_partitions(admin_client(b.bootstrap), topic, 3)
    confluent_read_and_check(b.bootstrap, topic, 3, produced, check_headers=True)


def test_unknown_topic_without_auto_create(start_broker):
    b = start_broker("--auto-create-topics", "false")
    admin = admin_client(b.bootstrap)
    topic = topic_name("ck-missing")

    t = admin.list_topics(topic=topic, timeout=10).topics.get(topic)
    assert t is not None and t.error is not None, f"metadata for a missing topic: {t}"
    assert t.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART

    delivery: list[KafkaError | None] = []
    producer = Producer({"bootstrap.servers": b.bootstrap, "acks": "all", "message.timeout.ms": 15000,
                         # How long librdkafka waits for a missing topic to appear before failing.
                         "topic.metadata.propagation.max.ms": 1000, **COMMON})
    producer.produce(topic, key="k", value="v", on_delivery=lambda err, msg: delivery.append(err))
    assert producer.flush(30) == 0
    assert len(delivery) == 1 and delivery[0] is not None, f"delivery report: {delivery}"
    # librdkafka turns the broker's UNKNOWN_TOPIC_OR_PARTITION (3) into its local _UNKNOWN_TOPIC.
    assert delivery[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC), delivery[0]
    assert topic not in admin.list_topics(timeout=10).topics, "the broker created the topic anyway"


@pytest.mark.parametrize("acks, idempotent", [("0", False), ("all", False), ("all", True)],
                         ids=["acks0", "acks_all", "idempotent"])
def test_pipelined_produce_keeps_partition_order(bootstrap, acks, idempotent):
    # Many small produce requests in flight on one connection at once: the broker must append them
    # to each partition in the order they were sent, as Kafka does (it serves a connection's
    # requests one after another). An idempotent producer's sequence numbers depend on it too.
    topic = topic_name("ck-pipeline")
    create_topic(bootstrap, topic, 2)
    produced = produce(bootstrap, topic, keyed_messages(3000, keys=8), acks=acks,
                       **{"linger.ms": 0, "batch.num.messages": 5, "max.in.flight.requests.per.connection": 5,
                          "enable.idempotence": idempotent})
    confluent_read_and_check(bootstrap, topic, 2, produced, check_headers=True)
