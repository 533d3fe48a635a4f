"""Consumer groups (classic protocol) with confluent-kafka: partitions spread over the members of a
group for each assignor, a joining member takes a share, a SIGKILLed member's partitions move to the
others after its session timeout, and committed offsets survive a broker restart."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from compat_checks import confluent_create_topic as create_topic, topic_name

ASSIGNORS = ["range", "roundrobin", "cooperative-sticky"]
REBALANCE_TIMEOUT_S = 45


def group_consumer(bootstrap: str, group: str, assignor: str, **extra) -> Consumer:
    conf = {
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "partition.assignment.strategy": assignor,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        "socket.connection.setup.timeout.ms": 5000,
    }
    conf.update(extra)
    return Consumer(conf)


def wait_for_spread(consumers: list[Consumer], partitions: int, timeout_s: float = REBALANCE_TIMEOUT_S) -> list[set]:
    """Polls every consumer until their assignments cover all partitions once and are balanced."""
    deadline = time.monotonic() + timeout_s
    while True:
        for consumer in consumers:
            consumer.poll(0.1)
        owned = [{tp.partition for tp in consumer.assignment()} for consumer in consumers]
        covered = sorted(p for parts in owned for p in parts)
        sizes = sorted(len(parts) for parts in owned)
        if covered == list(range(partitions)) and sizes[-1] - sizes[0] <= 1 and sizes[0] > 0:
            return owned
        if time.monotonic() > deadline:
            pytest.fail(f"assignments never settled: {owned}")


@pytest.mark.parametrize("assignor", ASSIGNORS)
def test_partitions_spread_over_members_and_rebalance_when_one_joins(bootstrap, assignor):
    # 3 consumers on 6 partitions get 2 each; a 4th joins and the partitions are spread again.
    topic = topic_name(f"grp-{assignor}")
    create_topic(bootstrap, topic, 6)
    group = topic_name("g")
    consumers = [group_consumer(bootstrap, group, assignor) for _ in range(3)]
    try:
        for consumer in consumers:
            consumer.subscribe([topic])
        owned = wait_for_spread(consumers, 6)
        assert sorted(len(parts) for parts in owned) == [2, 2, 2]
        consumers.append(group_consumer(bootstrap, group, assignor))
        consumers[-1].subscribe([topic])
        owned = wait_for_spread(consumers, 6)
        assert sorted(len(parts) for parts in owned) == [1, 1, 2, 2]
    finally:
        for consumer in consumers:
            consumer.close()


KILLED_MEMBER = textwrap.dedent("""
    import sys, time
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": sys.argv[1], "group.id": sys.argv[2], "auto.offset.reset": "earliest",
                         "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
                         "partition.assignment.strategy": sys.argv[4]})
    consumer.subscribe([sys.argv[3]])
    while True:
        consumer.poll(0.1)
        print(len(consumer.assignment()), flush=True)
""")


def test_a_killed_member_s_partitions_move_to_the_others_after_its_session_timeout(bootstrap):
    # SIGKILL: no LeaveGroup is sent; the coordinator notices only when the session times out.
    topic = topic_name("grp-kill")
    create_topic(bootstrap, topic, 4)
    group = topic_name("g")
    child = subprocess.Popen([sys.executable, "-c", KILLED_MEMBER, bootstrap, group, topic, "range"],
                             stdout=subprocess.PIPE, text=True)
    survivor = group_consumer(bootstrap, group, "range")
    try:
        survivor.subscribe([topic])
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S
        child_share = 0
        while child_share == 0 or len(survivor.assignment()) + child_share != 4:
            survivor.poll(0.1)
            line = child.stdout.readline()
            child_share = int(line.strip() or 0)
            assert time.monotonic() < deadline, "the two members never shared the partitions"
        child.kill()
        child.wait()
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S
        while len(survivor.assignment()) != 4:
            survivor.poll(0.2)
            assert time.monotonic() < deadline, f"survivor has {survivor.assignment()} after the kill"
    finally:
        if child.poll() is None:
            child.kill()
        survivor.close()


def test_committed_offsets_survive_a_broker_restart_and_unknown_groups_have_none(broker):
    # Commits go to __consumer_offsets through the engine; a restart replays them.
    bootstrap = broker.bootstrap
    topic = topic_name("grp-commit")
    create_topic(bootstrap, topic, 2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(100):
        producer.produce(topic, key=str(i % 7), value=f"m{i}", partition=i % 2)
    assert producer.flush(30) == 0
    group = topic_name("g")
    consumer = group_consumer(bootstrap, group, "range")
    consumer.subscribe([topic])
    seen = 0
    deadline = time.monotonic() + REBALANCE_TIMEOUT_S
    while seen < 60 and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and message.error() is None:
            seen += 1
    assert seen >= 60
    consumer.commit(asynchronous=False)
    committed = {tp.partition: tp.offset for tp in consumer.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)}
    assert sum(committed.values()) >= 60
    consumer.close()

    broker.restart()
    fresh = group_consumer(bootstrap, group, "range")
    try:
        again = {tp.partition: tp.offset for tp in fresh.committed([TopicPartition(topic, 0), TopicPartition(topic, 1)], timeout=10)}
        assert again == committed
        unknown = fresh.committed([TopicPartition(topic, 0)], timeout=10)
        assert unknown[0].error is None
    finally:
        fresh.close()
    nobody = group_consumer(bootstrap, topic_name("never-used"), "range")
    try:
        none = nobody.committed([TopicPartition(topic, 0)], timeout=10)
        assert none[0].offset < 0 and none[0].error is None, "an unknown group has no offsets, and no error"
    finally:
        nobody.close()


def check_assignment_survives_restart(broker, make_consumer) -> None:
    """Two members of a new group (make_consumer(bootstrap, group)) share a 4-partition topic; the
    broker restarts; they must keep consuming their own partitions with no revocation, and the
    admin client must describe the same members, Stable."""
    from confluent_kafka.admin import AdminClient

    bootstrap = broker.bootstrap
    topic = topic_name("grp-restart")
    create_topic(bootstrap, topic, 4)
    group = topic_name("restart")
    revocations: list[int] = []
    consumers = [make_consumer(bootstrap, group) for _ in range(2)]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        for consumer in consumers:
            consumer.subscribe([topic], on_revoke=lambda c, partitions: revocations.append(len(partitions)))
        owned = wait_for_spread(consumers, 4)
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S
        while (before := admin.describe_consumer_groups([group])[group].result(timeout=15)).state.name != "STABLE":
            for consumer in consumers:
                consumer.poll(0.1)
            assert time.monotonic() < deadline, f"the group is {before.state} before the restart"
        revocations.clear()  # (joining together may take more than one round)

        broker.restart()
        producer = Producer({"bootstrap.servers": bootstrap})
        for i in range(40):
            producer.produce(topic, value=f"after-{i}", partition=i % 4)
        assert producer.flush(30) == 0
        seen: list[set] = [set(), set()]
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S
        while sum(len(s) for s in seen) < 40:
            for n, consumer in enumerate(consumers):
                message = consumer.poll(0.1)
                if message is not None and message.error() is None:
                    seen[n].add((message.partition(), message.offset()))
            assert time.monotonic() < deadline, f"consumed {sum(len(s) for s in seen)} of 40 after the restart"
        for n in range(2):
            assert {partition for partition, _ in seen[n]} == owned[n], "a member read another's partition"
        # A new admin client: the old one lived through the restart, and librdkafka 2.16's
        # re-bootstrap (KIP-899: every broker was down, so it decommissions them and starts again
        # from bootstrap.servers) can leave its next coordinator lookup waiting on a
        # decommissioned broker handle: a DescribeGroups never sent, while the consumers, which
        # reconnect on their own, go on. Seen with debug=admin,broker: after "Starting
        # re-bootstrap sequence" the DescribeConsumerGroups worker stays "initializing" with no
        # FindCoordinator sent for 15 s. The broker is not involved; the check is.
        admin = AdminClient({"bootstrap.servers": bootstrap})
        after = admin.describe_consumer_groups([group])[group].result(timeout=15)
        assert after.state.name == "STABLE"
        assert sorted(m.member_id for m in after.members) == sorted(m.member_id for m in before.members)
        assert [{tp.partition for tp in c.assignment()} for c in consumers] == owned
        assert revocations == [], "the restart caused a rebalance"
    finally:
        for consumer in consumers:
            consumer.close()


def test_members_keep_their_assignment_across_a_broker_restart(broker):
    # A Stable group is stored with its members when its generation completes: after a restart the
    # members heartbeat on and keep consuming their partitions without a rebalance.
    check_assignment_survives_restart(broker, lambda bootstrap, group: group_consumer(bootstrap, group, "range"))


def test_ringtail_groups_shows_offsets_lag_and_owners(bootstrap, ringtail_bin):
    # The operator's view: committed offset, log end, lag and the owning member per partition.
    topic = topic_name("grp-view")
    create_topic(bootstrap, topic, 2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(40):
        producer.produce(topic, value=f"m{i}", partition=i % 2)
    assert producer.flush(30) == 0
    group = topic_name("view")
    consumer = group_consumer(bootstrap, group, "range")
    try:
        consumer.subscribe([topic])
        wait_for_spread([consumer], 2)
        consumer.commit(offsets=[TopicPartition(topic, 0, 5), TopicPartition(topic, 1, 20)], asynchronous=False)
        out = subprocess.run([str(ringtail_bin), "groups", "--bootstrap", bootstrap, "--group", group],
                             capture_output=True, text=True, timeout=30, check=True).stdout
    finally:
        consumer.close()
    rows = [line.split() for line in out.splitlines()[1:] if line.strip()]
    by_partition = {int(row[2]): row for row in rows}
    assert by_partition[0][3:6] == ["5", "20", "15"], out
    assert by_partition[1][3:6] == ["20", "20", "0"], out
    assert all(row[6:8] == ["Stable", "classic"] and row[8] != "-" for row in rows), out


def test_auto_and_async_commits_and_admin_view_of_groups(bootstrap):
    # Auto commit and async commit store offsets; AdminClient lists, describes (with client ids),
    # lists a group's offsets and deletes the emptied group. (OffsetDelete, which this Python
    # client does not expose, is tested in server/tests/protocol.rs.)
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    topic = topic_name("grp-admin")
    create_topic(bootstrap, topic, 2)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(50):
        producer.produce(topic, value=f"m{i}", partition=i % 2)
    assert producer.flush(30) == 0
    group = topic_name("auto")
    consumer = group_consumer(bootstrap, group, "range", **{"enable.auto.commit": True, "auto.commit.interval.ms": 200,
                                                            "client.id": "auto-committer"})
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        consumer.subscribe([topic])
        seen = 0
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S
        while seen < 50 and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                seen += 1
        assert seen == 50
        partitions = [TopicPartition(topic, 0), TopicPartition(topic, 1)]
        deadline = time.monotonic() + 15
        while sum(max(tp.offset, 0) for tp in consumer.committed(partitions, timeout=10)) < 50:
            consumer.poll(0.2)
            assert time.monotonic() < deadline, "auto commit never stored the positions"
        # An async commit from a simple (assign-mode, groupless) consumer of another group.
        simple_group = topic_name("simple")
        simple = group_consumer(bootstrap, simple_group, "range")
        try:
            simple.assign([TopicPartition(topic, 0, 0)])
            simple.commit(offsets=[TopicPartition(topic, 0, 3)], asynchronous=True)
            deadline = time.monotonic() + 15
            while simple.committed([TopicPartition(topic, 0)], timeout=10)[0].offset != 3:
                simple.poll(0.2)
                assert time.monotonic() < deadline, "async commit never landed"
        finally:
            simple.close()

        described = admin.describe_consumer_groups([group])[group].result(timeout=15)
        assert described.state.name == "STABLE"
        assert [m.client_id for m in described.members] == ["auto-committer"]
        assert described.members[0].host.startswith("/127.0.0.1")
        listed = admin.list_consumer_groups().result(timeout=15)
        assert group in {g.group_id for g in listed.valid}
    finally:
        consumer.close()
    # The group has no members now: its offsets are listed, then the group is deleted.
    remaining = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group].result(timeout=15)
    assert {tp.partition for tp in remaining.topic_partitions} == {0, 1}
    admin.delete_consumer_groups([group])[group].result(timeout=15)
    assert group not in {g.group_id for g in admin.list_consumer_groups().result(timeout=15).valid}


SLOW_COMMITTING_MEMBER = textwrap.dedent("""
    import json, sys, time
    from confluent_kafka import Consumer, KafkaException
    consumer = Consumer(json.loads(sys.argv[1]))
    consumer.subscribe([sys.argv[2]])
    seen = 0
    while True:
        message = consumer.poll(0.1)
        print(f"assigned {len(consumer.assignment())}", flush=True)
        if message is None or message.error() is not None:
            continue
        print(f"msg {message.partition()} {message.offset()}", flush=True)
        seen += 1
        time.sleep(0.02)
        if seen % 10 == 0:
            try:
                committed = consumer.commit(asynchronous=False) or []
            except KafkaException:
                # REBALANCE_IN_PROGRESS / STALE_MEMBER_EPOCH: Kafka refuses commits mid-rebalance
                # too; try again later.
                continue
            for tp in committed:
                print(f"commit {tp.partition} {tp.offset}", flush=True)
""")


def classic_conf(bootstrap: str, group: str, assignor: str) -> dict:
    """The configuration group_consumer() uses, for a member run in a child process."""
    return {"bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
            "enable.auto.commit": False, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500,
            "partition.assignment.strategy": assignor}


def check_killed_member_takeover(bootstrap: str, topic: str, child_conf: dict, survivor: Consumer,
                                 messages: int = 400, partitions: int = 4) -> None:
    """A child member (child_conf) consumes and commits, the survivor joins, the child is
    SIGKILLed; the survivor must then consume everything the child did not, and re-read only
    offsets the child had not committed. Closes the survivor."""
    import json
    import select

    create_topic(bootstrap, topic, partitions)
    producer = Producer({"bootstrap.servers": bootstrap})
    for i in range(messages):
        producer.produce(topic, value=f"m{i}", partition=i % partitions)
    assert producer.flush(30) == 0
    child = subprocess.Popen([sys.executable, "-c", SLOW_COMMITTING_MEMBER, json.dumps(child_conf), topic],
                             stdout=subprocess.PIPE, text=True)
    child_seen: set[tuple[int, int]] = set()
    child_committed: dict[int, int] = {}
    survivor_seen: list[tuple[int, int]] = []

    def drain_child(timeout: float) -> None:
        while select.select([child.stdout], [], [], timeout)[0]:
            line = child.stdout.readline()
            if not line:
                return
            words = line.split()
            if words[0] == "msg":
                child_seen.add((int(words[1]), int(words[2])))
            elif words[0] == "commit":
                child_committed[int(words[1])] = int(words[2])
            timeout = 0

    def survivor_poll() -> None:
        message = survivor.poll(0.05)
        if message is not None and message.error() is None:
            survivor_seen.append((message.partition(), message.offset()))

    try:
        # The child joins first and owns everything, so the survivor never reads a partition before
        # the child's commits on it exist: every offset the survivor reads twice is uncommitted.
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S
        while not child_seen:
            drain_child(0.1)
            assert time.monotonic() < deadline, "the member that will be killed never consumed"
        survivor.subscribe([topic])
        while not survivor.assignment():
            survivor_poll()
            drain_child(0.05)
            assert time.monotonic() < deadline, "the survivor never got partitions"
        # Let the killed member get further (and commit) on the partitions it kept.
        target = len(child_seen) + 30
        while len(child_seen) < target:
            survivor_poll()
            drain_child(0.05)
            assert time.monotonic() < deadline, "the killed member stopped consuming"
        child.kill()
        child.wait()
        drain_child(0.5)
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S * 2
        while len(set(survivor_seen) | child_seen) < messages:
            survivor_poll()
            missed = messages - len(set(survivor_seen) | child_seen)
            assert time.monotonic() < deadline, f"missed messages: {missed}"
    finally:
        if child.poll() is None:
            child.kill()
        survivor.close()
    # Only the killed member commits; everything it committed must not be consumed again. (The
    # survivor commits nothing, so its own partitions may be re-read after each rebalance.)
    consumed = survivor_seen + sorted(child_seen)
    duplicates = {record for record in consumed if consumed.count(record) > 1}
    for partition, offset in duplicates:
        assert offset >= child_committed.get(partition, 0), f"committed offset {partition}:{offset} was consumed again"
    assert child_committed, "the killed member committed before it died"


@pytest.mark.parametrize("assignor", ASSIGNORS)
def test_after_a_kill_nothing_is_missed_and_duplicates_are_only_uncommitted(bootstrap, assignor):
    # The group's promise across a crash: the survivor resumes the killed member's partitions at
    # their committed offsets, so every message is consumed, and only uncommitted ones twice.
    topic = topic_name(f"grp-crash-{assignor}")
    group = topic_name("crash")
    check_killed_member_takeover(bootstrap, topic, classic_conf(bootstrap, group, assignor),
                                 group_consumer(bootstrap, group, assignor))


def test_an_empty_group_without_offsets_is_removed_at_the_next_retention_pass(start_broker):
    """Kafka's cleanup removes an empty group that has no committed offsets at its next pass
    (offsets.retention.check.interval.ms); Ringtail kept it for the whole offsets retention
    (7 days), so every console consumer's group stayed listed."""
    from confluent_kafka.admin import AdminClient
    broker = start_broker("--offsets-retention-check-interval-ms", "1000")
    topic = topic_name("empty-groups")
    create_topic(broker.bootstrap, topic, 1)
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    producer.produce(topic, b"x")
    assert producer.flush(20) == 0
    groups = {"nocommit": False, "committed": True}
    for group, commit in groups.items():
        consumer = group_consumer(broker.bootstrap, topic_name(group), "range")
        consumer.subscribe([topic])
        deadline = time.monotonic() + REBALANCE_TIMEOUT_S
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None and message.error() is None
        if commit:
            consumer.commit(message=message, asynchronous=False)
        consumer.close()
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    listed = lambda: {g.group_id for g in admin.list_consumer_groups().result(timeout=15).valid}  # noqa: E731
    deadline = time.monotonic() + 30
    while any(g.startswith("nocommit") for g in listed()) and time.monotonic() < deadline:
        time.sleep(0.5)
    names = listed()
    assert not any(g.startswith("nocommit") for g in names), names
    assert any(g.startswith("committed") for g in names), "a group with offsets stays (for the retention)"
