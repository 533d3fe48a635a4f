"""kafkajs 2.2.4 against the real broker, through node/kafkajs_roundtrip.js: admin (listTopics,
createTopics, fetchTopicMetadata, fetchTopicOffsets) and keyed produce with each codec, acks 0/1/all,
the idempotent producer, a restart. kafkajs has no consumer without a consumer group, so what it
produced is read back with confluent-kafka (manual assignment) and checked."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from compat_checks import CODECS, Rec, confluent_read_and_check, topic_name

NODE = shutil.which("node")
NODE_DIR = Path(__file__).resolve().parent / "node"
SCRIPT = NODE_DIR / "kafkajs_roundtrip.js"
pytestmark = pytest.mark.skipif(
    NODE is None or not (NODE_DIR / "node_modules" / "kafkajs").is_dir(),
    reason="node or kafkajs missing (bash scripts/setup-test-deps.sh)")


def kafkajs(bootstrap: str, topic: str, *args: str, timeout_s: float = 120) -> dict:
    cmd = [NODE, str(SCRIPT), "--bootstrap", bootstrap, "--topic", topic, *args]
    env = {**os.environ, "KAFKAJS_NO_PARTITIONER_WARNING": "1"}
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, cwd=NODE_DIR, env=env)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{' '.join(cmd)} still running after {timeout_s} s; stderr: {(e.stderr or b'')[-3000:]!r}")
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{done.stderr[-4000:]}"
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1])


def produced_records(result: dict) -> list[Rec]:
    return [Rec(m["partition"], None if m["offset"] is None else int(m["offset"]), m["key"], m["value"])
            for m in result["produced"]]


def check_admin_view(result: dict, topic: str, partitions: int, produced: list[Rec] | None = None):
    assert topic in result["topicsAfter"], result["topicsAfter"]
    parts = result["metadata"]["partitions"]
    assert [p["partitionId"] for p in parts] == list(range(partitions)), parts
    assert all(p["errorCode"] == 0 and p["leader"] >= 0 for p in parts), parts
    if produced is not None:
        # fetchTopicOffsets (ListOffsets earliest and latest) after producing.
        want = {p: sum(1 for r in produced if r.partition == p) for p in range(partitions)}
        got = {o["partition"]: (int(o["low"]), int(o["high"])) for o in result["offsets"]}
        assert got == {p: (0, n) for p, n in want.items()}, (got, want)


def test_admin_create_topic(bootstrap):
    topic = topic_name("kjs-admin")
    result = kafkajs(bootstrap, topic, "--create", "--partitions", "5", "--messages", "0")
    assert topic not in result["topicsBefore"]
    assert result["created"] is True
    check_admin_view(result, topic, 5, produced=[])


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_roundtrip(bootstrap, codec):
    topic = topic_name(f"kjs-{codec}")
    result = kafkajs(bootstrap, topic, "--create", "--partitions", "4", "--messages", "600",
                     "--compression", codec)
    produced = produced_records(result)
    check_admin_view(result, topic, 4, produced)
    confluent_read_and_check(bootstrap, topic, 4, produced, check_headers=True)


@pytest.mark.parametrize("acks", ["0", "1"])
def test_acks(bootstrap, acks):
    topic = topic_name(f"kjs-acks{acks}")
    result = kafkajs(bootstrap, topic, "--create", "--partitions", "3", "--messages", "300", "--keys", "12",
                     "--acks", acks)
    produced = produced_records(result)
    if acks == "0":
        assert all(r.offset is None for r in produced)
    confluent_read_and_check(bootstrap, topic, 3, produced, check_headers=True)


def test_idempotent_producer(bootstrap):
    topic = topic_name("kjs-idem")
    result = kafkajs(bootstrap, topic, "--create", "--partitions", "4", "--messages", "800", "--idempotent",
                     "--compression", "gzip")
    produced = produced_records(result)
    check_admin_view(result, topic, 4, produced)
    confluent_read_and_check(bootstrap, topic, 4, produced, check_headers=True)


def test_restart_keeps_acknowledged_messages(broker):
    topic = topic_name("kjs-durable")
    result = kafkajs(broker.bootstrap, topic, "--create", "--partitions", "4", "--messages", "1500")
    produced = produced_records(result)
    broker.restart()
    confluent_read_and_check(broker.bootstrap, topic, 4, produced, check_headers=True)


def test_group_consumer_consumes_to_the_end_and_commits(bootstrap):
    # kafkajs has only group consumers: it joins, gets every partition, and commits where it ended.
    topic = topic_name("js-group")
    result = kafkajs(bootstrap, topic, "--create", "--partitions", "3", "--messages", "300")
    produced = produced_records(result)
    high = {p["partition"]: int(p["high"]) for p in result["offsets"]}
    cmd = ["node", "kafkajs_group_consume.js", "--bootstrap", bootstrap, "--topic", topic, "--group", topic_name("jsg"),
           "--count", str(len(produced))]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=NODE_DIR)
    assert done.returncode == 0, done.stderr[-3000:]
    group = json.loads(done.stdout.strip().splitlines()[-1])
    assert group["consumed"] == len(produced)
    assert {c["partition"]: c["offset"] for c in group["committed"]} == high
