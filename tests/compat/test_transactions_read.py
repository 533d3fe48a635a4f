"""Read side of transactions with confluent-kafka: a read_committed consumer gets committed
records only and stops at the last stable offset; a read_uncommitted one gets everything.

The history (offsets 0-1 plain, 2-4 committed, 5-6 aborted, 7-8 markers, 9-10 an open
transaction, 11 plain) is written by `engine/examples/txn_history.rs` through the engine's append
path while the broker is stopped — the path the transaction coordinator uses. The end-to-end test
with the transactional producer comes with the coordinator."""
import subprocess
import time

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from conftest import _cargo_binary

TOPIC = "txn-read"
CONSUME_TIMEOUT_S = 30


@pytest.fixture(scope="session")
def txn_history_bin(tmp_path_factory):
    """engine/examples/txn_history.rs: TXN_HISTORY_BIN if set, else built once."""
    return _cargo_binary(tmp_path_factory, "TXN_HISTORY_BIN", "ringtail-engine", "txn_history", example=True)


def consume(bootstrap, isolation, want_count):
    """Consumes from the start until `want_count` records arrived and the position reached the
    end the consumer may read (its high watermark under its isolation level)."""
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": f"g-{isolation}",
        "isolation.level": isolation,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    tp = TopicPartition(TOPIC, 0, 0)
    consumer.assign([tp])
    offsets = []
    _, high = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10, cached=False)
    deadline = time.monotonic() + CONSUME_TIMEOUT_S
    while time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None:
            assert message.error() is None, message.error()
            offsets.append(message.offset())
            assert message.value() == f"offset-{message.offset()}".encode()
        position = consumer.position([TopicPartition(TOPIC, 0)])[0].offset
        if len(offsets) >= want_count and position >= high:
            break
    consumer.close()
    return offsets, high


def test_read_committed_consumer_skips_aborted_records_and_stops_at_the_lso(broker, txn_history_bin):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap})
    admin.create_topics([NewTopic(TOPIC, 1, 1)])[TOPIC].result(timeout=10)
    broker.stop()
    subprocess.run([str(txn_history_bin), str(broker.data_dir / f"{TOPIC}-0")], check=True, timeout=60)
    broker.start()

    committed, lso = consume(broker.bootstrap, "read_committed", 5)
    assert lso == 9, "read_committed's high watermark is the LSO"
    assert committed == [0, 1, 2, 3, 4], "committed records only, nothing past the LSO"

    everything, high = consume(broker.bootstrap, "read_uncommitted", 10)
    assert high == 12
    assert everything == [0, 1, 2, 3, 4, 5, 6, 9, 10, 11]
