#!/usr/bin/env python3
"""Every hostile client at once beside a well-behaved producer and consumer: the long form of
tests/compat/test_hostile_all_at_once.py, with the well-behaved client's latency reported.

Starts one broker; runs the well-behaved confluent-kafka client (an idempotent acks=all producer
at a steady rate and a consumer reading at the same time) alone, then again while every hostile
client of tests/compat/hostile_clients.py loops in another process (garbage, truncated frames,
2 GiB and negative length prefixes, unknown API keys and versions, Metadata naming 100,000
unknown topics with and without auto-create, a Fetch naming 100,000 partitions with max_bytes=0
and one with max_bytes=i32::MAX, slowloris frames) beside a crowd of idle connections (10,000 by
default, as many as the fd limit allows, from 127.0.0.10 and up, 10% over the per-IP limit).
Writes p50/p99/max of delivery, the broker's peak RSS (VmHWM) beside the bound
tests/compat/hostile_all.py derives from the flags, the crowd's and the hostile kinds' counts,
and the command, as JSON. Nothing is asserted here; the exit status is 1 if a record was lost.

    python scripts/hostile-clients.py --ringtail target/release/ringtail --out results/hostile/all-at-once.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "compat"))
import hostile_all as ha  # noqa: E402
import hostile_clients as hc  # noqa: E402

PER_IP_MAX = 1000
QUEUED_MAX_REQUEST_BYTES = 64 * 1024 * 1024
FRAME_BYTES_MAX = 8 * 1024 * 1024


def broker_flags(max_connections: int) -> list[str]:
    return ["--shards", "2", "--flush", "every_batch", "--frame-read-timeout-ms", "2000",
            "--connections-max-idle-ms", "600000", "--max-connections", str(max_connections),
            "--max-connections-per-ip", str(PER_IP_MAX), "--frame-bytes-max", str(FRAME_BYTES_MAX),
            "--queued-max-request-bytes", str(QUEUED_MAX_REQUEST_BYTES), "--fetch-max-bytes", "1048576",
            "--auto-create-topics-per-request-max", "20", "--topics-max", "200"]


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


def summarize(result: dict) -> dict:
    lat = result["latencies_ms"]
    return {"delivered": result["delivered"], "consumed": result["consumed"], "missing": result["missing"],
            "errors": result["errors"][:10], "p50_ms": round(hc.percentile(lat, 50), 2),
            "p99_ms": round(hc.percentile(lat, 99), 2), "max_ms": round(max(lat), 2) if lat else None}


def run(args) -> dict:
    open_files = ha.raise_open_files(2 * args.connections + 4096)
    crowd = ha.crowd_size_for(open_files, args.connections)
    max_connections = crowd + 300
    flags = broker_flags(max_connections)
    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        broker = subprocess.Popen([args.ringtail, "--listen", f"127.0.0.1:{port}", "--data-dir", data, *flags],
                                  stderr=subprocess.DEVNULL)
        try:
            bootstrap = f"127.0.0.1:{port}"
            for _ in range(100):
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.1)
            report = {"command": " ".join(["scripts/hostile-clients.py", *sys.argv[1:]]),
                      "messages": args.messages, "rate_per_s": args.rate, "broker_flags": flags,
                      "open_files_limit": open_files, "crowd_wanted": args.connections, "host": platform.node(),
                      "cpus": os.cpu_count(), "loadavg_start": os.getloadavg()}
            deadline_s = args.messages / args.rate + 120
            topics = [create_topic(bootstrap) for _ in range(2)]
            report["alone"] = summarize(ha.streaming_well_behaved(bootstrap, topics[0], args.messages, args.rate,
                                                                  deadline_s))
            attempts = crowd + crowd // 10
            hostile = ha.HostileProcess(port, topics[1], crowd=attempts, per_ip_max=PER_IP_MAX, only=args.only)
            report["broker_fds_with_crowd"] = ha.open_fds(broker.pid)
            try:
                result = ha.streaming_well_behaved(bootstrap, topics[1], args.messages, args.rate, deadline_s)
            finally:
                report["hostile"] = hostile.stop()
            report["with_hostile_clients"] = summarize(result)
            memory = ha.memory_bytes(broker.pid)
            report["broker_peak_rss_mib"] = round(memory["VmHWM"] / 2**20, 1)
            report["rss_bound_mib"] = round(ha.rss_bound_bytes(max_connections, QUEUED_MAX_REQUEST_BYTES, FRAME_BYTES_MAX) / 2**20)
            report["loadavg_end"] = os.getloadavg()
            return report
        finally:
            broker.terminate()
            broker.wait(timeout=60)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ringtail", default="target/release/ringtail")
    parser.add_argument("--messages", type=int, default=30_000)
    parser.add_argument("--rate", type=float, default=500, help="well-behaved messages per second")
    parser.add_argument("--connections", type=int, default=10_000, help="idle connections wanted")
    parser.add_argument("--out", default="results/hostile/all-at-once.json")
    parser.add_argument("--only", action="append", help="run only this hostile kind (repeatable)")
    args = parser.parse_args()
    report = run(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps({k: report[k] for k in ("alone", "with_hostile_clients", "broker_peak_rss_mib",
                                              "rss_bound_mib", "broker_fds_with_crowd")}, indent=2))
    lost = any(report[k]["consumed"] < args.messages or report[k]["errors"]
               for k in ("alone", "with_hostile_clients"))
    sys.exit(1 if lost else 0)


if __name__ == "__main__":
    main()
