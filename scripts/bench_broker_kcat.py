#!/usr/bin/env python3
"""First broker throughput figure: kcat (librdkafka) producing and consuming 1 KB messages
against a real `ringtail`, beside a baseline measured in the same run on the same machine: the
same bytes sent over one loopback TCP connection by a plain socket pair (the network path's
ceiling). Reports medians of several rounds, MB/s (10^6 bytes), and the broker's CPU seconds per
round read from /proc.

Usage: python3 scripts/bench_broker_kcat.py [--messages N] [--rounds R] [--out results/broker-kcat]
Needs: kcat on PATH, a release build (`cargo build --release -p ringtail-server`).
"""

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROKER = ROOT / "target" / "release" / "ringtail"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def start_broker(data_dir, port, flush):
    proc = subprocess.Popen(
        [str(BROKER), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir), "--shards", "2", "--flush", flush],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("broker did not start")


def kcat(port, *args, stdin=None):
    cmd = ["kcat", "-b", f"127.0.0.1:{port}", "-q", *args]
    started = time.perf_counter()
    subprocess.run(cmd, stdin=stdin, stdout=subprocess.DEVNULL, check=True, timeout=600)
    return time.perf_counter() - started


def loopback_baseline(payload_path):
    """Seconds to push the file's bytes through one loopback TCP connection and read them."""
    data = payload_path.read_bytes()
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received = [0]

    def sink():
        conn, _ = server.accept()
        buf = bytearray(1 << 20)
        while True:
            count = conn.recv_into(buf)
            if not count:
                break
            received[0] += count
        conn.close()

    thread = threading.Thread(target=sink)
    thread.start()
    started = time.perf_counter()
    client = socket.create_connection(server.getsockname())
    client.sendall(data)
    client.close()
    thread.join()
    elapsed = time.perf_counter() - started
    server.close()
    assert received[0] == len(data)
    return elapsed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=300_000)
    parser.add_argument("--message-bytes", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--flush", default="none")
    parser.add_argument("--out", default=str(ROOT / "results" / "broker-kcat"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ringtail-bench-", dir=ROOT / "target"))
    payload = scratch / "messages.txt"
    line = b"x" * (args.message_bytes - 1) + b"\n"  # kcat splits on newlines: 1000 bytes per message
    with payload.open("wb") as handle:
        for _ in range(args.messages):
            handle.write(line)
    total_bytes = args.messages * (args.message_bytes - 1)
    rows = []
    for round_index in range(args.rounds):
        port = free_port()
        broker = start_broker(scratch / f"data-{round_index}", port, args.flush)
        try:
            topic = f"bench-{round_index}"
            subprocess.run(["kcat", "-b", f"127.0.0.1:{port}", "-L", "-t", topic], stdout=subprocess.DEVNULL, check=True, timeout=30)
            cpu_before = cpu_seconds(broker.pid)
            with payload.open("rb") as stdin:
                produce_s = kcat(port, "-P", "-t", topic, "-p", "0", "-X", "linger.ms=5", "-X", "batch.size=1000000",
                                 "-X", "queue.buffering.max.kbytes=1048576", "-X", "acks=all", stdin=stdin)
            cpu_mid = cpu_seconds(broker.pid)
            consume_s = kcat(port, "-C", "-t", topic, "-p", "0", "-o", "beginning", "-e", "-X", "fetch.max.bytes=52428800",
                             "-X", "max.partition.fetch.bytes=10485760")
            cpu_after = cpu_seconds(broker.pid)
        finally:
            broker.terminate()
            broker.wait(timeout=30)
        baseline_s = loopback_baseline(payload)
        rows.append({
            "round": round_index,
            "produce_mb_per_s": total_bytes / produce_s / 1e6,
            "consume_mb_per_s": total_bytes / consume_s / 1e6,
            "loopback_baseline_mb_per_s": total_bytes / baseline_s / 1e6,
            "broker_cpu_s_produce": cpu_mid - cpu_before,
            "broker_cpu_s_consume": cpu_after - cpu_mid,
        })
        print(json.dumps(rows[-1]), flush=True)
    median = {key: statistics.median(row[key] for row in rows) for key in rows[0] if key != "round"}
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    version_lines = subprocess.run(["kcat", "-V"], capture_output=True, text=True).stdout.splitlines()
    version_line = next((line for line in version_lines if line.startswith("Version")), "")
    kcat_version = "kcat " + " ".join(version_line.split()[1:2]) + ", librdkafka " + (version_line.split("librdkafka ")[1].split()[0] if "librdkafka " in version_line else "?")
    report = {
        "command": "python3 scripts/bench_broker_kcat.py " + " ".join(sys.argv[1:]),
        "commit": commit,
        "machine": {"nproc": os.cpu_count(), "kernel": platform.release(), "kcat": kcat_version},
        "config": vars(args),
        "rounds": rows,
        "median": median,
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    mb = total_bytes / 1e6
    lines = [
        "# Broker throughput with kcat (first figure)",
        "",
        f"- command: `{report['command']}`",
        f"- commit: {commit}; {os.cpu_count()} cores, Linux {platform.release()}; {kcat_version}",
        f"- workload: {args.messages} messages of {args.message_bytes} bytes ({mb:.0f} MB), one partition, "
        f"broker `--shards 2 --flush {args.flush}`, producer acks=all linger 5 ms batch 1 MB, "
        "then one consumer from the beginning; broker, kcat and baseline share the 2 cores",
        f"- baseline, same run: the same bytes through one loopback TCP connection (plain sockets)",
        "",
        "| median of rounds | MB/s | vs loopback baseline | broker CPU s per round | MB per broker CPU-second |",
        "|---|---:|---:|---:|---:|",
        f"| produce (kcat -P) | {median['produce_mb_per_s']:.0f} | {median['produce_mb_per_s'] / median['loopback_baseline_mb_per_s']:.2f}x | "
        f"{median['broker_cpu_s_produce']:.2f} | {mb / max(median['broker_cpu_s_produce'], 1e-9):.0f} |",
        f"| consume (kcat -C) | {median['consume_mb_per_s']:.0f} | {median['consume_mb_per_s'] / median['loopback_baseline_mb_per_s']:.2f}x | "
        f"{median['broker_cpu_s_consume']:.2f} | {mb / max(median['broker_cpu_s_consume'], 1e-9):.0f} |",
        f"| loopback baseline | {median['loopback_baseline_mb_per_s']:.0f} | 1.00x | | |",
        "",
        "kcat is a single librdkafka client printing nothing (`-q`); its own CPU (parsing lines, "
        "building batches, checking CRCs on consume) is on the same 2 cores, so these are client-bound "
        "figures, not the broker's limit. The load generator issue measures the broker properly.",
    ]
    (out / "README.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
