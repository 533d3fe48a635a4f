#!/usr/bin/env python3
"""Produce latency at a fixed rate as two independent clients see it, Ringtail beside Kafka.

Issue 13 asks for the produce latency "also as an independent client sees it, so the gain is not a
loadgen artefact". Two clients that are not ours, against each broker in turn, in one run:

- Kafka's own `kafka-producer-perf-test` (the Java client) at `--throughput RATE`: its latency is
  send() to the acknowledgement callback, per record, over the whole run.
- confluent-kafka (librdkafka) paced in Python at RATE: per-record latency from produce() to the
  delivery report (`Message.latency()`), and librdkafka's own statistics (`stats_cb`): the broker
  round trip (`brokers.*.rtt`, request sent to response received, the broker's share without
  the client's queueing) and the client's internal queue latency (`int_latency`), each window's
  p50/p99 as librdkafka computes them.

Both clients run with linger.ms=0 and acks=1 (a latency setup, not a throughput one), 1 KiB
records over `--partitions` partitions. Each round starts each broker fresh on an empty data dir
and alternates their order; reported are medians over rounds and ringtail ÷ kafka ratios. The
machine is shared: read the ratios within a round, not absolute numbers across runs.

Usage: python3 scripts/bench_client_latency.py [--rate 50000] [--duration-s 20] [--warmup-s 5] [--rounds 3]
       [--partitions 8] [--out results/client-latency]
Needs: cargo build --release -p ringtail-server; scripts/kafka-peer.sh (fetched if missing);
confluent-kafka in the Python running this (the project's .venv has it).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kafka_tools import PRODUCE_LINE, ROOT, Broker, alternate_rounds, kafka_version_and_commit, tool  # noqa: E402

RECORD_BYTES = 1024
STATS_INTERVAL_MS = 1000
# Records handed to librdkafka per pacing step: small enough to keep the send times even.
PACING_BATCH_RECORDS = 50


def percentile(sorted_values, fraction):
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(fraction * len(sorted_values)))
    return sorted_values[index]


def java_perf_test(broker, args, topic):
    # The tool has no warm-up option (4.1): a first, discarded run of --warmup-s warms the broker
    # (Kafka's JIT above all); the measured run still includes the tool's own JVM warming up.
    for records in (args.rate * args.warmup_s, args.rate * args.duration_s):
        out = java_perf_test_once(broker, args, topic, records)
    return out


def java_perf_test_once(broker, args, topic, records):
    out = tool("org.apache.kafka.tools.ProducerPerformance", "--topic", topic,
               "--num-records", str(records), "--record-size", str(RECORD_BYTES),
               "--throughput", str(args.rate), "--producer-props",
               f"bootstrap.servers={broker.bootstrap}", "acks=1", "linger.ms=0")
    match = PRODUCE_LINE.findall(out)
    if not match:
        sys.exit(f"no summary line in ProducerPerformance output:\n{out}")
    sent, recs_per_s, _mib, avg_ms, max_ms, p50, p95, p99, p999 = match[-1]
    return {"records": int(sent), "records_per_s": float(recs_per_s), "avg_ms": float(avg_ms),
            "p50_ms": float(p50), "p95_ms": float(p95), "p99_ms": float(p99), "p99.9_ms": float(p999),
            "max_ms": float(max_ms), "raw": out.strip().splitlines()[-1]}


def librdkafka_paced(broker, args, topic):
    from confluent_kafka import Producer

    windows = []

    def on_stats(text):
        stats = json.loads(text)
        rtts = [b["rtt"] for b in stats.get("brokers", {}).values()
                if b.get("nodeid", -1) >= 0 and b["rtt"]["cnt"] > 0]
        lat = [b["int_latency"] for b in stats.get("brokers", {}).values()
               if b.get("nodeid", -1) >= 0 and b["int_latency"]["cnt"] > 0]
        if rtts:
            windows.append({"rtt_p50_us": max(r["p50"] for r in rtts), "rtt_p99_us": max(r["p99"] for r in rtts),
                            "int_latency_p99_us": max((x["p99"] for x in lat), default=0),
                            "requests": sum(r["cnt"] for r in rtts)})

    latencies_s = []
    errors = []

    measure_from_ms = [float("inf")]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        elif msg.timestamp()[1] >= measure_from_ms[0]:
            latencies_s.append(msg.latency())

    producer = Producer({"bootstrap.servers": broker.bootstrap, "acks": "1", "linger.ms": 0,
                         "statistics.interval.ms": STATS_INTERVAL_MS, "stats_cb": on_stats,
                         "enable.idempotence": False, "queue.buffering.max.messages": 1_000_000})
    payload = b"x" * RECORD_BYTES
    total = args.rate * args.duration_s
    # Warm the connection and metadata so the first window does not count the connect.
    producer.produce(topic, payload)
    producer.flush(30)
    latencies_s.clear()
    started = time.monotonic()
    # Records created (CreateTime, wall clock) in the first --warmup-s are sent but not counted.
    measure_from_ms[0] = (time.time() + args.warmup_s) * 1000
    total += args.rate * args.warmup_s
    sent = 0
    while sent < total:
        # Open loop: the send time of record i is started + i / rate, whatever the answers do.
        due = started + sent / args.rate
        now = time.monotonic()
        if now < due:
            producer.poll(min(due - now, 0.001))
            continue
        for i in range(min(PACING_BATCH_RECORDS, total - sent)):
            producer.produce(topic, payload, partition=(sent + i) % args.partitions, on_delivery=on_delivery)
        sent += min(PACING_BATCH_RECORDS, total - sent)
        producer.poll(0)
    producer.flush(60)
    elapsed_s = time.monotonic() - started
    # One more stats window covering the tail of the run.
    time.sleep(STATS_INTERVAL_MS / 1000 * 1.5)
    producer.poll(0)
    latencies_ms = sorted(x * 1000 for x in latencies_s)
    windows_ms = [w for w in windows[args.warmup_s * 1000 // STATS_INTERVAL_MS:] if w["requests"] > 0]
    return {
        "records": len(latencies_ms), "errors": len(errors), "records_per_s": sent / elapsed_s,
        "p50_ms": percentile(latencies_ms, 0.50), "p99_ms": percentile(latencies_ms, 0.99),
        "p99.9_ms": percentile(latencies_ms, 0.999), "max_ms": latencies_ms[-1] if latencies_ms else float("nan"),
        "rtt_windows": len(windows_ms),
        "rtt_p50_ms_median_window": statistics.median(w["rtt_p50_us"] for w in windows_ms) / 1000 if windows_ms else None,
        "rtt_p99_ms_median_window": statistics.median(w["rtt_p99_us"] for w in windows_ms) / 1000 if windows_ms else None,
        "rtt_p99_ms_worst_window": max(w["rtt_p99_us"] for w in windows_ms) / 1000 if windows_ms else None,
        "int_latency_p99_ms_median_window": (statistics.median(w["int_latency_p99_us"] for w in windows_ms) / 1000
                                             if windows_ms else None),
    }


def one_round(kind, args, work, out):
    results = {}
    for client in ("java", "librdkafka"):
        broker = Broker(kind, work, out)
        try:
            topic = "latency"
            tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", broker.bootstrap, "--create",
                 "--topic", topic, "--partitions", str(args.partitions), "--replication-factor", "1")
            cpu_0 = broker.cpu()
            run = java_perf_test(broker, args, topic) if client == "java" else librdkafka_paced(broker, args, topic)
            run["broker_cpu_s"] = broker.cpu() - cpu_0
            run["command"] = broker.command
        finally:
            broker.stop()
        results[client] = run
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=50_000, help="records per second, each client")
    parser.add_argument("--duration-s", type=int, default=20)
    parser.add_argument("--warmup-s", type=int, default=5, help="sent before each measured run, not counted")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "client-latency")
    args = parser.parse_args()
    runs = alternate_rounds(args.rounds, args.out, "client-latency-", lambda kind, work: one_round(kind, args, work, args.out))
    for run in runs:
        j, r = run["java"], run["librdkafka"]
        print(f"round {run['round']} {run['broker']}: java p50 {j['p50_ms']:.1f} p99 {j['p99_ms']:.1f} ms; "
              f"librdkafka p50 {r['p50_ms']:.2f} p99 {r['p99_ms']:.2f} ms, "
              f"rtt p99 (median window) {r['rtt_p99_ms_median_window']} ms")
    write_report(args, runs)


def write_report(args, runs):
    version, commit = kafka_version_and_commit()
    keys = {"java": ["p50_ms", "p99_ms", "p99.9_ms", "records_per_s", "broker_cpu_s"],
            "librdkafka": ["p50_ms", "p99_ms", "p99.9_ms", "rtt_p50_ms_median_window",
                           "rtt_p99_ms_median_window", "records_per_s", "broker_cpu_s"]}
    median = {kind: {client: {key: statistics.median(r[client][key] for r in runs if r["broker"] == kind
                                                     and r[client][key] is not None)
                              for key in keys[client]} for client in keys} for kind in ("ringtail", "kafka")}
    (args.out / "runs.json").write_text(json.dumps({"runs": runs, "median": median}, indent=2) + "\n")
    ratio = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
    rows = ""
    for client, label in (("java", "kafka-producer-perf-test (Java), send → ack"),
                          ("librdkafka", "confluent-kafka, produce() → delivery report")):
        for key, name in (("p50_ms", "p50"), ("p99_ms", "p99"), ("p99.9_ms", "p99.9")):
            r, k = median["ringtail"][client][key], median["kafka"][client][key]
            rows += f"| {label} | {name} | {r:.2f} | {k:.2f} | {ratio(r, k)} |\n"
    for key, name in (("rtt_p50_ms_median_window", "broker rtt p50"), ("rtt_p99_ms_median_window", "broker rtt p99")):
        r, k = median["ringtail"]["librdkafka"][key], median["kafka"]["librdkafka"][key]
        rows += f"| librdkafka statistics (median of {STATS_INTERVAL_MS} ms windows) | {name} | {r:.2f} | {k:.2f} | {ratio(r, k)} |\n"
    cpu = ""
    for client in ("java", "librdkafka"):
        r, k = median["ringtail"][client]["broker_cpu_s"], median["kafka"][client]["broker_cpu_s"]
        cpu += f"| {client} | {r:.1f} | {k:.1f} | {ratio(r, k)} |\n"
    per_round = ""
    for run in runs:
        j, l = run["java"], run["librdkafka"]
        per_round += (f"| {run['round']} | {run['broker']} | {j['p50_ms']:.0f} / {j['p99_ms']:.0f} / {j['p99.9_ms']:.0f} | "
                      f"{l['p50_ms']:.2f} / {l['p99_ms']:.2f} / {l['p99.9_ms']:.2f} | "
                      f"{l['rtt_p99_ms_median_window']:.2f} / {l['rtt_p99_ms_worst_window']:.2f} | "
                      f"{j['records_per_s']:.0f} / {l['records_per_s']:.0f} |\n")
    text = f"""# Produce latency as independent clients see it: Ringtail beside Apache Kafka

Made by `python3 scripts/bench_client_latency.py --rate {args.rate} --duration-s {args.duration_s} --warmup-s {args.warmup_s} --rounds {args.rounds} --partitions {args.partitions}`
({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}, Apache Kafka {version}, {os.cpu_count()} cores
shared by broker and client, {platform.node()}). Each client runs {args.duration_s} s at {args.rate} records/s of
{RECORD_BYTES} B over {args.partitions} partitions, acks=1, linger.ms=0, against a fresh broker (ringtail with its
defaults; Kafka as in `scripts/kafka-peer.sh`); brokers alternate first in each round. Latencies in ms,
medians over {args.rounds} rounds. Each client first sends for {args.warmup_s} s uncounted (Java: a separate run of the
tool; librdkafka: the records created in the first {args.warmup_s} s); the Java tool's measured run still includes
its own JVM warming up. Java's figures are whole milliseconds (the tool's own rounding).

| client and measure | percentile | ringtail | kafka | ringtail ÷ kafka |
|---|---|---:|---:|---:|
{rows}
Broker CPU seconds during each client's run (median):

| client | ringtail | kafka | ringtail ÷ kafka |
|---|---:|---:|---:|
{cpu}
Every round (Java p50 / p99 / p99.9; librdkafka p50 / p99 / p99.9; librdkafka broker rtt p99 median /
worst window; achieved records/s Java / librdkafka):

| round | broker | java ms | librdkafka ms | rtt p99 ms | records/s |
|---:|---|---|---|---|---|
{per_round}"""
    (args.out / "README.md").write_text(text)
    print(f"wrote {args.out / 'README.md'}")


if __name__ == "__main__":
    main()
