"""An unchanged client reads a backlog dropped from the page cache (issue 13's cold path).

The broker's own tests check the cold path byte for byte against its own fetches. This one has
librdkafka (confluent-kafka) read it: every record of a 65 MB backlog over three partitions, written
in records of uneven sizes so batches straddle the 4 MiB cold chunks and the 8 MiB segments, is
produced, fsynced and dropped from the page cache, then consumed from offset 0 and checked for
order, gaps, duplicates and content, librdkafka checking each batch's CRC-32C (`check.crcs`). The
broker's own disk reads (/proc/<pid>/io) show the backlog came from disk in every case. It runs
for each way a cold range can leave the broker: the default (cold chunks written by a nice-10
sender thread), `--fetch-cold-send-priority shard` (written by the shard itself), the residency
check off (spliced unchecked), and with small fetches (ranges shorter than a chunk, and records
larger than the partition's fetch size, which KIP-74 sends whole). /metrics shows the cold path
actually ran, so a data dir the kernel cannot evict (tmpfs) fails the test instead of passing it
on warm data (the residency check's own failures, on a kernel without cachestat, are shown).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from compat_checks import confluent_create_topic, confluent_read_and_check, topic_name
from conftest import free_port
from test_confluent_kafka import produce
from test_disks import metrics

PARTITIONS = 3
MESSAGES = 9_000
KEYS = 30
# Value sizes cycle through these (bytes): mostly small, some larger than the small-fetch case's
# max.partition.fetch.bytes, none a multiple of a page.
VALUE_BYTES = [113, 1_999, 4_097, 6_011, 9_973, 21_011]
SMALL_FETCH = {"max.partition.fetch.bytes": 16_384, "fetch.max.bytes": 65_536, "message.max.bytes": 65_536}
# librdkafka leaves batch CRCs unchecked by default.
CHECK_CRCS = {"check.crcs": True}


def value_of(i: int) -> str:
    """Message i's value: "v{i}-k{key}-" (what check_roundtrip reads), padded with hex that does
    not repeat within a page, to its size in VALUE_BYTES."""
    head = f"v{i}-k{i % KEYS}-"
    size = VALUE_BYTES[i % len(VALUE_BYTES)]
    pad = []
    block = 0
    while sum(map(len, pad)) < size:
        pad.append(hashlib.sha256(f"{i}/{block}".encode()).hexdigest())
        block += 1
    return (head + "".join(pad))[:size]


def drop_from_page_cache(data_dir: Path) -> None:
    """fsync and POSIX_FADV_DONTNEED every file of the broker's data dir (dirty pages cannot be
    dropped)."""
    for path in data_dir.rglob("*"):
        if not path.is_file():
            continue
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def segments_per_partition(data_dir: Path, topic: str) -> dict[str, int]:
    """Segment files of each of the topic's partition directories (`<topic>-<partition>`)."""
    return {d.name: len(list(d.glob("*.log")))
            for d in data_dir.iterdir() if d.is_dir() and d.name.startswith(f"{topic}-")}


def disk_read_bytes(pid: int) -> int:
    """Bytes the process (all its threads, io-wq workers included) had read from storage."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("read_bytes:"):
            return int(line.split()[1])
    raise AssertionError(f"/proc/{pid}/io has no read_bytes")


@pytest.mark.parametrize("case", ["default", "shard-writes-cold-chunks", "check-off", "small-fetches"])
def test_a_client_reads_a_backlog_dropped_from_the_page_cache_record_for_record(start_broker, case):
    metrics_port = free_port()
    args = ["--metrics-listen", f"127.0.0.1:{metrics_port}"]
    if case == "shard-writes-cold-chunks":
        args += ["--fetch-cold-send-priority", "shard"]
    if case == "check-off":
        args += ["--fetch-residency-check", "off"]
    broker = start_broker(*args)
    broker.metrics_port = metrics_port
    topic = topic_name("cold")
    confluent_create_topic(broker.bootstrap, topic, PARTITIONS)
    produced = produce(broker.bootstrap, topic, [(f"k{i % KEYS}", value_of(i)) for i in range(MESSAGES)],
                       **{"linger.ms": 20, "batch.size": 262_144})

    # Every partition rolled (8 MiB segments in these tests), so reads cross segment ends.
    segments = segments_per_partition(broker.data_dir, topic)
    assert len(segments) == PARTITIONS and min(segments.values()) >= 2, segments
    drop_from_page_cache(broker.data_dir)
    record_bytes = sum(len(r.key) + len(r.value) for r in produced)
    before = metrics(broker)
    read_before = disk_read_bytes(broker.proc.pid)
    consumer_conf = {**CHECK_CRCS, **(SMALL_FETCH if case == "small-fetches" else {})}
    confluent_read_and_check(broker.bootstrap, topic, PARTITIONS, produced, **consumer_conf)
    after = metrics(broker)
    # Whichever path sent it, the backlog was read from disk, not from the page cache.
    read = disk_read_bytes(broker.proc.pid) - read_before
    assert read >= record_bytes / 2, f"the broker read {read} bytes from disk for {record_bytes} bytes of records"

    def moved(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)

    cold = moved("ringtail_fetch_cold_bytes_total")
    sent_by_thread = moved("ringtail_fetch_cold_sender_bytes_total")
    seen = {name: moved(name) for name in after
            if name.startswith("ringtail_fetch_") and name.endswith(("bytes_total", "failures_total"))}
    if case == "check-off":
        # Unchecked: nothing is classified, everything is spliced.
        assert cold == 0 and moved("ringtail_fetch_hot_bytes_total") == 0, seen
        return
    # Everything was dropped, so at least half of the records' bytes must have come the cold way
    # (a range resident again by then, through readahead of a neighbour, may go hot).
    assert cold >= record_bytes / 2, f"cold bytes {cold} for {record_bytes} bytes of records: was the data dropped? {seen}"
    if case == "shard-writes-cold-chunks":
        assert sent_by_thread == 0, seen
    else:
        assert sent_by_thread > 0, f"the default sends cold chunks from its sender thread: {seen}"
