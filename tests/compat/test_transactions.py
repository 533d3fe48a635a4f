"""Transactions (issue #18) with confluent-kafka (librdkafka): a transactional producer's commit
and abort, read_committed versus read_uncommitted, a zombie fenced, consume-transform-produce with
send_offsets_to_transaction, read_committed consumers waiting for stable offsets (KIP-447), a
processor SIGKILLed at random moments (exactly-once output, txn_processor.py), and SIGKILLs of the
broker at random steps of commits and aborts."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

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


def test_read_committed_consumers_wait_for_stable_offsets(bootstrap):
    # KIP-447: librdkafka asks for stable offsets when isolation.level=read_committed
    # (require_stable in OffsetFetch v7+). While a transaction holds a pending offset of the
    # group, such a consumer gets UNSTABLE_OFFSET_COMMIT and retries instead of resuming from
    # the older committed offset; a read_uncommitted one gets the committed offset at once.
    source, group = topic_name("stable-in"), topic_name("stable-group")
    create_topic(bootstrap, source, 1)
    plain = Producer({"bootstrap.servers": bootstrap, **COMMON})
    for i in range(20):
        plain.produce(source, value=str(i).encode(), partition=0)
    plain.flush(30)

    def consumer(isolation: str) -> Consumer:
        return Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": isolation, **COMMON})

    committer = consumer("read_uncommitted")
    committer.commit(offsets=[TopicPartition(source, 0, 5)], asynchronous=False)
    producer = txn_producer(bootstrap, "stable")
    producer.begin_transaction()
    producer.send_offsets_to_transaction([TopicPartition(source, 0, 10)], committer.consumer_group_metadata(), 30)

    uncommitted = consumer("read_uncommitted")
    assert uncommitted.committed([TopicPartition(source, 0)], timeout=10)[0].offset == 5
    uncommitted.close()
    stable = consumer("read_committed")
    with pytest.raises(KafkaException) as waited:
        stable.committed([TopicPartition(source, 0)], timeout=2)
    assert waited.value.args[0].code() == KafkaError._TIMED_OUT, waited.value
    # An assigned consumer resuming from the committed offset waits too: it reads nothing (it
    # would read from offset 5 if it had been answered the older offset) until the commit.
    stable.assign([TopicPartition(source, 0)])
    early = [m for m in stable.consume(num_messages=100, timeout=2) if m.error() is None]
    assert early == [], [m.offset() for m in early]
    producer.commit_transaction(30)
    first = None
    deadline = time.monotonic() + 30
    while first is None and time.monotonic() < deadline:
        got = [m for m in stable.consume(num_messages=1, timeout=0.5) if m.error() is None]
        first = got[0] if got else None
    assert first is not None and first.offset() == 10, first
    assert stable.committed([TopicPartition(source, 0)], timeout=10)[0].offset == 10
    stable.close()
    committer.close()


def run_processor(config: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(Path(__file__).with_name("txn_processor.py")), json.dumps(config)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def test_a_processor_sigkilled_at_random_moments_transforms_each_record_exactly_once(bootstrap):
    # Exactly-once consume-transform-produce across crashes of the processor: a child process
    # (txn_processor.py) with a transactional producer and a read_committed consumer is SIGKILLed
    # six times after a random number of committed transactions, and started again with the same
    # transactional.id, until a run reads the source to its end. The kills cycle through: with a
    # transaction's records in the sink's log, with its offsets pending too, and a random moment
    # up to 50 ms after a commit. The sink, read read_committed, holds every input record's
    # transform exactly once (and the killed transactions' records only under
    # read_uncommitted), and the group's committed offsets are the source's ends.
    source, sink, group = topic_name("eos-in"), topic_name("eos-out"), topic_name("eos-group")
    partitions, per_partition = 3, 1000
    create_topic(bootstrap, source, partitions)
    create_topic(bootstrap, sink, partitions)
    plain = Producer({"bootstrap.servers": bootstrap, **COMMON})
    inputs = [f"{p}-{i}" for p in range(partitions) for i in range(per_partition)]
    for value in inputs:
        plain.produce(source, value=value.encode(), partition=int(value.split("-")[0]))
    plain.flush(30)
    config = {"bootstrap": bootstrap, "source": source, "sink": sink, "group": group,
              "transactional_id": f"{group}-processor", "partitions": partitions, "batch": 25}
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    kill_plans = [("produced", "offsets_sent", "committed")[i % 3] for i in range(6)]
    kills, runs = 0, 0
    while True:
        runs += 1
        assert runs <= 30, f"seed {seed}: the processor did not finish in 30 runs ({kills} killed)"
        proc = run_processor(config)
        plan = kill_plans[kills] if kills < len(kill_plans) else None
        commits_before_kill = rng.randint(1, 4)
        commits, last = 0, None
        for line in proc.stdout:
            last = json.loads(line)
            if last["ev"] == "committed":
                commits += 1
            if last["ev"] == "done":
                break
            if plan is not None and commits >= commits_before_kill and last["ev"] == plan:
                if plan == "committed":
                    # A random moment of the next transaction (or between two).
                    proc.stdin.write("go\n")
                    proc.stdin.flush()
                    time.sleep(rng.uniform(0, 0.05))
                proc.kill()  # SIGKILL; for the other plans, exactly at that event
                kills += 1
                break
            proc.stdin.write("go\n")
            proc.stdin.flush()
        status = proc.wait(timeout=60)
        for pipe in (proc.stdin, proc.stdout):
            try:
                pipe.close()
            except BrokenPipeError:
                pass
        if status == -signal.SIGKILL:
            continue
        assert status == 0, f"seed {seed}: the processor failed ({status}), last event {last}"
        if last and last["ev"] == "done":
            break
    assert kills == len(kill_plans), f"seed {seed}: {kills} kills"
    values = [v for _, _, v in read_all(bootstrap, sink, partitions, "read_committed")]
    dirty = read_all(bootstrap, sink, partitions, "read_uncommitted")
    assert len(dirty) > len(values), f"seed {seed}: no killed transaction's records in the sink's log"
    counts = Counter(values)
    missing = [v for v in inputs if counts[f"out-{v}"] == 0]
    doubled = [v for v, n in counts.items() if n > 1]
    assert not missing, f"seed {seed}, {kills} kills: transforms lost: {missing[:10]}"
    assert not doubled, f"seed {seed}, {kills} kills: transforms written twice: {doubled[:10]}"
    assert len(values) == len(inputs), f"seed {seed}: unexpected records"
    checker = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "isolation.level": "read_committed",
                        **COMMON})
    committed = checker.committed([TopicPartition(source, p) for p in range(partitions)], timeout=10)
    checker.close()
    assert [tp.offset for tp in committed] == [per_partition] * partitions, f"seed {seed}: {committed}"
