#!/usr/bin/env python3
"""Ringtail and Apache Kafka measured with Kafka's own benchmark tools, in one run.

kafka-producer-perf-test (org.apache.kafka.tools.ProducerPerformance) writes N records of 1 KiB
flat out, then kafka-consumer-perf-test (org.apache.kafka.tools.ConsumerPerformance) reads them
back, against each broker in turn: `ringtail` (release build) and Kafka (scripts/kafka-peer.sh,
1 GiB heap, config/kafka/server.properties). Each round starts each broker fresh on an empty data
dir; the brokers' order alternates between rounds. Reported: medians over the rounds of MB/s
(10^6 bytes, recomputed from records and seconds), the tool's own latency figures, and each
broker's CPU seconds (utime + stime from /proc) during the produce and the consume phase.

Usage: python3 scripts/bench_kafka_tools.py [--records N] [--rounds R] [--partitions P]
       [--acks 1] [--out results/kafka-tools]
Needs: cargo build --release -p ringtail-server; bash scripts/kafka-peer.sh fetch (done if missing).
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RINGTAIL = ROOT / "target" / "release" / "ringtail"
KAFKA_PEER = ROOT / "scripts" / "kafka-peer.sh"
RECORD_BYTES = 1024
READY_TIMEOUT_S = 90
TOOL_TIMEOUT_S = 600


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid):
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tool(main_class, *args):
    """Runs a Kafka tool by main class (through kafka-peer.sh, on Kafka's own classpath)."""
    result = subprocess.run(["bash", str(KAFKA_PEER), "tool", main_class, *args],
                            capture_output=True, text=True, timeout=TOOL_TIMEOUT_S)
    if result.returncode != 0:
        sys.exit(f"{main_class} {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result.stdout


class Broker:
    def __init__(self, kind, work, log_dir):
        self.kind = kind
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix=f"{kind}-", dir=work))
        self.log = open(log_dir / f"broker-{kind}.log", "ab")
        listen = f"127.0.0.1:{self.port}"
        if kind == "ringtail":
            # Ringtail's defaults (as users run it): no flush policy or segment flags.
            cmd = [str(RINGTAIL), "--listen", listen, "--data-dir", str(self.data)]
        else:
            cmd = ["bash", str(KAFKA_PEER), "run", "--listen", listen, "--data-dir", str(self.data)]
        self.command = " ".join(cmd)
        self.log.write(f"== {self.command}\n".encode())
        self.log.flush()
        # kafka-peer.sh execs the JVM, so this pid is the broker's for the CPU figures.
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                sys.exit(f"{kind} exited early ({self.proc.returncode}); see {self.log.name}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    sys.exit(f"{kind} not listening within {READY_TIMEOUT_S} s; see {self.log.name}")
                time.sleep(0.2)

    @property
    def bootstrap(self):
        return f"127.0.0.1:{self.port}"

    def cpu(self):
        return cpu_seconds(self.proc.pid)

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.data, ignore_errors=True)


PRODUCE_LINE = re.compile(
    r"(\d+) records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), ([\d.]+) ms avg latency, "
    r"([\d.]+) ms max latency, (\d+) ms 50th, (\d+) ms 95th, (\d+) ms 99th, (\d+) ms 99.9th")


def one_round(kind, args, work, out):
    broker = Broker(kind, work, out)
    try:
        topic = "perf"
        tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.bootstrap, "--create",
             "--topic", topic, "--partitions", str(args.partitions), "--replication-factor", "1")
        cpu_0 = broker.cpu()
        started = time.monotonic()
        produced = tool("org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
                        "--num-records", str(args.records), "--record-size", str(RECORD_BYTES),
                        "--throughput", "-1", "--producer-props", f"bootstrap.servers={broker.bootstrap}",
                        f"acks={args.acks}")
        produce_wall_s = time.monotonic() - started
        cpu_1 = broker.cpu()
        consumed = tool("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server",
                        broker.bootstrap, "--topic", topic, "--messages", str(args.records),
                        "--timeout", "60000")
        cpu_2 = broker.cpu()
    finally:
        broker.stop()
    match = PRODUCE_LINE.findall(produced)
    if not match:
        sys.exit(f"no summary line in ProducerPerformance output:\n{produced}")
    sent, recs_per_s, _mib, avg_ms, max_ms, p50, p95, p99, p999 = match[-1]
    # ConsumerPerformance: a header line, then one CSV line of figures.
    lines = [line for line in consumed.splitlines() if line.strip()]
    header = [h.strip() for h in lines[-2].split(",")]
    values = [v.strip() for v in lines[-1].split(",")]
    consume = dict(zip(header, values))
    fetch_ms = float(consume["fetch.time.ms"])
    consumed_msgs = int(consume["data.consumed.in.nMsg"])
    return {
        "broker": kind,
        "command": broker.command,
        "produce_records": int(sent),
        "produce_mb_per_s": float(recs_per_s) * RECORD_BYTES / 1e6,
        "produce_latency_ms": {"avg": float(avg_ms), "p50": int(p50), "p95": int(p95), "p99": int(p99),
                               "p99.9": int(p999), "max": float(max_ms)},
        "produce_wall_s": produce_wall_s,
        "produce_broker_cpu_s": cpu_1 - cpu_0,
        "consume_records": consumed_msgs,
        # fetch.time.ms excludes the group join (rebalance.time.ms), as the tool's fetch.MB.sec does.
        "consume_mb_per_s": consumed_msgs * RECORD_BYTES / 1e6 / (fetch_ms / 1000),
        "consume_rebalance_ms": float(consume["rebalance.time.ms"]),
        "consume_broker_cpu_s": cpu_2 - cpu_1,
        "raw_produce": produced.strip().splitlines()[-1],
        "raw_consume": "\n".join(lines[-2:]),
    }


def kafka_version_and_commit():
    """What a report names: the pinned Kafka version and this checkout's commit."""
    version = subprocess.run(["bash", str(KAFKA_PEER), "version"], capture_output=True, text=True).stdout.strip()
    commit = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                            capture_output=True, text=True).stdout.strip()
    return version, commit


def alternate_rounds(rounds, out, work_prefix, run_one):
    """Runs `run_one(kind, work_dir)` for ringtail and kafka in each of `rounds` rounds, the order
    alternating between rounds (so neither always runs on a machine warmed by the other); returns
    the runs, each a dict with its "round" and "broker". Checks the binaries first and empties old
    broker logs from `out`."""
    if not RINGTAIL.exists():
        sys.exit(f"no {RINGTAIL}: cargo build --release -p ringtail-server")
    subprocess.run(["bash", str(KAFKA_PEER), "fetch"], check=True, stdout=subprocess.DEVNULL)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("broker-*.log"):
        old.unlink()
    work = Path(tempfile.mkdtemp(prefix=work_prefix, dir="/var/tmp"))
    runs = []
    try:
        for round_index in range(rounds):
            for kind in ["ringtail", "kafka"] if round_index % 2 == 0 else ["kafka", "ringtail"]:
                runs.append({"round": round_index, "broker": kind, **run_one(kind, work)})
                print(f"round {round_index} {kind} done", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return runs


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--acks", default="1")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "kafka-tools")
    args = parser.parse_args()
    runs = alternate_rounds(args.rounds, args.out, "kafka-tools-", lambda kind, work: one_round(kind, args, work, args.out))
    for run in runs:
        print(f"round {run['round']} {run['broker']}: produce {run['produce_mb_per_s']:.0f} MB/s "
              f"(p99 {run['produce_latency_ms']['p99']} ms, broker {run['produce_broker_cpu_s']:.1f} CPU-s), "
              f"consume {run['consume_mb_per_s']:.0f} MB/s (broker {run['consume_broker_cpu_s']:.1f} CPU-s)")
    write_report(args, runs)


def write_report(args, runs):
    version, commit = kafka_version_and_commit()
    median = {}
    for kind in ("ringtail", "kafka"):
        mine = [r for r in runs if r["broker"] == kind]
        median[kind] = {key: statistics.median(r[key] for r in mine) for key in
                        ("produce_mb_per_s", "produce_broker_cpu_s", "consume_mb_per_s", "consume_broker_cpu_s")}
        median[kind]["produce_p99_ms"] = statistics.median(r["produce_latency_ms"]["p99"] for r in mine)
    (args.out / "runs.json").write_text(json.dumps({"runs": runs, "median": median}, indent=2) + "\n")
    r, k = median["ringtail"], median["kafka"]
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
    text = f"""# Ringtail and Apache Kafka under Kafka's own benchmark tools

Made by `python3 scripts/bench_kafka_tools.py --records {args.records} --rounds {args.rounds} --partitions {args.partitions} --acks {args.acks}`
({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, Apache Kafka {version} and its tools,
{os.cpu_count()} cores shared by broker and tool, {platform.node()}). Each round: a fresh broker, a topic of
{args.partitions} partitions made with kafka-topics, `kafka-producer-perf-test --num-records {args.records}
--record-size {RECORD_BYTES} --throughput -1 --producer-props acks={args.acks}` (the producer's other settings
at their defaults: no compression, linger 5 ms, 16 KiB batches; acks=1 turns idempotence off), then `kafka-consumer-perf-test
--messages {args.records}`. Brokers: `ringtail` with its defaults; Kafka as in `scripts/kafka-peer.sh`
(1 GiB heap, config/kafka/server.properties). MB = 10^6 bytes (the tools print MiB; recomputed
here from records and seconds); consume MB/s over the tool's fetch time (group join excluded).
Medians of {args.rounds} rounds, brokers alternating first.

| broker | produce MB/s | produce p99 ms | broker CPU-s producing | consume MB/s | broker CPU-s consuming |
|---|---:|---:|---:|---:|---:|
| ringtail | {r['produce_mb_per_s']:.0f} | {r['produce_p99_ms']:.0f} | {r['produce_broker_cpu_s']:.1f} | {r['consume_mb_per_s']:.0f} | {r['consume_broker_cpu_s']:.1f} |
| kafka | {k['produce_mb_per_s']:.0f} | {k['produce_p99_ms']:.0f} | {k['produce_broker_cpu_s']:.1f} | {k['consume_mb_per_s']:.0f} | {k['consume_broker_cpu_s']:.1f} |
| ringtail ÷ kafka | {ratio(r['produce_mb_per_s'], k['produce_mb_per_s'])} | {ratio(r['produce_p99_ms'], k['produce_p99_ms'])} | {ratio(r['produce_broker_cpu_s'], k['produce_broker_cpu_s'])} | {ratio(r['consume_mb_per_s'], k['consume_mb_per_s'])} | {ratio(r['consume_broker_cpu_s'], k['consume_broker_cpu_s'])} |

Every round (the tools' own summary lines are in `runs.json`; broker logs beside this file):

| round | broker | produce MB/s | p50 / p99 / max ms | broker CPU-s | consume MB/s | broker CPU-s |
|---:|---|---:|---|---:|---:|---:|
"""
    for run in runs:
        lat = run["produce_latency_ms"]
        text += (f"| {run['round']} | {run['broker']} | {run['produce_mb_per_s']:.0f} | {lat['p50']} / {lat['p99']} / "
                 f"{lat['max']:.0f} | {run['produce_broker_cpu_s']:.1f} | {run['consume_mb_per_s']:.0f} | "
                 f"{run['consume_broker_cpu_s']:.1f} |\n")
    (args.out / "README.md").write_text(text)
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
