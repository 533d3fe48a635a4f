"""What every client's round trip must satisfy, and the confluent-kafka reader some tests share.

Messages are keyed: message i has key "k{i % keys}" and value "v{i}-k{i % keys}" (and, where the
client supports headers, a header seq=i), so a consumed value tells which produced message it is
and in which order it was sent.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
CONSUME_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Rec:
    partition: int
    offset: int | None  # None where the client reports no offset (acks=0)
    key: str
    value: str
    headers: tuple = field(default=(), compare=False)


def topic_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def keyed_messages(n: int, keys: int = 20) -> list[tuple[str, str]]:
    return [(f"k{i % keys}", f"v{i}-k{i % keys}") for i in range(n)]


def seq_of(value: str) -> int:
    return int(value[1:].split("-", 1)[0])


def check_roundtrip(
    produced: list[Rec],
    consumed: list[Rec],
    partitions: int,
    high_watermarks: dict[int, int] | None = None,
    low_watermarks: dict[int, int] | None = None,
    check_headers: bool = False,
) -> None:
    """Every produced message consumed exactly once; per partition, offsets contiguous from 0 and
    messages in the order they were produced; every key in one partition; delivery-report offsets
    (where known) point at the same message; watermarks (where given) match what was read."""
    problems: list[str] = []

    produced_kv = Counter((r.key, r.value) for r in produced)
    consumed_kv = Counter((r.key, r.value) for r in consumed)
    missing = sorted((kv for kv in produced_kv if kv not in consumed_kv), key=lambda kv: seq_of(kv[1]))
    unexpected = sorted(kv for kv in consumed_kv if kv not in produced_kv)
    duplicated = sorted(kv for kv, c in consumed_kv.items() if c > produced_kv.get(kv, 0) and kv in produced_kv)
    if missing:
        problems.append(f"{len(missing)} of {len(produced_kv)} produced messages never consumed, e.g. {missing[:5]}")
    if unexpected:
        problems.append(f"{len(unexpected)} consumed messages were never produced, e.g. {unexpected[:5]}")
    if duplicated:
        problems.append(f"{len(duplicated)} messages consumed more than once, e.g. {duplicated[:5]}")

    by_partition: dict[int, list[Rec]] = defaultdict(list)
    for r in consumed:
        by_partition[r.partition].append(r)
    bad_partitions = sorted(p for p in by_partition if not 0 <= p < partitions)
    if bad_partitions:
        problems.append(f"messages from partitions {bad_partitions}, topic has {partitions}")
    for p, recs in sorted(by_partition.items()):
        offsets = [r.offset for r in recs]
        want = list(range(len(recs)))
        if offsets != want:
            i = next(i for i, (a, b) in enumerate(zip(offsets, want)) if a != b)
            problems.append(f"partition {p}: offsets not contiguous from 0: at position {i} got {offsets[i]} "
                            f"(neighbourhood {offsets[max(0, i - 3):i + 4]})")
        seqs = [seq_of(r.value) for r in recs]
        if seqs != sorted(seqs):
            i = next(i for i in range(1, len(seqs)) if seqs[i] < seqs[i - 1])
            problems.append(f"partition {p}: not in produce order: message {seqs[i]} after {seqs[i - 1]} "
                            f"at offset {offsets[i]}")

    key_partitions: dict[str, set[int]] = defaultdict(set)
    for r in consumed:
        key_partitions[r.key].add(r.partition)
    split_keys = {k: sorted(ps) for k, ps in key_partitions.items() if len(ps) > 1}
    if split_keys:
        problems.append(f"keys spread over several partitions: {dict(list(split_keys.items())[:5])}")
    nkeys = len({r.key for r in produced})
    if partitions > 1 and nkeys >= 2 * partitions and len(by_partition) < 2:
        problems.append(f"{nkeys} keys over {partitions} partitions all landed in {sorted(by_partition)}")

    at = {(r.partition, r.offset): r for r in consumed}
    reported = [r for r in produced if r.offset is not None]
    report_positions = Counter((r.partition, r.offset) for r in reported)
    twice = [pos for pos, c in report_positions.items() if c > 1]
    if twice:
        problems.append(f"delivery reports gave the same (partition, offset) to several messages: {twice[:5]}")
    wrong = []
    for r in reported:
        got = at.get((r.partition, r.offset))
        if got is None or (got.key, got.value) != (r.key, r.value):
            wrong.append((r.partition, r.offset, r.value, got and got.value))
    if wrong:
        problems.append(f"{len(wrong)} delivery reports disagree with what was read at that offset "
                        f"(partition, offset, produced, read): {wrong[:5]}")

    if check_headers:
        bad_headers = [(r.value, r.headers) for r in consumed
                       if dict(r.headers).get("seq") != str(seq_of(r.value))]
        if bad_headers:
            problems.append(f"{len(bad_headers)} messages with wrong headers, e.g. {bad_headers[:3]}")

    if high_watermarks is not None:
        for p in range(partitions):
            n = len(by_partition.get(p, []))
            if high_watermarks.get(p) != n:
                problems.append(f"partition {p}: high watermark {high_watermarks.get(p)}, read {n} messages")
    if low_watermarks is not None:
        for p in range(partitions):
            if low_watermarks.get(p) != 0:
                problems.append(f"partition {p}: log start offset {low_watermarks.get(p)}, want 0")

    assert not problems, (f"{len(produced)} produced, {len(consumed)} consumed:\n  - " + "\n  - ".join(problems))


# --- confluent-kafka helpers other clients' tests share --------------------------------------------

def confluent_create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    """CreateTopics through confluent-kafka's AdminClient (for clients that cannot create topics)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 5000})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)],
                                  operation_timeout=10)
    futures[topic].result(timeout=20)


def confluent_watermarks(bootstrap: str, topic: str, partitions: int):
    """({partition: log start offset}, {partition: high watermark}) via ListOffsets."""
    from confluent_kafka import TopicPartition

    consumer = confluent_consumer(bootstrap)
    try:
        low, high = {}, {}
        for p in range(partitions):
            low[p], high[p] = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)
        return low, high
    finally:
        consumer.close()


# Reading for the round-trip checks uses manual assignment, so each check sees every partition from
# its start regardless of group state (group consumers have tests of their own).

def confluent_consumer(bootstrap: str, **extra):
    from confluent_kafka import Consumer

    conf = {
        "bootstrap.servers": bootstrap,
        # librdkafka insists on a group.id; with assign() and no commits the group is never joined.
        "group.id": "ringtail-compat-assign-only",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
        "socket.connection.setup.timeout.ms": 5000,
    }
    conf.update(extra)
    return Consumer(conf)


def confluent_read(bootstrap: str, topic: str, partitions: int, expected: int,
                   timeout_s: float = CONSUME_TIMEOUT_S, **consumer_conf):
    """Read `topic` from the beginning of every partition until `expected` messages arrived (or the
    timeout); returns (records, errors, low_watermarks, high_watermarks). Errors are the non-fatal
    error events seen on the way (partition errors for this topic fail the read at once).
    `consumer_conf` is added to the consumer's librdkafka configuration (fetch sizes, say)."""
    from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

    consumer = confluent_consumer(bootstrap, **consumer_conf)
    records: list[Rec] = []
    errors: list[str] = []
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for m in consumer.consume(num_messages=1000, timeout=0.5):
                err = m.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        continue
                    if m.topic() == topic or err.fatal():
                        raise KafkaException(err)
                    errors.append(str(err))
                    continue
                records.append(Rec(
                    m.partition(), m.offset(),
                    m.key().decode() if m.key() is not None else None,
                    m.value().decode() if m.value() is not None else None,
                    tuple((k, v.decode() if v is not None else None) for k, v in (m.headers() or [])),
                ))
    finally:
        consumer.close()
    low, high = confluent_watermarks(bootstrap, topic, partitions)
    return records, errors, low, high


def confluent_read_and_check(bootstrap: str, topic: str, partitions: int, produced: list[Rec],
                             check_headers: bool = False, **consumer_conf) -> list[Rec]:
    records, errors, low, high = confluent_read(bootstrap, topic, partitions, len(produced),
                                                **consumer_conf)
    try:
        check_roundtrip(produced, records, partitions, high_watermarks=high, low_watermarks=low,
                        check_headers=check_headers)
    except AssertionError as e:
        raise AssertionError(f"{e}\n  (read for up to {CONSUME_TIMEOUT_S} s; client errors on the way: "
                             f"{errors[:10]})") from None
    return records
