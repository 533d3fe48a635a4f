"""Consumer groups of the next-generation protocol (KIP-848, `group.protocol=consumer`) with
confluent-kafka: the broker assigns partitions with its `uniform` and `range` assignors, a joining
member takes a share, a SIGKILLed member's partitions move to the others after the session timeout
(nothing missed, only uncommitted offsets read twice), the admin client describes and lists the
group, and a group id is either classic or consumer, never both.

With this protocol the session timeout and heartbeat interval are the broker's
(`--group-consumer-session-timeout-ms`, `--group-consumer-heartbeat-interval-ms`), shortened here so
a killed member is noticed quickly; the client must not set session.timeout.ms,
heartbeat.interval.ms or partition.assignment.strategy."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from compat_checks import confluent_create_topic as create_topic, topic_name
from test_groups import check_assignment_survives_restart, check_killed_member_takeover, wait_for_spread

ASSIGNORS = ["uniform", "range"]
SESSION_TIMEOUT_MS = 3000
HEARTBEAT_INTERVAL_MS = 300


@pytest.fixture
def broker(start_broker):
    """A broker with short consumer-group session timeout and heartbeat interval."""
    return start_broker("--group-consumer-session-timeout-ms", str(SESSION_TIMEOUT_MS),
                        "--group-consumer-heartbeat-interval-ms", str(HEARTBEAT_INTERVAL_MS),
                        # Kafka's bounds (45 s and 5 s at least) lowered to let them be this short.
                        "--group-consumer-min-session-timeout-ms", str(SESSION_TIMEOUT_MS),
                        "--group-consumer-min-heartbeat-interval-ms", str(HEARTBEAT_INTERVAL_MS))


@pytest.fixture
def bootstrap(broker) -> str:
    return broker.bootstrap


def consumer_conf(bootstrap: str, group: str, assignor: str, **extra) -> dict:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "group.protocol": "consumer",
        "group.remote.assignor": assignor,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "socket.connection.setup.timeout.ms": 5000,
    }
    conf.update(extra)
    return conf


def kip848_consumer(bootstrap: str, group: str, assignor: str, **extra) -> Consumer:
    return Consumer(consumer_conf(bootstrap, group, assignor, **extra))


@pytest.mark.parametrize("assignor", ASSIGNORS)
def test_partitions_spread_over_members_and_rebalance_when_one_joins(bootstrap, assignor):
    # 3 consumers on 6 partitions get 2 each; a 4th joins and the partitions are spread again; the
    # admin client sees a consumer-protocol group with the broker's assignor and every member.
    from confluent_kafka import ConsumerGroupType
    from confluent_kafka.admin import AdminClient

    topic = topic_name(f"kip848-{assignor}")
    create_topic(bootstrap, topic, 6)
    group = topic_name("g848")
    consumers = [kip848_consumer(bootstrap, group, assignor, **{"client.id": f"member-{i}"}) for i in range(3)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        for consumer in consumers:
            consumer.subscribe([topic])
        owned = wait_for_spread(consumers, 6)
        assert sorted(len(parts) for parts in owned) == [2, 2, 2]
        consumers.append(kip848_consumer(bootstrap, group, assignor))
        consumers[-1].subscribe([topic])
        owned = wait_for_spread(consumers, 6)
        assert sorted(len(parts) for parts in owned) == [1, 1, 2, 2]

        described = admin.describe_consumer_groups([group])[group].result(timeout=15)
        assert described.type == ConsumerGroupType.CONSUMER
        assert described.partition_assignor == assignor
        assert len(described.members) == 4
        # Each member's client id and host, as Kafka shows them (they were blank for heartbeats).
        client_ids = {m.client_id for m in described.members}
        assert {"member-0", "member-1", "member-2"} <= client_ids, client_ids
        assert "" not in client_ids, client_ids
        assert {m.host for m in described.members} == {"/127.0.0.1"}
        assigned = sorted(tp.partition for m in described.members for tp in m.assignment.topic_partitions)
        assert assigned == list(range(6))
        listed = admin.list_consumer_groups().result(timeout=15)
        types = {g.group_id: g.type for g in listed.valid}
        assert types.get(group) == ConsumerGroupType.CONSUMER
    finally:
        for consumer in consumers:
            consumer.close()


@pytest.mark.parametrize("assignor", ASSIGNORS)
def test_after_a_kill_nothing_is_missed_and_duplicates_are_only_uncommitted(bootstrap, assignor):
    # SIGKILL: no leave heartbeat is sent; the broker removes the member when its session times
    # out, and the survivor resumes its partitions at their committed offsets.
    topic = topic_name(f"kip848-crash-{assignor}")
    group = topic_name("crash848")
    check_killed_member_takeover(bootstrap, topic, consumer_conf(bootstrap, group, assignor),
                                 kip848_consumer(bootstrap, group, assignor))


def test_commits_are_kept_and_a_group_id_is_classic_or_consumer(bootstrap, ringtail_bin):
    # Commits of a consumer-protocol member carry its member epoch and are read back; `ringtail
    # groups` shows the group as a consumer group with its owner; a classic member can't join while
    # the consumer group has members (INCONSISTENT_GROUP_PROTOCOL).
    import subprocess

    topic = topic_name("kip848-commit")
    create_topic(bootstrap, topic, 2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(20):
        producer.produce(topic, value=f"m{i}", partition=i % 2)
    assert producer.flush(30) == 0
    group = topic_name("mixed")
    consumer = kip848_consumer(bootstrap, group, "uniform")
    try:
        consumer.subscribe([topic])
        wait_for_spread([consumer], 2)
        consumer.commit(offsets=[TopicPartition(topic, 0, 4), TopicPartition(topic, 1, 7)], asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)
        assert [tp.offset for tp in committed] == [4, 7]
        out = subprocess.run([str(ringtail_bin), "groups", "--bootstrap", bootstrap, "--group", group],
                             capture_output=True, text=True, timeout=30, check=True).stdout
        rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
        assert [row[2:6] for row in rows] == [["0", "4", "10", "6"], ["1", "7", "10", "3"]], out
        assert all(row[7] == "consumer" and row[8] != "-" for row in rows), out

        classic = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000,
                            "auto.offset.reset": "earliest"})
        errors = []
        classic_conf_error = None
        try:
            classic.subscribe([topic], on_assign=lambda c, p: errors.append("assigned"))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and classic_conf_error is None:
                message = classic.poll(0.2)
                if message is not None and message.error() is not None:
                    classic_conf_error = message.error()
        except KafkaException as e:
            classic_conf_error = e.args[0]
        finally:
            classic.close()
        assert errors == [], "a classic member got partitions of a consumer group"
        assert classic_conf_error is not None and "INCONSISTENT_GROUP_PROTOCOL" in classic_conf_error.name()
    finally:
        consumer.close()


def test_members_keep_their_assignment_and_epochs_across_a_broker_restart(broker):
    # The group (epochs, members, target assignment) is replayed from __consumer_offsets: members
    # heartbeat on with their epochs and keep their partitions. (Restarting takes well under the
    # 3 s session timeout.)
    check_assignment_survives_restart(broker, lambda bootstrap, group: kip848_consumer(bootstrap, group, "uniform"))


def test_a_regex_subscription_is_resolved_by_the_broker(bootstrap):
    # librdkafka sends a "^..." subscription as SubscribedTopicRegex (ConsumerGroupHeartbeat v1); the
    # broker matches it against whole topic names, including topics created later.
    prefix = topic_name("kip848-rx")
    create_topic(bootstrap, f"{prefix}-a", 2)
    create_topic(bootstrap, topic_name("kip848-other"), 2)
    consumer = kip848_consumer(bootstrap, topic_name("rx"), "uniform")
    try:
        consumer.subscribe([f"^{prefix}-.*"])
        deadline = time.monotonic() + 45
        wanted = {(f"{prefix}-a", 0), (f"{prefix}-a", 1)}
        while {(tp.topic, tp.partition) for tp in consumer.assignment()} != wanted:
            consumer.poll(0.1)
            assert time.monotonic() < deadline, f"assignment {consumer.assignment()}"
        create_topic(bootstrap, f"{prefix}-b", 1)
        wanted.add((f"{prefix}-b", 0))
        while {(tp.topic, tp.partition) for tp in consumer.assignment()} != wanted:
            consumer.poll(0.1)
            assert time.monotonic() < deadline, f"assignment {consumer.assignment()}"
    finally:
        consumer.close()


def test_group_configs_are_altered_described_and_refused_as_kafka_does(bootstrap):
    # KIP-848 group configs (ConfigResource GROUP, type 32 on the wire), as librdkafka's 0081 sets
    # them against Kafka 4.0: consumer.session.timeout.ms on a group (that need not exist) is
    # described as GROUP_CONFIG, the interval not set is the broker's, an unknown name is refused.
    from confluent_kafka import KafkaError
    from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource,
                                       ConfigSource, ResourceType)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    group = topic_name("kip848-cfg")

    def incremental(name: str, value: str) -> ConfigResource:
        entry = ConfigEntry(name, value, incremental_operation=AlterConfigOpType.SET)
        return ConfigResource(ResourceType.GROUP, group, incremental_configs=[entry])

    altered = incremental("consumer.session.timeout.ms", "50000")
    admin.incremental_alter_configs([altered])[altered].result(timeout=30)
    wanted = ConfigResource(ResourceType.GROUP, group)
    configs = admin.describe_configs([wanted])[wanted].result(timeout=30)
    session = configs["consumer.session.timeout.ms"]
    assert (session.value, ConfigSource(session.source)) == ("50000", ConfigSource.GROUP_CONFIG)
    interval = configs["consumer.heartbeat.interval.ms"]
    assert (interval.value, ConfigSource(interval.source)) == (str(HEARTBEAT_INTERVAL_MS),
                                                               ConfigSource.DEFAULT_CONFIG)

    unknown = incremental("share.session.timeout.ms", "50000")
    with pytest.raises(KafkaException) as refused:
        admin.incremental_alter_configs([unknown])[unknown].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG, refused.value
    beyond = incremental("consumer.session.timeout.ms", "60001")
    with pytest.raises(KafkaException) as refused:
        admin.incremental_alter_configs([beyond])[beyond].result(timeout=30)
    assert refused.value.args[0].code() == KafkaError.INVALID_CONFIG, refused.value
