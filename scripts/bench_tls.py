#!/usr/bin/env python3
"""TLS beside plaintext on one Ringtail: produce and fetch throughput through each listener.

One `ringtail` (release build, default flags) listens on PLAINTEXT and SSL (a P-256 certificate
made with the openssl CLI). For each round and each listener, in alternating order:
kafka-producer-perf-test writes N records of 1 KiB flat out (acks=1) to a new topic, then
kafka-consumer-perf-test reads them back. Plaintext fetches are spliced file -> socket; TLS
fetches are read and encrypted in user space (docs/decisions/0009). Reported: medians over the
rounds of MB/s (10^6 bytes) and the broker's CPU seconds per phase.

Usage: python3 scripts/bench_tls.py [--records N] [--rounds R] [--out results/security]
Needs: cargo build --release -p ringtail-server; Kafka's tools (scripts/kafka-peer.sh fetch).
"""

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "tests" / "compat"))
from bench_kafka_tools import PRODUCE_LINE, RECORD_BYTES, RINGTAIL, cpu_seconds, free_port, tool  # noqa: E402
from secure_broker import make_certs  # noqa: E402

READY_TIMEOUT_S = 30


def client_config(work: Path, protocol: str, certs) -> Path:
    path = work / f"{protocol}.properties"
    lines = [f"security.protocol={protocol}"]
    if protocol == "SSL":
        lines += ["ssl.truststore.type=PEM", f"ssl.truststore.location={certs['ca.pem']}"]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_run(ports, protocol, topic, records, work, certs, pid):
    bootstrap = f"127.0.0.1:{ports[protocol]}"
    config = client_config(work, protocol, certs)
    tool("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", f"127.0.0.1:{ports['PLAINTEXT']}",
         "--create", "--topic", topic, "--partitions", "1", "--replication-factor", "1")
    cpu_0 = cpu_seconds(pid)
    produced = tool("org.apache.kafka.tools.ProducerPerformance", "--topic", topic, "--num-records", str(records),
                    "--record-size", str(RECORD_BYTES), "--throughput", "-1", "--producer.config", str(config),
                    "--producer-props", f"bootstrap.servers={bootstrap}", "acks=1")
    cpu_1 = cpu_seconds(pid)
    consumed = tool("org.apache.kafka.tools.ConsumerPerformance", "--bootstrap-server", bootstrap,
                    "--topic", topic, "--messages", str(records), "--timeout", "60000",
                    "--consumer.config", str(config))
    cpu_2 = cpu_seconds(pid)
    sent, recs_per_s, *_ = PRODUCE_LINE.findall(produced)[-1]
    lines = [line for line in consumed.splitlines() if line.strip()]
    consume = dict(zip([h.strip() for h in lines[-2].split(",")], [v.strip() for v in lines[-1].split(",")]))
    fetched = int(consume["data.consumed.in.nMsg"])
    assert int(sent) == records and fetched == records, (sent, fetched)
    return {
        "protocol": protocol,
        "produce_mb_per_s": float(recs_per_s) * RECORD_BYTES / 1e6,
        "produce_broker_cpu_s": cpu_1 - cpu_0,
        "fetch_mb_per_s": fetched * RECORD_BYTES / 1e6 / (float(consume["fetch.time.ms"]) / 1000),
        "fetch_broker_cpu_s": cpu_2 - cpu_1,
        "raw_produce": produced.strip().splitlines()[-1],
        "raw_consume": "\n".join(lines[-2:]),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "security")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-tls-"))
    certs = make_certs(work / "certs")
    ports = {"PLAINTEXT": free_port(), "SSL": free_port()}
    listeners = ",".join(f"{name}://127.0.0.1:{port}" for name, port in ports.items())
    command = [str(RINGTAIL), "--listeners", listeners, "--data-dir", str(work / "data"),
               "--tls-cert-file", str(certs["server.pem"]), "--tls-key-file", str(certs["server.key"])]
    log = open(args.out / "broker.log", "w")
    broker = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    runs = []
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while subprocess.run(["bash", "-c", f"exec 3<>/dev/tcp/127.0.0.1/{ports['SSL']}"]).returncode != 0:
            if broker.poll() is not None or time.monotonic() > deadline:
                sys.exit("ringtail did not start; see broker.log")
            time.sleep(0.2)
        for round_index in range(args.rounds):
            order = ["PLAINTEXT", "SSL"] if round_index % 2 == 0 else ["SSL", "PLAINTEXT"]
            for protocol in order:
                run = one_run(ports, protocol, f"perf-{protocol.lower()}-{round_index}", args.records, work,
                              certs, broker.pid)
                run["round"] = round_index
                print(json.dumps({k: v for k, v in run.items() if not k.startswith("raw")}), flush=True)
                runs.append(run)
    finally:
        broker.terminate()
        broker.wait(timeout=60)
        log.close()
    summary = {}
    for protocol in ports:
        mine = [r for r in runs if r["protocol"] == protocol]
        summary[protocol] = {key: statistics.median(r[key] for r in mine) for key in
                             ("produce_mb_per_s", "produce_broker_cpu_s", "fetch_mb_per_s", "fetch_broker_cpu_s")}
    report = {"command": " ".join(sys.argv), "broker_command": " ".join(command), "records": args.records,
              "record_bytes": RECORD_BYTES, "rounds": args.rounds, "machine": platform.platform(),
              "cpus": len(__import__("os").sched_getaffinity(0)), "median": summary, "runs": runs}
    (args.out / "tls-throughput.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = "\n".join(
        f"| {p} | {s['produce_mb_per_s']:.1f} | {s['produce_broker_cpu_s']:.2f} | {s['fetch_mb_per_s']:.1f} | "
        f"{s['fetch_broker_cpu_s']:.2f} |" for p, s in summary.items())
    (args.out / "tls-throughput.md").write_text(f"""# TLS beside plaintext (one broker, both listeners)

`{report['command']}` — {args.records} records of {RECORD_BYTES} B per run, {args.rounds} rounds
(listener order alternating), medians. Kafka's perf tools (ProducerPerformance acks=1,
ConsumerPerformance), one partition. Machine: {report['machine']}, {report['cpus']} CPUs (shared
with other work while measured: compare the two rows, not the absolute figures).

| listener | produce MB/s | broker CPU s (produce) | fetch MB/s | broker CPU s (fetch) |
|---|---|---|---|---|
{rows}

Plaintext fetches splice record bytes file -> socket; TLS fetches read them and encrypt in user
space (rustls, ring; no kTLS on this kernel). Raw tool output per run: tls-throughput.json.
""")
    print((args.out / "tls-throughput.md").read_text())


if __name__ == "__main__":
    main()
