"""Every hostile client at once, beside a well-behaved producer and consumer, and the memory bound.

Used by test_hostile_all_at_once.py (the CI short form: asserts nothing is lost and the broker's
peak RSS stays under `rss_bound_bytes`) and by scripts/hostile-clients.py (the long form, which
also reports the well-behaved client's p99 with and without the hostile clients).

The hostile clients and the crowd of idle connections run in a child process (this file run as a
script): in the measuring process their Python threads would take the GIL the measured client
needs, and its latency would measure the harness. The child stops when its stdin closes and
prints what it did as one JSON line.

# The memory bound

The broker's resident memory is bounded by its limits, not by what clients send:

    rss_bound = BASE_RSS_BYTES
              + CONNECTION_RSS_BYTES * max_connections
              + REQUEST_AMPLIFICATION * (queued_max_request_bytes + frame_bytes_max)

- BASE_RSS_BYTES: the binary, each shard's runtime and io_uring, the registry, the metrics,
  the allocator's slack (an idle broker measures 8-20 MiB).
- CONNECTION_RSS_BYTES: what an open connection holds in user space while idle (two tasks, a
  bounded channel, its state; socket and pipe buffers are kernel memory, not RSS). Measured
  about 2-6 KiB on 10,000 idle connections; 32 KiB allows for allocator fragmentation.
- REQUEST_AMPLIFICATION: request bytes in memory are bounded by --queued-max-request-bytes; a
  request's handler also holds its decoded form and builds its response before the bytes are
  given back. The worst case is Metadata naming many short unknown topics: per name, the frame
  holds ~40 bytes, the decoded request ~64 (the name stays a slice of the frame), the response
  ~96 decoded and ~50 encoded, so about 5x; 6 allows for allocator slack. Frames are charged
  as their bytes arrive, and when frames still being read hold the whole budget one of them may
  go over it (limits.rs, the overdraft): so the budget plus one largest frame.

Not inside the bound: responses a client never reads (the writer holds up to 16 per connection,
each up to a Fetch of --fetch-max-bytes spliced from files, or an encoded Metadata answer); the
hostile clients here read what they are sent, as docs/RELIABILITY.md says.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

BASE_RSS_BYTES = 64 * 1024 * 1024
CONNECTION_RSS_BYTES = 32 * 1024
REQUEST_AMPLIFICATION = 6

# The crowd comes from these addresses (all of 127/8 is loopback), CROWD_PER_IP_EXTRA over the
# per-IP limit from each: those are the per-IP refusals. 127.0.0.1 (the well-behaved client) and
# 127.0.0.2-7 (hostile_clients.py's kinds) are not used.
CROWD_FIRST_IP = 10


def rss_bound_bytes(max_connections: int, queued_max_request_bytes: int, frame_bytes_max: int) -> int:
    """The broker's peak RSS allowed under the given limits (see the module doc)."""
    return (BASE_RSS_BYTES + CONNECTION_RSS_BYTES * max_connections
            + REQUEST_AMPLIFICATION * (queued_max_request_bytes + frame_bytes_max))


def memory_bytes(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set over the process's life) and VmRSS, in bytes."""
    out = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            key = line.split(":", 1)[0]
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(line.split()[1]) * 1024
    return out


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def raise_open_files(want: int) -> int:
    """Raises this process's RLIMIT_NOFILE (inherited by the broker it starts) towards `want`.

    Root may raise the hard limit up to fs.nr_open; others up to their hard limit. Returns the
    soft limit now in force: the caller sizes its crowd from it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < want:
        try:
            nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, min(want, nr_open)))
        except (OSError, ValueError):
            pass  # not privileged: stay within the hard limit
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def crowd_size_for(open_files: int, wanted: int) -> int:
    """Idle connections this machine allows: each costs the child one fd and the broker one (its
    socket), plus room for the broker's files and the clients' own sockets."""
    return max(0, min(wanted, open_files - 2048))


class HostileProcess:
    """The hostile clients and the idle crowd, in a child process until `stop()`."""

    def __init__(self, port: int, topic: str, crowd: int, per_ip_max: int, metadata_names: int = 100_000,
                 only: list[str] | None = None):
        script = Path(__file__).resolve()
        kinds = [arg for kind in only or [] for arg in ("--only", kind)]
        self.proc = subprocess.Popen(
            [sys.executable, str(script), "--port", str(port), "--topic", topic, "--crowd", str(crowd),
             "--per-ip-max", str(per_ip_max), "--metadata-names", str(metadata_names), *kinds],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline()
        if not ready.startswith("{"):
            raise RuntimeError(f"hostile process failed to start: {ready!r}")
        self.crowd_report = json.loads(ready)

    def stop(self) -> dict:
        """Stops every hostile client, closes the crowd, and returns the counts."""
        self.proc.stdin.close()
        line = self.proc.stdout.readline()
        self.proc.wait(timeout=120)
        return {**self.crowd_report, **json.loads(line)} if line.startswith("{") else {
            **self.crowd_report, "error": f"no report (exit {self.proc.returncode})"}


def streaming_well_behaved(bootstrap: str, topic: str, messages: int, rate_per_s: float,
                           deadline_s: float) -> dict:
    """A confluent-kafka producer (acks=all, idempotent) at a steady rate and a consumer reading
    at the same time; every key 0..messages-1 must be delivered and read back.

    Returns counts, client errors, delivery latencies in ms and the keys never read."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    errors: list[str] = []
    latencies_ms: list[float] = []
    conf = {"bootstrap.servers": bootstrap, "socket.connection.setup.timeout.ms": 5000}
    producer = Producer({**conf, "acks": "all", "enable.idempotence": True, "linger.ms": 5,
                         "message.timeout.ms": int(deadline_s * 1000),
                         "error_cb": lambda e: errors.append(f"producer: {e}")})
    consumer = Consumer({**conf, "group.id": f"wb-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False,
                         "error_cb": lambda e: errors.append(f"consumer: {e}")})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen: set[int] = set()
    deadline = time.monotonic() + deadline_s
    done_producing = threading.Event()

    def consume():
        while (len(seen) < messages or not done_producing.is_set()) and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is not None:
                    errors.append(f"consume: {msg.error()}")
                else:
                    seen.add(int(msg.key()))
    reader = threading.Thread(target=consume, name="wb-consumer")
    reader.start()

    def on_delivery(sent_at):
        def report(err, _msg):
            if err is not None:
                errors.append(f"delivery: {err}")
            else:
                latencies_ms.append((time.monotonic() - sent_at) * 1000)
        return report

    started = time.monotonic()
    for i in range(messages):
        # Open loop at `rate_per_s`: latency measures the broker, not a burst in the client's queue.
        due = started + i / rate_per_s
        while (now := time.monotonic()) < due:
            producer.poll(min(0.01, due - now))
        producer.produce(topic, key=str(i).encode(), value=b"v" * 100, on_delivery=on_delivery(time.monotonic()))
    producer.flush(max(1.0, deadline - time.monotonic()))
    done_producing.set()
    reader.join()
    consumer.close()
    missing = sorted(set(range(messages)) - seen)
    return {"delivered": len(latencies_ms), "consumed": len(seen), "missing": missing[:20],
            "errors": errors, "latencies_ms": latencies_ms}


def _crowd(port: int, count: int, per_ip_max: int) -> tuple[list, int]:
    """`count` idle connections spread over 127.0.0.10 and up, `per_ip_max` + 10% per address.

    Returns the sockets and how many connects failed outright (never, while fds last)."""
    from hostile_clients import connect
    socks, failed = [], 0
    per_ip = per_ip_max + max(1, per_ip_max // 10)
    for i in range(count):
        ip = f"127.0.0.{CROWD_FIRST_IP + i // per_ip}"
        try:
            socks.append(connect(port, ip))
        except OSError:
            failed += 1
    return socks, failed


def _main() -> None:
    import argparse

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from hostile_clients import HostileStats, closed_by_peer, start_hostile

    parser = argparse.ArgumentParser(description="hostile clients until stdin closes")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--crowd", type=int, default=0)
    parser.add_argument("--per-ip-max", type=int, default=1000)
    parser.add_argument("--metadata-names", type=int, default=100_000)
    parser.add_argument("--only", action="append", help="run only this hostile kind (repeatable)")
    args = parser.parse_args()
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)
    stop, stats = threading.Event(), HostileStats()
    threads = start_hostile(args.port, stop, stats, args.topic, metadata_names=args.metadata_names,
                            only=args.only)
    crowd, failed = _crowd(args.port, args.crowd, args.per_ip_max)
    time.sleep(1.0)
    refused_socks = [s for s in crowd if closed_by_peer(s)]
    refused = len(refused_socks)
    for s in refused_socks:  # their fds are better spent on the hostile clients
        s.close()
    crowd = [s for s in crowd if s.fileno() != -1]
    print(json.dumps({"crowd_attempted": args.crowd, "crowd_connect_failed": failed,
                      "crowd_refused": refused, "crowd_held": len(crowd)}), flush=True)
    sys.stdin.read()
    stop.set()
    for t in threads:
        t.join(timeout=60)
    still_open = sum(not closed_by_peer(s) for s in crowd)
    for s in crowd:
        s.close()
    print(json.dumps({"hostile_requests": dict(stats.counts), "crowd_still_open_at_end": still_open}), flush=True)


if __name__ == "__main__":
    _main()
