"""Hostile clients for the broker's network edge, and the well-behaved client measured beside them.

Used by test_hostile.py (asserts bounds and that the well-behaved client loses nothing) and by
scripts/hostile-clients.py (reports the well-behaved client's p99 with and without them).

Hostile clients connect from 127.0.0.2 and up (all of 127/8 is loopback on Linux), so the
per-IP connection limit they run into never applies to the well-behaved client on 127.0.0.1.
"""

from __future__ import annotations

import os
import random
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass, field


def frame(api_key: int, version: int, body: bytes, correlation_id: int = 1, client_id: bytes = b"hostile") -> bytes:
    """A request frame with a v1 header (api key, version, correlation id, client id)."""
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    payload = header + body
    return struct.pack(">i", len(payload)) + payload


def kstr(text: str) -> bytes:
    raw = text.encode()
    return struct.pack(">h", len(raw)) + raw


def metadata_v4(names: list[str], auto_create: bool) -> bytes:
    """Metadata v4 naming `names`, asking (or not) for auto-creation."""
    body = struct.pack(">i", len(names)) + b"".join(kstr(n) for n in names) + bytes([1 if auto_create else 0])
    return frame(3, 4, body)


def fetch_v4(topic: str, partitions: list[int], max_bytes: int, partition_max_bytes: int = 1 << 20) -> bytes:
    """Fetch v4 from offset 0 of each partition; `max_bytes` may be 0 or negative on purpose."""
    parts = b"".join(struct.pack(">iqi", p, 0, partition_max_bytes) for p in partitions)
    body = struct.pack(">iiiib", -1, 100, 1, max_bytes, 0) + struct.pack(">i", 1) + kstr(topic)
    body += struct.pack(">i", len(partitions)) + parts
    return frame(1, 4, body)


def connect(port: int, source_ip: str, timeout_s: float = 10.0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((source_ip, 0))
    sock.settimeout(timeout_s)
    sock.connect(("127.0.0.1", port))
    return sock


def read_response(sock: socket.socket) -> bytes:
    """One response frame's body, or b'' if the broker closed the connection."""
    def exactly(n: int) -> bytes:
        out = b""
        while len(out) < n:
            chunk = sock.recv(n - len(out))
            if not chunk:
                return b""
            out += chunk
        return out
    size = exactly(4)
    if not size:
        return b""
    return exactly(struct.unpack(">i", size)[0])


def closed_by_peer(sock: socket.socket) -> bool:
    """True if the broker has closed this connection (EOF or reset), without waiting."""
    timeout = sock.gettimeout()
    sock.setblocking(False)
    try:
        return sock.recv(1) == b""
    except BlockingIOError:
        return False
    except (ConnectionResetError, BrokenPipeError):
        return True
    finally:
        sock.settimeout(timeout)


def wait_closed(sock: socket.socket, timeout_s: float) -> bool:
    """True once the broker closes the connection, False if it is still open after timeout_s."""
    sock.settimeout(timeout_s)
    try:
        while True:
            if sock.recv(65536) == b"":
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except (socket.timeout, TimeoutError):
        return False


@dataclass
class HostileStats:
    """What the hostile threads did, for the report."""
    counts: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, what: str, n: int = 1):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + n


def _loop(stop: threading.Event, stats: HostileStats, name: str, body):
    """Runs `body()` until stopped; connection errors are what a hostile client expects."""
    while not stop.is_set():
        try:
            body()
            stats.add(name)
        except OSError:
            stats.add(name + "_refused")
            time.sleep(0.05)


def start_hostile(port: int, stop: threading.Event, stats: HostileStats, topic: str,
                  metadata_names: int = 100_000, only: list[str] | None = None) -> list[threading.Thread]:
    """Starts one thread per kind of hostile client, each looping until `stop` is set."""
    rng = random.Random(14)

    def garbage():
        with connect(port, "127.0.0.4") as s:
            s.sendall(os.urandom(rng.randint(1, 4096)))
            read_response(s)

    def truncated():
        with connect(port, "127.0.0.4") as s:
            s.sendall(struct.pack(">i", 1000) + os.urandom(100))

    def huge_prefix():
        with connect(port, "127.0.0.4") as s:
            s.sendall(struct.pack(">I", 0x7FFF_FFFF) + b"x" * 64)
            read_response(s)
            s.sendall(b"")

    def negative_prefix():
        with connect(port, "127.0.0.4") as s:
            s.sendall(struct.pack(">i", -5) + b"x" * 8)
            read_response(s)

    def unknown_api():
        with connect(port, "127.0.0.4") as s:
            s.sendall(frame(9999, 0, b""))
            read_response(s)
        with connect(port, "127.0.0.4") as s:
            s.sendall(frame(0, 99, b"\x00" * 16))
            read_response(s)

    # Built once: generating 100,000 names per request would make these Python threads hold the
    # GIL the well-behaved client (same process) needs, and measure the test, not the broker.
    unknown_request = metadata_v4([f"nope-{uuid.uuid4().hex}" for _ in range(metadata_names)], auto_create=False)
    flood_round = iter(range(1 << 62))

    def unknown_topics():
        # Many names, no auto-create: every one answered UNKNOWN_TOPIC_OR_PARTITION.
        with connect(port, "127.0.0.5", timeout_s=60) as s:
            s.sendall(unknown_request)
            if not read_response(s):
                raise ConnectionResetError("metadata answer missing")

    def auto_create_flood():
        # Many names with auto-create: bounded per request, per second, in total.
        round_ = next(flood_round)
        names = [f"flood-{round_}-{i}" for i in range(metadata_names)]
        with connect(port, "127.0.0.5", timeout_s=60) as s:
            s.sendall(metadata_v4(names, auto_create=True))
            if not read_response(s):
                raise ConnectionResetError("metadata answer missing")

    def many_partitions_and_unbounded_fetch():
        with connect(port, "127.0.0.6", timeout_s=60) as s:
            s.sendall(fetch_v4(topic, list(range(100_000)), max_bytes=0))
            if not read_response(s):
                raise ConnectionResetError("fetch answer missing")
            s.sendall(fetch_v4(topic, [0], max_bytes=0x7FFF_FFFF, partition_max_bytes=0x7FFF_FFFF))
            if not read_response(s):
                raise ConnectionResetError("fetch answer missing")

    def slowloris():
        with connect(port, "127.0.0.7", timeout_s=60) as s:
            s.sendall(struct.pack(">i", 100) + b"\x00")
            while not stop.is_set():
                time.sleep(0.5)
                s.sendall(b"\x00")

    kinds = {
        "garbage": garbage, "truncated": truncated, "huge_prefix": huge_prefix,
        "negative_prefix": negative_prefix, "unknown_api": unknown_api, "unknown_topics": unknown_topics,
        "auto_create_flood": auto_create_flood, "fetch_100000_partitions": many_partitions_and_unbounded_fetch,
        "slowloris": slowloris,
    }
    threads = [threading.Thread(target=_loop, args=(stop, stats, name, body), daemon=True, name=name)
               for name, body in kinds.items() if not only or name in only]
    for t in threads:
        t.start()
    return threads


def open_idle_connections(port: int, source_ip: str, count: int) -> list[socket.socket]:
    """`count` connections that send nothing (refused ones included: the caller checks which)."""
    socks = []
    for _ in range(count):
        try:
            socks.append(connect(port, source_ip))
        except OSError:
            break
    return socks


def well_behaved(bootstrap: str, topic: str, messages: int, deadline_s: float) -> dict:
    """Produces `messages` with acks=all and reads them all back with confluent-kafka.

    Returns delivered and consumed counts, client errors, and delivery latencies in ms."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    errors: list[str] = []
    latencies_ms: list[float] = []
    conf = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 5000}
    producer = Producer({**conf, "acks": "all", "linger.ms": 5, "message.timeout.ms": int(deadline_s * 1000),
                         "error_cb": lambda e: errors.append(f"producer: {e}")})
    value = b"v" * 100

    def on_delivery(sent_at):
        def report(err, _msg):
            if err is not None:
                errors.append(f"delivery: {err}")
            else:
                latencies_ms.append((time.monotonic() - sent_at) * 1000)
        return report

    deadline = time.monotonic() + deadline_s
    for i in range(messages):
        # A steady rate (not a burst) so latency measures the broker, not the client's queue.
        if i % 100 == 0:
            producer.poll(0.01)
        while True:
            try:
                producer.produce(topic, key=str(i).encode(), value=value, on_delivery=on_delivery(time.monotonic()))
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(max(1.0, deadline - time.monotonic()))
    consumer = Consumer({**conf, "group.id": f"wb-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "error_cb": lambda e: errors.append(f"consumer: {e}")})
    consumer.assign([TopicPartition(topic, 0, 0)])
    consumed = 0
    while consumed < messages and time.monotonic() < deadline:
        for msg in consumer.consume(1000, timeout=1.0):
            if msg.error() is not None:
                errors.append(f"consume: {msg.error()}")
            else:
                consumed += 1
    consumer.close()
    return {"delivered": len(latencies_ms), "consumed": consumed, "errors": errors, "latencies_ms": latencies_ms}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]
