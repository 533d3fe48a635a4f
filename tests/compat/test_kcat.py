"""kcat (Debian's, linking librdkafka 2.0.2) against the real broker: metadata as JSON, keyed produce
from stdin, consume from the beginning (kcat -C without -G assigns every partition itself), the four
codecs, an idempotent producer, reading the tail of a partition, topic auto-creation, a restart.

kcat cannot create topics with a chosen partition count and reports no offsets for what it
produced; topics are created with confluent-kafka's AdminClient (tested on its own in
test_confluent_kafka.py) except in the auto-creation test, and the checks rely on what is read back
plus the watermarks."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from compat_checks import (CODECS, Rec, check_roundtrip, confluent_create_topic as create_topic,
                           confluent_watermarks, keyed_messages, topic_name)

KCAT = shutil.which("kcat")
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed (bash scripts/setup-test-deps.sh)")
COMMON = ["-X", "socket.connection.setup.timeout.ms=5000"]


def kcat(bootstrap: str, *args: str, stdin: str | None = None, timeout_s: float = 60) -> str:
    cmd = [KCAT, "-b", bootstrap, *COMMON, *args]
    try:
        done = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} still running after {timeout_s} s; stderr: {(e.stderr or b'')[-2000:]!r}")
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    assert "Delivery failed" not in done.stderr and "% ERROR" not in done.stderr, done.stderr[-3000:]
    return done.stdout


def kcat_produce(bootstrap: str, topic: str, messages, *extra: str) -> list[Rec]:
    lines = "".join(f"{k}:{v}\n" for k, v in messages)
    kcat(bootstrap, "-P", "-t", topic, "-K:", "-X", "acks=all", "-X", "linger.ms=10", *extra, stdin=lines)
    return [Rec(-1, None, k, v) for k, v in messages]


def kcat_consume(bootstrap: str, topic: str, *extra: str) -> list[Rec]:
    out = kcat(bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "%p %o %k %s\n", *extra)
    records = []
    for line in out.splitlines():
        p, o, k, v = line.split(" ")
        records.append(Rec(int(p), int(o), k, v))
    return records


def metadata(bootstrap: str, *extra: str) -> dict:
    return json.loads(kcat(bootstrap, "-L", "-J", *extra))


def check(bootstrap, topic, partitions, produced, consumed):
    low, high = confluent_watermarks(bootstrap, topic, partitions)
    check_roundtrip(produced, consumed, partitions, high_watermarks=high, low_watermarks=low)


def test_metadata_json(broker):
    md = metadata(broker.bootstrap)
    assert [b["name"] for b in md["brokers"]] == [broker.bootstrap], md["brokers"]
    assert isinstance(md["topics"], list)

    topic = topic_name("kcat-md")
    create_topic(broker.bootstrap, topic, 3)
    md = metadata(broker.bootstrap, "-t", topic)
    (t,) = md["topics"]
    assert t["topic"] == topic and "error" not in t, t
    broker_id = md["brokers"][0]["id"]
    assert sorted(p["partition"] for p in t["partitions"]) == [0, 1, 2]
    assert all(p["leader"] == broker_id for p in t["partitions"]), t


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_roundtrip(bootstrap, codec):
    topic = topic_name(f"kcat-{codec}")
    create_topic(bootstrap, topic, 4)
    produced = kcat_produce(bootstrap, topic, keyed_messages(600), "-X", f"compression.codec={codec}")
    check(bootstrap, topic, 4, produced, kcat_consume(bootstrap, topic))


def test_idempotent_producer(bootstrap):
    topic = topic_name("kcat-idem")
    create_topic(bootstrap, topic, 4)
    produced = kcat_produce(bootstrap, topic, keyed_messages(600), "-X", "enable.idempotence=true",
                            "-X", "compression.codec=zstd")
    check(bootstrap, topic, 4, produced, kcat_consume(bootstrap, topic))


def test_read_the_tail_of_a_partition(bootstrap):
    topic = topic_name("kcat-tail")
    create_topic(bootstrap, topic, 1)
    kcat_produce(bootstrap, topic, keyed_messages(100, keys=5))
    # -o -10: ten before the end (ListOffsets latest, then a fetch from the middle of the log).
    tail = kcat_consume(bootstrap, topic, "-p", "0", "-o", "-10")
    assert [(r.offset, r.value) for r in tail] == [(o, f"v{o}-k{o % 5}") for o in range(90, 100)]


def test_produce_auto_creates_topic(start_broker):
    b = start_broker("--auto-create-topics", "true", "--default-partitions", "3")
    topic = topic_name("kcat-auto")
    produced = kcat_produce(b.bootstrap, topic, keyed_messages(300, keys=12))
    (t,) = metadata(b.bootstrap, "-t", topic)["topics"]
    assert len(t["partitions"]) == 3, t
    check(b.bootstrap, topic, 3, produced, kcat_consume(b.bootstrap, topic))


def test_restart_keeps_acknowledged_messages(broker):
    topic = topic_name("kcat-durable")
    create_topic(broker.bootstrap, topic, 4)
    before = kcat_produce(broker.bootstrap, topic, keyed_messages(1500))
    broker.restart()
    check(broker.bootstrap, topic, 4, before, kcat_consume(broker.bootstrap, topic))
    after = kcat_produce(broker.bootstrap, topic, keyed_messages(1700)[1500:])
    check(broker.bootstrap, topic, 4, before + after, kcat_consume(broker.bootstrap, topic))
