"""Client quotas through librdkafka (confluent-kafka 2.16): a producer under a producer_byte_rate
quota is throttled (its statistics show the broker's throttle time) and the bytes the broker
accepted stay within what the quota allows, an upper bound that holds however slow the machine.

confluent-kafka 2.16 has no alter/describe_client_quotas (nor has kafka-python 3), so the quota is
set with a raw AlterClientQuotas request (quota_wire.py); the API itself is covered through the
Java AdminClient and kafka-configs in tests/jvm (ClientQuotasTest)."""

from __future__ import annotations

import json
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from compat_checks import topic_name
from quota_wire import alter_client_quotas

QUOTA_BYTES_PER_SEC = 8 * 1024
# Kafka's sensor: 11 windows of 1 s, and a rate never divided by less than 10 s.
SPAN_S = 11
MESSAGE_BYTES = 2 * 1024
MESSAGES = 120
# Requests are at most one batch (batch.size) plus framing; librdkafka keeps at most 5 in flight.
BATCH_BYTES = 16 * 1024
REQUEST_BYTES_MAX = BATCH_BYTES + 1024
IN_FLIGHT_MAX = 5


def test_a_producer_over_its_byte_rate_is_throttled_and_held_to_it(bootstrap):
    # The quota in practice: librdkafka sees throttle_time_ms, and the accepted bytes never
    # exceed quota x (elapsed + the sampled span) plus the requests already in flight.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = topic_name("quota")
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=15)
    assert alter_client_quotas(bootstrap, {"client-id": "quota-producer"},
                               {"producer_byte_rate": QUOTA_BYTES_PER_SEC}) == [0]
    throttle_max_ms = []

    def on_stats(text: str) -> None:
        for broker in json.loads(text)["brokers"].values():
            throttle_max_ms.append(broker["throttle"]["max"])

    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "quota-producer",
                         "linger.ms": 5, "batch.size": BATCH_BYTES, "max.in.flight": IN_FLIGHT_MAX,
                         "statistics.interval.ms": 200, "stats_cb": on_stats})
    delivered = []
    started = time.monotonic()
    for _ in range(MESSAGES):
        producer.produce(topic, b"x" * MESSAGE_BYTES, on_delivery=lambda err, msg: delivered.append(err))
        producer.poll(0)
    assert producer.flush(120) == 0
    elapsed_s = time.monotonic() - started
    producer.poll(0.5)  # one more statistics callback after the last response
    assert delivered == [None] * MESSAGES
    assert max(throttle_max_ms) > 0, "librdkafka never saw a throttle time"
    # 240 KiB against 8 KiB/s: without throttling this takes well under a second and the bound
    # (about 170 KiB plus 8 KiB per elapsed second) fails; with it, the broker holds the client.
    in_flight_slack = IN_FLIGHT_MAX * REQUEST_BYTES_MAX
    allowed = QUOTA_BYTES_PER_SEC * (elapsed_s + SPAN_S) + in_flight_slack
    assert MESSAGES * MESSAGE_BYTES <= allowed, (MESSAGES * MESSAGE_BYTES, allowed, elapsed_s)
