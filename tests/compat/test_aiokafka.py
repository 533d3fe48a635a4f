"""aiokafka (asyncio) against the real broker: AIOKafkaAdminClient, AIOKafkaProducer, AIOKafkaConsumer
with group_id=None and manual assignment, the four codecs, the idempotent producer, a restart.
Each test runs its own event loop with asyncio.run (no pytest plugin needed)."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewPartitions, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from compat_checks import CODECS, CONSUME_TIMEOUT_S, Rec, check_roundtrip, keyed_messages, seq_of, topic_name

REQUEST_TIMEOUT_MS = 15000
TOPIC_ALREADY_EXISTS = 36


def run(coro, timeout_s: float = 90):
    async def bounded():
        return await asyncio.wait_for(coro, timeout_s)
    return asyncio.run(bounded())


async def admin_client(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS,
                                client_id="ringtail-compat-aiokafka")
    await admin.start()
    return admin


def topic_errors(response) -> list[tuple[str, int]]:
    """(topic, error_code) pairs of a CreateTopics/DeleteTopics response, whatever its version."""
    obj = response.to_object()
    rows = obj.get("topic_errors") or obj.get("topic_error_codes") or []
    return [(r.get("topic") or r.get("name"), r["error_code"]) for r in rows]


async def partition_count(admin: AIOKafkaAdminClient, topic: str) -> int | None:
    for t in await admin.describe_topics([topic]):
        if t["topic"] == topic and t["error_code"] == 0:
            return len(t["partitions"])
    return None


async def wait_partitions(admin: AIOKafkaAdminClient, topic: str, want: int, timeout_s: float = 10):
    deadline = time.monotonic() + timeout_s
    while (n := await partition_count(admin, topic)) != want:
        assert time.monotonic() < deadline, f"{topic}: metadata shows {n} partitions after {timeout_s} s, want {want}"
        await asyncio.sleep(0.2)


async def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = await admin_client(bootstrap)
    try:
        resp = await admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=10000)
        assert topic_errors(resp) == [(topic, 0)], resp
        await wait_partitions(admin, topic, partitions)
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, messages, **conf) -> list[Rec]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, request_timeout_ms=REQUEST_TIMEOUT_MS,
                                client_id="ringtail-compat-aiokafka", **conf)
    await producer.start()
    try:
        futures = [await producer.send(topic, key=k.encode(), value=v.encode(),
                                       headers=[("seq", str(seq_of(v)).encode())])
                   for k, v in messages]
        await producer.flush()
        metas = await asyncio.gather(*futures)
        if conf.get("enable_idempotence"):
            assert producer._txn_manager is not None and producer._txn_manager.has_pid(), \
                "idempotent producer has no producer id (InitProducerId)"
    finally:
        await producer.stop()
    # With acks=0 aiokafka resolves each send to None: no partition, no offset.
    return [Rec(-1, None, k, v) if md is None else Rec(md.partition, md.offset if md.offset >= 0 else None, k, v)
            for (k, v), md in zip(messages, metas)]


async def read_all(bootstrap: str, topic: str, partitions: int, expected: int):
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", request_timeout_ms=REQUEST_TIMEOUT_MS,
                                client_id="ringtail-compat-aiokafka")
    await consumer.start()
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    records: list[Rec] = []
    try:
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + CONSUME_TIMEOUT_S
        while len(records) < expected and time.monotonic() < deadline:
            for tp, batch in (await consumer.getmany(timeout_ms=500, max_records=1000)).items():
                for m in batch:
                    records.append(Rec(tp.partition, m.offset, m.key.decode(), m.value.decode(),
                                       tuple((k, v.decode()) for k, v in m.headers)))
        low = {tp.partition: o for tp, o in (await consumer.beginning_offsets(tps)).items()}
        high = {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()
    return records, low, high


async def read_and_check(bootstrap, topic, partitions, produced):
    records, low, high = await read_all(bootstrap, topic, partitions, len(produced))
    check_roundtrip(produced, records, partitions, high_watermarks=high, low_watermarks=low, check_headers=True)


def test_metadata(broker):
    async def body():
        admin = await admin_client(broker.bootstrap)
        try:
            cluster = await admin.describe_cluster()
            assert len(cluster["brokers"]) == 1, cluster
            b = cluster["brokers"][0]
            assert (b["host"], b["port"]) == ("127.0.0.1", broker.port)
            assert isinstance(await admin.list_topics(), list)
        finally:
            await admin.close()
    run(body())


def test_admin_create_grow_configs_delete(bootstrap):
    async def body():
        topic = topic_name("aio-admin")
        admin = await admin_client(bootstrap)
        try:
            resp = await admin.create_topics([NewTopic(topic, 3, 1)], timeout_ms=10000)
            assert topic_errors(resp) == [(topic, 0)], resp
            await wait_partitions(admin, topic, 3)
            assert topic in await admin.list_topics()

            resp = await admin.create_topics([NewTopic(topic, 3, 1)], timeout_ms=10000)
            assert topic_errors(resp) == [(topic, TOPIC_ALREADY_EXISTS)], resp

            await admin.create_partitions({topic: NewPartitions(5)}, timeout_ms=10000)
            await wait_partitions(admin, topic, 5)

            (configs,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
            (resource,) = configs.to_object()["resources"]
            assert resource["error_code"] == 0, resource

            resp = await admin.delete_topics([topic], timeout_ms=10000)
            assert topic_errors(resp) == [(topic, 0)], resp
            deadline = time.monotonic() + 10
            while topic in await admin.list_topics():
                assert time.monotonic() < deadline, f"{topic} still listed 10 s after DeleteTopics"
                await asyncio.sleep(0.2)
        finally:
            await admin.close()
    run(body())


@pytest.mark.parametrize("codec", CODECS)
def test_keyed_roundtrip(bootstrap, codec):
    async def body():
        topic = topic_name(f"aio-{codec}")
        await create_topic(bootstrap, topic, 4)
        produced = await produce(bootstrap, topic, keyed_messages(600), acks="all",
                                 compression_type=None if codec == "none" else codec)
        await read_and_check(bootstrap, topic, 4, produced)
    run(body())


@pytest.mark.parametrize("acks", [0, 1])
def test_acks(bootstrap, acks):
    async def body():
        topic = topic_name(f"aio-acks{acks}")
        await create_topic(bootstrap, topic, 3)
        produced = await produce(bootstrap, topic, keyed_messages(300, keys=12), acks=acks)
        await read_and_check(bootstrap, topic, 3, produced)
    run(body())


def test_idempotent_producer(bootstrap):
    async def body():
        topic = topic_name("aio-idem")
        await create_topic(bootstrap, topic, 4)
        produced = await produce(bootstrap, topic, keyed_messages(800), acks="all", enable_idempotence=True,
                                 compression_type="snappy")
        await read_and_check(bootstrap, topic, 4, produced)
    run(body())


def test_restart_keeps_acknowledged_messages(broker):
    topic = topic_name("aio-durable")
    before = run(_create_and_produce(broker.bootstrap, topic, keyed_messages(1500)))
    broker.restart()

    async def after_restart():
        await read_and_check(broker.bootstrap, topic, 4, before)
        after = await produce(broker.bootstrap, topic, keyed_messages(1700)[1500:], acks="all")
        await read_and_check(broker.bootstrap, topic, 4, before + after)
    run(after_restart())


async def _create_and_produce(bootstrap, topic, messages):
    await create_topic(bootstrap, topic, 4)
    return await produce(bootstrap, topic, messages, acks="all")
