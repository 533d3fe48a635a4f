"""ACLs with real, unchanged clients (confluent-kafka over SASL_PLAINTEXT with SCRAM): ACLs created,
described and deleted through the AdminClient; what they allow and deny (WRITE for producing, READ
on a group for joining it, DESCRIBE for seeing a topic in Metadata); super users; deny winning over
allow; prefixed patterns; ACLs surviving a restart; and `--allow-everyone-if-no-acl-found`."""

from __future__ import annotations

import time

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType)

from compat_checks import topic_name
from secure_broker import librdkafka_conf, start_secure_broker  # noqa: F401

WAIT_S = 30
MECHANISM = "SCRAM-SHA-256"
EVERY_ACL = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                             AclOperation.ANY, AclPermissionType.ANY)


def conf(broker, user: str) -> dict:
    return librdkafka_conf(broker, "SASL_PLAINTEXT", MECHANISM, user=user)


def admin(broker, user: str = "admin") -> AdminClient:
    return AdminClient(conf(broker, user))


def allow(resource_type, name: str, operation, principal: str = "User:alice",
          pattern=ResourcePatternType.LITERAL, permission=AclPermissionType.ALLOW) -> AclBinding:
    return AclBinding(resource_type, name, pattern, principal, "*", operation, permission)


def create_acls(client: AdminClient, acls: list[AclBinding]) -> None:
    for future in client.create_acls(acls).values():
        future.result(timeout=WAIT_S)


def create_topics(client: AdminClient, *names: str) -> None:
    for future in client.create_topics([NewTopic(n, num_partitions=1, replication_factor=1)
                                        for n in names]).values():
        future.result(timeout=WAIT_S)


def produce_error(config: dict, topic: str) -> KafkaError | None:
    """Produces one message; returns its delivery error (None: delivered)."""
    results: list = []
    producer = Producer({**config, "acks": "all", "message.timeout.ms": 10000})
    producer.produce(topic, value=b"v", on_delivery=lambda err, _msg: results.append(err))
    producer.flush(WAIT_S)
    assert len(results) == 1, "no delivery report"
    return results[0]


def first_consumer_error(config: dict, topic: str, group: str) -> KafkaError | None:
    """Subscribes in `group` and polls until a message or an error; returns the error."""
    consumer = Consumer({**config, "group.id": group, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            return message.error()
        pytest.fail(f"neither a message nor an error within {WAIT_S} s")
    finally:
        consumer.close()


def secured(start_secure_broker, *extra: str):
    return start_secure_broker("--super-users", "User:admin", *extra, open_acls=False)


def test_admin_client_creates_describes_and_deletes_acls(start_secure_broker):
    # The three APIs through confluent-kafka's AdminClient, as a super user.
    broker = secured(start_secure_broker)
    client = admin(broker)
    wanted = [allow(ResourceType.TOPIC, "orders", AclOperation.WRITE),
              allow(ResourceType.GROUP, "billing", AclOperation.READ, pattern=ResourcePatternType.PREFIXED)]
    create_acls(client, wanted)
    described = client.describe_acls(EVERY_ACL).result(timeout=WAIT_S)
    assert sorted(map(str, described)) == sorted(map(str, wanted))
    only_groups = AclBindingFilter(ResourceType.GROUP, None, ResourcePatternType.ANY, None, None,
                                   AclOperation.ANY, AclPermissionType.ANY)
    deleted = client.delete_acls([only_groups])[only_groups].result(timeout=WAIT_S)
    assert list(map(str, deleted)) == [str(wanted[1])]
    left = client.describe_acls(EVERY_ACL).result(timeout=WAIT_S)
    assert list(map(str, left)) == [str(wanted[0])]


def test_a_principal_without_alter_on_the_cluster_cannot_manage_acls(start_secure_broker):
    broker = secured(start_secure_broker)
    alice = admin(broker, "alice")  # kept: a dropped client cancels its futures
    future = alice.create_acls([allow(ResourceType.TOPIC, "t", AclOperation.ALL)])
    with pytest.raises(KafkaException) as failed:
        list(future.values())[0].result(timeout=WAIT_S)
    assert failed.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
    # DescribeAcls is answered CLUSTER_AUTHORIZATION_FAILED (server/tests/acls.rs checks the code);
    # librdkafka 2.16 drops that top-level error and reports an empty list: no ACL leaks.
    create_acls(admin(broker), [allow(ResourceType.TOPIC, "t", AclOperation.READ)])
    assert alice.describe_acls(EVERY_ACL).result(timeout=WAIT_S) == []


def test_produce_needs_write_and_the_super_user_needs_no_acl(start_secure_broker):
    # alice may READ (so DESCRIBE: Metadata finds the topic) but not WRITE: the Produce itself fails.
    broker = secured(start_secure_broker)
    readable, writable = topic_name("read-only"), topic_name("writable")
    client = admin(broker)
    create_topics(client, readable, writable)
    create_acls(client, [allow(ResourceType.TOPIC, readable, AclOperation.READ),
                         allow(ResourceType.TOPIC, writable, AclOperation.WRITE)])
    error = produce_error(conf(broker, "alice"), readable)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    assert produce_error(conf(broker, "alice"), writable) is None
    assert produce_error(conf(broker, "admin"), readable) is None, "super users need no ACL"
    assert "authorization denied" in broker.log_tail(), "denials are logged"


def test_joining_a_group_needs_read_on_it(start_secure_broker):
    # DESCRIBE on the group lets FindCoordinator through; JoinGroup needs READ.
    broker = secured(start_secure_broker)
    topic = topic_name("group-acl")
    client = admin(broker)
    create_topics(client, topic)
    assert produce_error(conf(broker, "admin"), topic) is None
    create_acls(client, [allow(ResourceType.TOPIC, topic, AclOperation.READ),
                         allow(ResourceType.GROUP, "watchers", AclOperation.DESCRIBE),
                         allow(ResourceType.GROUP, "readers", AclOperation.READ)])
    error = first_consumer_error(conf(broker, "alice"), topic, "watchers")
    assert error is not None and error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED, error
    assert first_consumer_error(conf(broker, "alice"), topic, "readers") is None


def test_metadata_hides_topics_the_principal_may_not_describe(start_secure_broker):
    broker = secured(start_secure_broker)
    visible, hidden = topic_name("visible"), topic_name("hidden")
    client = admin(broker)
    create_topics(client, visible, hidden)
    create_acls(client, [allow(ResourceType.TOPIC, visible, AclOperation.DESCRIBE)])
    alice = admin(broker, "alice")
    seen = set(alice.list_topics(timeout=WAIT_S).topics)
    assert visible in seen and hidden not in seen, seen
    assert {visible, hidden} <= set(client.list_topics(timeout=WAIT_S).topics)


def test_deny_wins_over_a_prefixed_allow(start_secure_broker):
    broker = secured(start_secure_broker)
    prefix = topic_name("pay")
    client = admin(broker)
    create_topics(client, f"{prefix}-open", f"{prefix}-locked", f"other-{prefix}")
    create_acls(client, [
        allow(ResourceType.TOPIC, prefix, AclOperation.ALL, pattern=ResourcePatternType.PREFIXED),
        allow(ResourceType.TOPIC, f"{prefix}-locked", AclOperation.WRITE, permission=AclPermissionType.DENY),
    ])
    alice = conf(broker, "alice")
    assert produce_error(alice, f"{prefix}-open") is None
    error = produce_error(alice, f"{prefix}-locked")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    error = produce_error(alice, f"other-{prefix}")
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error


def test_acls_survive_a_restart(start_secure_broker):
    broker = secured(start_secure_broker)
    topic = topic_name("durable-acl")
    client = admin(broker)
    create_topics(client, topic)
    acl = allow(ResourceType.TOPIC, topic, AclOperation.WRITE)
    create_acls(client, [acl])
    broker.restart()
    client = admin(broker)
    described = client.describe_acls(EVERY_ACL).result(timeout=WAIT_S)
    assert list(map(str, described)) == [str(acl)]
    assert produce_error(conf(broker, "alice"), topic) is None


def test_allow_everyone_if_no_acl_found(start_secure_broker):
    # Unset: an authenticated principal gets nothing no ACL grants, while PLAINTEXT's
    # User:ANONYMOUS keeps the README's setup working. Set: a topic no ACL names is open to all,
    # one that has ACLs follows them.
    strict = secured(start_secure_broker)
    topic = topic_name("no-acl")
    strict_admin = admin(strict)
    create_topics(strict_admin, topic)
    error = produce_error(conf(strict, "alice"), topic)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    anonymous = {"bootstrap.servers": strict.address("PLAINTEXT")}
    assert produce_error(anonymous, topic) is None

    open_broker = secured(start_secure_broker, "--allow-everyone-if-no-acl-found")
    named = topic_name("named")
    open_admin = admin(open_broker)
    create_topics(open_admin, topic, named)
    create_acls(open_admin, [allow(ResourceType.TOPIC, named, AclOperation.WRITE, principal="User:bob")])
    assert produce_error(conf(open_broker, "alice"), topic) is None
    error = produce_error(conf(open_broker, "alice"), named)
    assert error is not None and error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, error
    assert produce_error(conf(open_broker, "bob"), named) is None
