"""Rate a librdkafka producer achieves under a producer_byte_rate quota, against the quota.

    RINGTAIL_BIN=target/release/ringtail .venv/bin/python results/quotas/measure.py [quota_bytes_per_sec] [seconds]

Starts a broker on a free loopback port with a temporary data dir, sets the quota on the
producer's client id (raw AlterClientQuotas, tests/compat/quota_wire.py), produces 4 KiB messages
as fast as the client is let for `seconds`, and prints the acknowledged bytes per second over the
whole run and over its second half (after Kafka's sampled window has filled: the first ~10 s
allow a burst of quota x 10 s, as in Kafka).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "compat"))
from confluent_kafka import Producer  # noqa: E402
from confluent_kafka.admin import AdminClient, NewTopic  # noqa: E402
from quota_wire import alter_client_quotas  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    quota = float(sys.argv[1]) if len(sys.argv) > 1 else 256 * 1024
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 40
    port = free_port()
    bootstrap = f"127.0.0.1:{port}"
    with tempfile.TemporaryDirectory() as data_dir:
        broker = subprocess.Popen([os.environ["RINGTAIL_BIN"], "--listen", bootstrap, "--data-dir", data_dir],
                                  stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 20
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    assert time.monotonic() < deadline, "broker did not start"
                    time.sleep(0.05)
            admin = AdminClient({"bootstrap.servers": bootstrap})
            admin.create_topics([NewTopic("measure", 1, 1)])["measure"].result(timeout=15)
            assert alter_client_quotas(bootstrap, {"client-id": "measured"}, {"producer_byte_rate": quota}) == [0]
            run(bootstrap, quota, seconds)
        finally:
            broker.terminate()
            broker.wait(timeout=20)


def run(bootstrap: str, quota: float, seconds: float) -> None:
    throttles = []
    acked = []  # (monotonic time, bytes)

    def on_stats(text: str) -> None:
        for b in json.loads(text)["brokers"].values():
            if b["throttle"]["cnt"]:
                throttles.append(b["throttle"]["max"])

    def on_delivery(err, msg) -> None:
        if err is None:
            acked.append((time.monotonic(), len(msg.value())))

    producer = Producer({"bootstrap.servers": bootstrap, "client.id": "measured", "linger.ms": 5,
                         "batch.size": 65536, "statistics.interval.ms": 1000, "stats_cb": on_stats,
                         "queue.buffering.max.kbytes": 1024})
    value = b"m" * 4096
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        try:
            producer.produce("measure", value, on_delivery=on_delivery)
        except BufferError:
            producer.poll(0.05)
        producer.poll(0)
    stopped = time.monotonic()
    producer.flush(120)
    in_run = [(t, n) for t, n in acked if t <= stopped]
    half = started + seconds / 2
    second_half = [n for t, n in in_run if t > half]
    total_rate = sum(n for _, n in in_run) / (stopped - started)
    half_rate = sum(second_half) / (stopped - half)
    print(f"quota {quota:.0f} B/s, run {seconds:.0f} s")
    print(f"acknowledged over the run:       {total_rate:10.0f} B/s ({total_rate / quota:.2f} x quota)")
    print(f"acknowledged in the second half: {half_rate:10.0f} B/s ({half_rate / quota:.2f} x quota)")
    print(f"largest throttle_time_ms librdkafka saw: {max(throttles) if throttles else 0}")


if __name__ == "__main__":
    main()
