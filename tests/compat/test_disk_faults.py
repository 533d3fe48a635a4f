"""Disk faults under the real broker (issue 14): an fsync that fails with EIO, a write that
fails with ENOSPC, injected by tests/forgetful-fs.

The decision (docs/decisions/0010-fsync-error-read-only.md): the partition goes read-only —
produce answered KAFKA_STORAGE_ERROR, reads still served, other partitions unaffected — and its
fsync is never retried: after a failed fsync the kernel may have dropped the pages, so a retry
that succeeds would call lost data durable. A restart recovers the partition from what is on
disk. Needs root and /dev/fuse, like test_power_loss.py.
"""

from __future__ import annotations

import time

import pytest
from confluent_kafka import KafkaError, Producer

from power_loss import (TOPIC, Ledger, check_log, create_topic, forgetful_fs_bin,  # noqa: F401
                        needs_fuse, powered)

RECORDS_BEFORE_FAULT = 10


def produce_one(bootstrap: str, partition: int, value: bytes):
    """Produces one record with acks=all and no retries; returns (error or None, offset)."""
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": False,
                         "retries": 0, "message.timeout.ms": 20_000})
    outcome = []
    producer.produce(TOPIC, value=value, partition=partition,
                     on_delivery=lambda err, msg: outcome.append((err, msg.offset())))
    assert producer.flush(30) == 0, "the broker answered"
    return outcome[0]


def produce_acked(bootstrap: str, ledger: Ledger, partition: int, count: int, tag: str) -> None:
    for i in range(count):
        value = f"{tag}-{i}".encode()
        err, offset = produce_one(bootstrap, partition, value)
        assert err is None, f"{value!r}: {err}"
        ledger.acked[(partition, offset)] = value
        ledger.acked_values.add(value)


def assert_storage_error(bootstrap: str, partition: int, value: bytes) -> None:
    err, _ = produce_one(bootstrap, partition, value)
    assert err is not None and err.code() == KafkaError.KAFKA_STORAGE_ERROR, \
        f"partition {partition}: want KAFKA_STORAGE_ERROR, got {err}"


def assert_log_intact(bootstrap: str, ledger: Ledger) -> None:
    check = check_log(bootstrap, ledger)
    assert check.missing == [], f"acknowledged records lost: {check.missing}"
    assert check.duplicates == [], check.duplicates
    assert check.gaps == [], check.gaps
    assert check.read_errors == [], check.read_errors


@needs_fuse
def test_fsync_eio_makes_the_partition_read_only_and_is_never_retried(powered):
    """An fdatasync failing with EIO: the append is refused, the partition refuses every later
    append (even once fsync works again) and is never fsynced again, reads and other partitions
    go on, and a restart after a power loss recovers everything acknowledged."""
    fs, broker = powered("every_batch")
    create_topic(broker.bootstrap)
    ledger = Ledger()
    produce_acked(broker.bootstrap, ledger, 0, RECORDS_BEFORE_FAULT, "before")
    produce_acked(broker.bootstrap, ledger, 1, RECORDS_BEFORE_FAULT, "other")

    fs.command("fail-fsync on")
    assert_storage_error(broker.bootstrap, 0, b"during-fault")
    fs.command("fail-fsync off")
    assert fs.stats()["fsync_errors"] >= 1, "the fault was hit"
    assert_storage_error(broker.bootstrap, 0, b"after-fault")
    produce_acked(broker.bootstrap, ledger, 1, RECORDS_BEFORE_FAULT, "other-after")
    assert_log_intact(broker.bootstrap, ledger)
    assert fs.stats()["fsyncs_after_error"] == 0, "a failed fsync was retried"

    broker.power_off(fs)
    fs.command("power-loss")
    broker.start()
    assert_log_intact(broker.bootstrap, ledger)
    produce_acked(broker.bootstrap, ledger, 0, RECORDS_BEFORE_FAULT, "after-restart")
    assert_log_intact(broker.bootstrap, ledger)


@needs_fuse
@pytest.mark.parametrize("flush", ["every_batch", "none"])
def test_enospc_on_write_is_refused_and_appends_resume_once_writes_work(powered, flush):
    """A write failing with ENOSPC: the append is refused with KAFKA_STORAGE_ERROR (a partial
    write may sit past the log's end) and nothing acknowledged is lost. Once the filesystem takes
    writes again, the shard reopens the log from disk (recovery cuts the partial write) and
    appends resume without a restart (docs/decisions/0011-jbod-data-dirs.md; an fsync error, by
    contrast, keeps the partition read-only until a restart: 0010). The broker then stops cleanly,
    and after a restart everything acknowledged is there and appends go on."""
    fs, broker = powered(flush)
    create_topic(broker.bootstrap)
    ledger = Ledger()
    produce_acked(broker.bootstrap, ledger, 0, RECORDS_BEFORE_FAULT, "before")

    fs.command("fail-write on")
    assert_storage_error(broker.bootstrap, 0, b"during-fault")
    fs.command("fail-write off")
    # The shard looks again every second; until then the partition refuses appends.
    deadline = time.monotonic() + 30
    attempt = 0
    while True:
        value = f"after-fault-{attempt}".encode()
        err, offset = produce_one(broker.bootstrap, 0, value)
        if err is None:
            ledger.acked[(0, offset)] = value
            ledger.acked_values.add(value)
            break
        assert err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
        assert time.monotonic() < deadline, "appends did not resume once writes worked again"
        attempt += 1
        time.sleep(0.2)
    produce_acked(broker.bootstrap, ledger, 0, RECORDS_BEFORE_FAULT, "resumed")
    produce_acked(broker.bootstrap, ledger, 1, RECORDS_BEFORE_FAULT, "other")
    assert_log_intact(broker.bootstrap, ledger)

    broker.stop()
    broker.start()
    produce_acked(broker.bootstrap, ledger, 0, RECORDS_BEFORE_FAULT, "after-restart")
    assert_log_intact(broker.bootstrap, ledger)


@needs_fuse
def test_interval_fsync_eio_fails_the_partition_not_the_broker_and_is_never_retried(powered):
    """Under a `<N>ms` policy the append is acknowledged before its fsync; when the background
    fsync fails, the partition refuses later appends and the flusher never fsyncs it again,
    while the broker keeps serving (it used to exit with status 3)."""
    fs, broker = powered("50ms")
    create_topic(broker.bootstrap)
    ledger = Ledger()
    produce_acked(broker.bootstrap, ledger, 0, RECORDS_BEFORE_FAULT, "before")
    # Partition 1 gets nothing before the fault: with nothing unsynced, its fsync cannot fail.
    deadline = time.monotonic() + 60
    fs.command("fail-fsync on")
    # Acknowledged before its fsync, unless the flusher's failure (on the records before it, if
    # they were not synced yet) came first: either way the partition fails within a tick.
    err, offset = produce_one(broker.bootstrap, 0, b"during-fault")
    if err is None:
        ledger.acked[(0, offset)] = b"during-fault"
    else:
        assert err.code() == KafkaError.KAFKA_STORAGE_ERROR, err
    while fs.stats()["fsync_errors"] == 0:
        assert time.monotonic() < deadline, "the interval fsync was never tried"
        time.sleep(0.05)
    fs.command("fail-fsync off")
    assert_storage_error(broker.bootstrap, 0, b"after-fault")
    # Several more flusher passes (each syncs partition 1 after an append to it) while the failed
    # partition waits unsynced: none of them may fsync it again.
    for i in range(3):
        fsyncs = fs.stats()["fsyncs"]
        produce_acked(broker.bootstrap, ledger, 1, 1, f"other-{i}")
        while fs.stats()["fsyncs"] == fsyncs:
            assert time.monotonic() < deadline, "the flusher stopped"
            time.sleep(0.05)
    assert fs.stats()["fsyncs_after_error"] == 0, "a failed fsync was retried"
    assert broker.proc is not None and broker.proc.poll() is None, "the broker is still up"
    assert_log_intact(broker.bootstrap, ledger)



@needs_fuse
def test_the_coordinators_resume_after_a_full_disk_without_a_restart(powered):
    """The coordinators' internal logs (`__consumer_offsets`, `__transaction_state`) fail for
    space like any other. Once writes work again the shard reopens them, and the coordinators must
    write to the reopened logs: they kept the failed ones, so every offset commit and transaction
    answered COORDINATOR_NOT_AVAILABLE (which clients retry for ever) until a restart."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    fs, broker = powered("every_batch")
    create_topic(broker.bootstrap)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap, "group.id": "after-enospc",
                         "enable.auto.commit": False})
    consumer.commit(offsets=[TopicPartition(TOPIC, 0, 1)], asynchronous=False)
    transactional = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "after-enospc"})
    transactional.init_transactions(30)

    fs.command("fail-write on")
    with pytest.raises(KafkaException):
        consumer.commit(offsets=[TopicPartition(TOPIC, 0, 2)], asynchronous=False)
    transactional.begin_transaction()
    transactional.produce(TOPIC, value=b"during-fault", partition=0)
    with pytest.raises(KafkaException):
        transactional.commit_transaction(10)
    fs.command("fail-write off")

    # The shard looks for space every second; until it reopened the logs, writes are refused.
    deadline = time.monotonic() + 30
    while True:
        try:
            consumer.commit(offsets=[TopicPartition(TOPIC, 0, 3)], asynchronous=False)
            break
        except KafkaException as err:
            assert time.monotonic() < deadline, f"offset commits never resumed: {err}"
            time.sleep(0.2)
    assert consumer.committed([TopicPartition(TOPIC, 0)], timeout=10)[0].offset == 3
    consumer.close()

    # A fresh transactional producer of the same id (the one above may be in a fatal state).
    producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "after-enospc"})
    while True:
        try:
            producer.init_transactions(10)
            producer.begin_transaction()
            producer.produce(TOPIC, value=b"after-fault", partition=0)
            producer.commit_transaction(10)
            break
        except KafkaException as err:
            assert time.monotonic() < deadline + 30, f"transactions never resumed: {err}"
            producer = Producer({"bootstrap.servers": broker.bootstrap, "transactional.id": "after-enospc"})
            time.sleep(0.2)
