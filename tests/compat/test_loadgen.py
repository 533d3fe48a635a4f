"""Trust in the load generator: what `ringtail-loadgen run` reports is checked against what an
independent client (confluent-kafka, librdkafka 2.16) sees on the broker. Its acknowledged message
count must equal the sum of the partitions' high watermarks, every message must be consumed, and the
records must be well-formed for any Kafka consumer (size, stamp, CRC checked by librdkafka). No
timing is asserted: only counts, shapes and the JSON contract."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from compat_checks import topic_name

RUN_TIMEOUT_S = 90
STAMP_MARKER = 0xA5


def run_loadgen(loadgen_bin: Path, tmp_path: Path, *args: str) -> dict:
    """Runs the loadgen with `args` plus --json and --quiet; returns the parsed report."""
    report = tmp_path / f"report-{len(list(tmp_path.glob('report-*')))}.json"
    command = [str(loadgen_bin), *args, "--json", str(report), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert done.returncode == 0, f"{' '.join(command)}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    return json.loads(report.read_text())


def high_watermarks(bootstrap: str, topic: str, partitions: int) -> list[int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "loadgen-watermarks"})
    try:
        return [consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in range(partitions)]
    finally:
        consumer.close()


def read_all(bootstrap: str, topic: str, partitions: int, expected: int) -> list[bytes]:
    """Every value of `topic` from the start, read by confluent-kafka in assign mode."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "loadgen-reader",
                         "enable.auto.commit": False, "check.crcs": True,
                         "fetch.message.max.bytes": 8 << 20})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    values: list[bytes] = []
    idle = 0
    try:
        while len(values) < expected and idle < 20:
            batch = consumer.consume(num_messages=10000, timeout=0.5)
            idle = 0 if batch else idle + 1
            for message in batch:
                assert message.error() is None, message.error()
                values.append(message.value())
    finally:
        consumer.close()
    return values


def check_contract(report: dict) -> None:
    """The JSON fields scripts rely on (MB = 10^6 bytes)."""
    for key in ("messages", "bytes", "mb_per_s", "msgs_per_s", "latency_us"):
        assert key in report["produce"], key
    for key in ("p50", "p90", "p99", "p999", "max"):
        assert key in report["produce"]["latency_us"], key
        assert key in report["consume"]["e2e_latency_us"], key
    for key in ("messages", "bytes", "mb_per_s", "e2e_latency_us"):
        assert key in report["consume"], key
    assert {"config", "machine", "broker_cpu_s"} <= report.keys()
    produce = report["produce"]
    duration_s = report["config"]["duration_s"]
    assert produce["measured_s"] >= duration_s
    assert produce["mb_per_s"] == pytest.approx(produce["measured_bytes"] / 1e6 / produce["measured_s"])


@pytest.mark.parametrize("acks,compression", [("1", "none"), ("all", "lz4"), ("0", "zstd")])
def test_acknowledged_count_is_the_sum_of_high_watermarks(broker, loadgen_bin, tmp_path, acks, compression):
    topic = topic_name(f"loadgen-{acks}-{compression}")
    partitions = 3
    report = run_loadgen(loadgen_bin, tmp_path, "run", "--bootstrap", broker.bootstrap, "--topic", topic,
                         "--partitions", str(partitions), "--message-bytes", "300", "--duration-s", "2",
                         "--producers", "2", "--consumers", "2", "--acks", acks, "--compression", compression,
                         "--batch-bytes", "65536")
    check_contract(report)
    produced = report["produce"]
    assert produced["failed_messages"] == 0, produced["errors"]
    assert produced["messages"] > 0
    assert sum(high_watermarks(broker.bootstrap, topic, partitions)) == produced["messages"]
    assert produced["bytes"] == produced["messages"] * 300
    assert report["consume"]["messages"] == produced["messages"]
    assert report["consume"]["bytes"] == produced["bytes"]

    values = read_all(broker.bootstrap, topic, partitions, produced["messages"])
    assert len(values) == produced["messages"]
    assert all(len(value) == 300 and value[0] == STAMP_MARKER for value in values)


def test_open_loop_rate_sends_exactly_what_the_schedule_says(broker, loadgen_bin, tmp_path):
    """At 1000 msg/s for 2 s plus 1 s of warm-up the schedule has 3000 messages due, no matter how
    fast the machine is; 2000 of them are in the measured window."""
    topic = topic_name("loadgen-rate")
    report = run_loadgen(loadgen_bin, tmp_path, "run", "--bootstrap", broker.bootstrap, "--topic", topic,
                         "--partitions", "2", "--message-bytes", "100", "--duration-s", "2", "--warmup-s", "1",
                         "--rate", "1000", "--producers", "2")
    assert report["produce"]["messages"] == 3000
    assert report["produce"]["measured_messages"] == 2000
    assert report["produce"]["latency_us"]["count"] == 2000
    assert report["consume"]["e2e_latency_us"]["count"] == 2000
    assert sum(high_watermarks(broker.bootstrap, topic, 2)) == 3000


def test_group_consumers_with_keys_and_fan_out(broker, loadgen_bin, tmp_path):
    """Two consumer groups of two members each read every message; murmur2 keys."""
    topic = topic_name("loadgen-groups")
    report = run_loadgen(loadgen_bin, tmp_path, "run", "--bootstrap", broker.bootstrap, "--topic", topic,
                         "--partitions", "4", "--message-bytes", "64", "--duration-s", "2",
                         "--consumer-mode", "group", "--subscriptions", "2", "--consumers", "2",
                         "--key-cardinality", "100", "--partitioner", "murmur2", "--rate", "2000")
    produced = report["produce"]["messages"]
    assert produced == 4000
    assert sum(high_watermarks(broker.bootstrap, topic, 4)) == produced
    assert report["consume"]["messages"] == 2 * produced


def test_catch_up_consumer_reads_the_backlog_first(broker, loadgen_bin, tmp_path):
    topic = topic_name("loadgen-backlog")
    report = run_loadgen(loadgen_bin, tmp_path, "run", "--bootstrap", broker.bootstrap, "--topic", topic,
                         "--partitions", "2", "--message-bytes", "1000", "--duration-s", "1",
                         "--backlog-bytes", "2000000", "--start-from", "earliest", "--rate", "1000")
    total = sum(high_watermarks(broker.bootstrap, topic, 2))
    assert report["produce"]["messages"] == 1000
    assert total >= 2000 + 1000  # the backlog (at least 2 MB of 1000-byte values) and the run
    assert report["consume"]["messages"] == total


def test_omb_workload_file(broker, loadgen_bin, tmp_path):
    workload = tmp_path / "workload.yaml"
    workload.write_text("name: tiny\ntopics: 1\npartitionsPerTopic: 2\nmessageSize: 128\n"
                        "payloadFile: payload/payload-1Kb.data\nsubscriptionsPerTopic: 1\n"
                        "consumerPerSubscription: 1\nproducersPerTopic: 1\nproducerRate: 500\n"
                        "consumerBacklogSizeGB: 0\ntestDurationMinutes: 1\n")
    report = run_loadgen(loadgen_bin, tmp_path, "omb", str(workload), "--bootstrap", broker.bootstrap,
                         "--duration-s", "1", "--warmup-s", "0")
    assert report["label"] == "tiny"
    assert report["config"]["partitions"] == 2
    assert report["produce"]["messages"] == 500
    assert report["consume"]["messages"] == 500
