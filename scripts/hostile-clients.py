#!/usr/bin/env python3
"""The well-behaved client's delivery latency with and without hostile clients, in one run.

Starts one broker, runs the well-behaved confluent-kafka client alone, then again with every
hostile client of tests/compat/hostile_clients.py (garbage, truncated frames, 2 GiB prefixes,
unknown APIs, Metadata naming 100,000 topics with and without auto-create, a Fetch naming 100,000
partitions, unbounded Fetch sizes, slowloris, 1,500 idle connections from one address), and
writes the p50/p99/max, the broker's peak RSS and the hostile request counts as JSON.

    python scripts/hostile-clients.py --ringtail target/release/ringtail --out results/hostile/run.json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "compat"))
import hostile_clients as hc  # noqa: E402

BROKER_FLAGS = ["--shards", "2", "--flush", "every_batch", "--frame-read-timeout-ms", "2000",
                "--connections-max-idle-ms", "10000", "--max-connections-per-ip", "1000",
                "--frame-bytes-max", "8388608", "--queued-max-request-bytes", "67108864",
                "--fetch-max-bytes", "1048576", "--auto-create-topics-per-request-max", "20",
                "--topics-max", "200"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def create_topic(bootstrap: str) -> str:
    from confluent_kafka.admin import AdminClient, NewTopic
    topic = f"wb-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=1)])[topic].result(timeout=20)
    return topic


def summarize(result: dict, peak_rss: int) -> dict:
    lat = result["latencies_ms"]
    return {"delivered": result["delivered"], "consumed": result["consumed"], "errors": result["errors"][:10],
            "p50_ms": round(hc.percentile(lat, 50), 2), "p99_ms": round(hc.percentile(lat, 99), 2),
            "max_ms": round(max(lat), 2) if lat else None, "peak_rss_mib": round(peak_rss / 2**20, 1)}


def run(ringtail: str, messages: int, only: list[str] | None = None) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(max(soft, 8192), hard), hard))
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen([ringtail, "--listen", f"127.0.0.1:{port}", "--data-dir", data, *BROKER_FLAGS],
                                  stderr=subprocess.DEVNULL)
        try:
            bootstrap = f"127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            report = {"messages": messages, "broker_flags": BROKER_FLAGS, "host": platform.node(),
                      "cpus": __import__("os").cpu_count()}
            for phase in ("alone", "with_hostile_clients"):
                topic = create_topic(bootstrap)
                stop, stats = threading.Event(), hc.HostileStats()
                threads, crowd = [], []
                if phase == "with_hostile_clients":
                    threads = hc.start_hostile(port, stop, stats, topic, only=only)
                    if not only or "idle_crowd" in only:
                        crowd = hc.open_idle_connections(port, "127.0.0.2", 1500)
                peak = [0]

                def watch():
                    while not stop.is_set():
                        peak[0] = max(peak[0], hc.rss_bytes(broker.pid))
                        time.sleep(0.2)
                watcher = threading.Thread(target=watch, daemon=True)
                watcher.start()
                result = hc.well_behaved(bootstrap, topic, messages, 120)
                stop.set()
                for t in threads + [watcher]:
                    t.join(timeout=30)
                for s in crowd:
                    s.close()
                report[phase] = summarize(result, peak[0])
                if threads:
                    report[phase]["hostile_requests"] = dict(stats.counts)
            return report
        finally:
            broker.terminate()
            broker.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ringtail", default="target/release/ringtail")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--out", default="results/hostile/run.json")
    parser.add_argument("--only", action="append",
                        help="run only this hostile kind (repeatable; idle_crowd for the idle connections)")
    args = parser.parse_args()
    report = run(args.ringtail, args.messages, args.only)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: v for k, v in report.items() if k in ("alone", "with_hostile_clients")}, indent=2))


if __name__ == "__main__":
    main()
