"""Transactions (issue #18), the coordinator half, with confluent-kafka (librdkafka): a
transactional producer's commit and abort, a zombie fenced, consume-transform-produce with
send_offsets_to_transaction, and SIGKILLs of the broker at random steps of commits and aborts.

read_uncommitted checks run everywhere. The read_committed checks need the read side of
transactions (last stable offset, aborted-transaction index: the txn-log branch); until it is
merged they are expected failures, marked so in the test report (xfail, never skipped)."""

from __future__ import annotations

import random
import threading
import time

import pytest
from confluent_kafka import (OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, Producer,
                             TopicPartition)

from compat_checks import confluent_create_topic as create_topic, topic_name

COMMON = {"socket.connection.setup.timeout.ms": 5000}


def txn_producer(bootstrap: str, transactional_id: str, **extra) -> Producer:
    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": transactional_id,
                         "transaction.timeout.ms": 60000, **COMMON, **extra})
    producer.init_transactions(30)
    return producer


def read_all(bootstrap: str, topic: str, partitions: int, isolation: str) -> list[tuple[int, int, str]]:
    """Every record of `topic` under `isolation` as (partition, offset, value), read until each
    partition's position reaches its end (the LSO under read_committed)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "txn-reader", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": isolation, **COMMON})
    try:
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                for p in range(partitions)}
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        records = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.3):
                if m.error() is not None:
                    if m.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(m.error())
                records.append((m.partition(), m.offset(), m.value().decode()))
            positions = consumer.position([TopicPartition(topic, p) for p in range(partitions)])
            if all(tp.offset >= ends[tp.partition] for tp in positions if ends[tp.partition] > 0):
                return records
        pytest.fail(f"{topic} not read to its end under {isolation}: {len(records)} records, ends {ends}")
    finally:
        consumer.close()


def commit_and_abort(bootstrap: str, topic: str):
    producer = txn_producer(bootstrap, "commit-abort")
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=b"k", value=f"committed-{i}".encode(), partition=i % 2)
    producer.commit_transaction(30)
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, key=b"k", value=f"aborted-{i}".encode(), partition=i % 2)
    producer.flush(30)
    producer.abort_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-last", partition=0)
    producer.commit_transaction(30)


def test_commit_and_abort_write_markers(bootstrap):
    # Both transactions' records are in the log, each followed by one marker per partition: the
    # high watermarks count 11 records and 5 markers (commit, abort: 2 partitions each; commit: 1).
    topic = topic_name("txn")
    create_topic(bootstrap, topic, 2)
    commit_and_abort(bootstrap, topic)
    values = sorted(v for _, _, v in read_all(bootstrap, topic, 2, "read_uncommitted"))
    assert values == sorted([f"committed-{i}" for i in range(5)] + [f"aborted-{i}" for i in range(5)]
                            + ["committed-last"])
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "wm", **COMMON})
    ends = [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1] for p in (0, 1)]
    consumer.close()
    assert sum(ends) == 11 + 5, ends


def test_read_committed_sees_only_committed_records(bootstrap):
    topic = topic_name("txn-rc")
    create_topic(bootstrap, topic, 2)
    commit_and_abort(bootstrap, topic)
    values = sorted(v for _, _, v in read_all(bootstrap, topic, 2, "read_committed"))
    assert values == sorted([f"committed-{i}" for i in range(5)] + ["committed-last"])


def test_a_zombie_producer_is_fenced(bootstrap):
    # A second producer with the same transactional.id fences the first: its commit fails fatally
    # (PRODUCER_FENCED / INVALID_PRODUCER_EPOCH), and its open transaction is aborted.
    topic = topic_name("txn-zombie")
    create_topic(bootstrap, topic, 1)
    zombie = txn_producer(bootstrap, "zombie")
    zombie.begin_transaction()
    zombie.produce(topic, value=b"from-zombie")
    zombie.flush(30)
    current = txn_producer(bootstrap, "zombie")
    with pytest.raises(KafkaException) as raised:
        zombie.commit_transaction(30)
    error = raised.value.args[0]
    assert error.fatal() or error.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                             KafkaError.INVALID_PRODUCER_EPOCH), error
    current.begin_transaction()
    current.produce(topic, value=b"from-current")
    current.commit_transaction(30)
    values = [v for _, _, v in read_all(bootstrap, topic, 1, "read_uncommitted")]
    assert values == ["from-zombie", "from-current"]


def test_consume_transform_produce_commits_offsets_with_the_output(bootstrap):
    # The exactly-once loop: read input, write output and the input offsets in one transaction.
    source, sink, group = topic_name("ctp-in"), topic_name("ctp-out"), topic_name("ctp-group")
    create_topic(bootstrap, source, 1)
    create_topic(bootstrap, sink, 1)
    plain = Producer({"bootstrap.servers": bootstrap, **COMMON})
    for i in range(30):
        plain.produce(source, value=str(i).encode())
    plain.flush(30)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed", **COMMON})
    consumer.assign([TopicPartition(source, 0, OFFSET_BEGINNING)])
    producer = txn_producer(bootstrap, "ctp")
    done, rounds = 0, 0
    deadline = time.monotonic() + 60
    while done < 30 and time.monotonic() < deadline:
        messages = [m for m in consumer.consume(num_messages=7, timeout=0.5) if m.error() is None]
        if not messages:
            continue
        producer.begin_transaction()
        for m in messages:
            producer.produce(sink, value=b"x" + m.value())
        producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                             consumer.consumer_group_metadata(), 30)
        # Every third batch is aborted and re-read: its output must not count, its offsets not move.
        rounds += 1
        if rounds % 3 == 0:
            producer.abort_transaction(30)
            consumer.seek(TopicPartition(source, 0, messages[0].offset()))
            continue
        producer.commit_transaction(30)
        done += len(messages)
    consumer.close()
    assert done == 30
    checker = Consumer({"bootstrap.servers": bootstrap, "group.id": group, **COMMON})
    committed = checker.committed([TopicPartition(source, 0)], timeout=10)
    checker.close()
    assert committed[0].offset == 30
    values = [v for _, _, v in read_all(bootstrap, sink, 1, "read_uncommitted")]
    assert sorted(set(values), key=lambda v: int(v[1:])) == [f"x{i}" for i in range(30)]


def test_broker_sigkills_during_commits_and_aborts_lose_and_double_nothing(start_broker):
    # Twelve SIGKILLs at random moments of a producer that commits and aborts transactions in a
    # loop; after each restart the producer starts over (init_transactions fences and finishes
    # what the crash left). Every transaction whose commit was acknowledged must be in the log,
    # each record exactly once; a last transaction after all restarts still commits.
    broker = start_broker()
    topic = topic_name("txn-kill")
    create_topic(broker.bootstrap, topic, 2)
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    acknowledged: list[str] = []
    kills = 0
    for round_no in range(12):
        producer = txn_producer(broker.bootstrap, "killed", **{"message.timeout.ms": 10000})
        stop = threading.Event()
        killer = threading.Timer(rng.uniform(0.05, 0.6), stop.set)
        killer.start()
        txn_no = 0
        while not stop.is_set():
            values = [f"r{round_no}-t{txn_no}-{i}" for i in range(4)]
            try:
                producer.begin_transaction()
                for i, value in enumerate(values):
                    producer.produce(topic, value=value.encode(), partition=i % 2)
                if txn_no % 3 == 2:
                    producer.abort_transaction(10)
                else:
                    producer.commit_transaction(10)
                    acknowledged.extend(values)
            except KafkaException:
                break
            txn_no += 1
        stop.wait()
        broker.kill()  # SIGKILL
        kills += 1
        # A fresh port: the killed process's listeners can linger while its io_uring is torn down.
        broker.start_on_new_port()
        del producer
    assert kills >= 10
    final = txn_producer(broker.bootstrap, "killed")
    final.begin_transaction()
    final.produce(topic, value=b"final", partition=0)
    final.commit_transaction(30)
    acknowledged.append("final")
    values = [v for _, _, v in read_all(broker.bootstrap, topic, 2, "read_uncommitted")]
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    missing = [v for v in acknowledged if v not in counts]
    doubled = [v for v, n in counts.items() if n > 1]
    assert not missing, f"seed {seed}: acknowledged commits lost: {missing[:10]}"
    assert not doubled, f"seed {seed}: records written twice: {doubled[:10]}"
    assert len(acknowledged) > 1, f"seed {seed}: no transaction committed between kills"
