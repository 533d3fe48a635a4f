"""A consume-transform-produce processor for the exactly-once test (test_transactions.py), run as a
child process that the test SIGKILLs at random moments and starts again.

    python txn_processor.py CONFIG_JSON

CONFIG_JSON: {"bootstrap", "source", "sink", "group", "transactional_id", "partitions", "batch"}.

It fences its predecessor first (init_transactions with the same transactional.id aborts what a
killed one left open), then reads the source from the group's committed offsets with a
read_committed consumer (librdkafka then asks for stable offsets: KIP-447), and for each batch of
up to "batch" records writes "out-<value>" to the same partition of the sink and the consumer's
positions as the group's offsets, in one transaction. It exits 0 once its positions reach the
source's end offsets. Progress goes to stdout, one JSON object a line, flushed at once; after
each event but "done" it waits for a line on stdin before going on, so that the parent can
SIGKILL it exactly there (or answer and kill it a random moment later):

    {"ev": "ready"}                        init_transactions done, partitions assigned
    {"ev": "produced"}                     a transaction's records are in the sink's log (flushed)
    {"ev": "offsets_sent"}                 its offsets are pending in the group (TxnOffsetCommit)
    {"ev": "committed", "records": N}      the transaction committed, N records so far
    {"ev": "done"}                         every partition read to its end
"""

from __future__ import annotations

import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

config = json.loads(sys.argv[1])
COMMON = {"bootstrap.servers": config["bootstrap"], "socket.connection.setup.timeout.ms": 5000}
# The whole run must finish well inside the test's timeout; a stuck processor fails loudly.
DEADLINE_S = 90


def emit(event: dict) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()
    if event["ev"] != "done" and not sys.stdin.readline():
        raise SystemExit("stdin closed")


def main() -> None:
    source, sink, partitions = config["source"], config["sink"], config["partitions"]
    producer = Producer({**COMMON, "transactional.id": config["transactional_id"],
                         "transaction.timeout.ms": 60000})
    producer.init_transactions(30)
    consumer = Consumer({**COMMON, "group.id": config["group"], "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "isolation.level": "read_committed"})
    ends = {p: consumer.get_watermark_offsets(TopicPartition(source, p), timeout=10, cached=False)[1]
            for p in range(partitions)}
    # Where each partition resumes: the group's committed offset (a read_committed consumer asks
    # for it stable, so it waits out a predecessor's transaction still being ended), else 0.
    committed = consumer.committed([TopicPartition(source, p) for p in range(partitions)], timeout=30)
    positions = {tp.partition: max(tp.offset, 0) for tp in committed}
    consumer.assign([TopicPartition(source, p, positions[p]) for p in range(partitions)])
    emit({"ev": "ready"})
    records = 0
    deadline = time.monotonic() + DEADLINE_S
    while time.monotonic() < deadline:
        if all(positions[p] >= ends[p] for p in range(partitions)):
            emit({"ev": "done"})
            return
        messages = []
        for m in consumer.consume(num_messages=config["batch"], timeout=0.5):
            if m.error() is None:
                messages.append(m)
            elif m.error().code() != KafkaError._PARTITION_EOF:
                raise KafkaException(m.error())
        if not messages:
            continue
        producer.begin_transaction()
        for m in messages:
            producer.produce(sink, value=b"out-" + m.value(), partition=m.partition())
            positions[m.partition()] = m.offset() + 1
        producer.flush(30)
        emit({"ev": "produced"})
        offsets = [TopicPartition(source, p, positions[p]) for p in range(partitions)]
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), 30)
        emit({"ev": "offsets_sent"})
        producer.commit_transaction(30)
        records += len(messages)
        emit({"ev": "committed", "records": records})
    raise SystemExit(f"not done within {DEADLINE_S} s: {records} records committed")


main()
