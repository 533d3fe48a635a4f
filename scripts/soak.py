#!/usr/bin/env python3
"""Soak: hours-long behaviour in minutes of code (issue 14, section 4). Run through scripts/soak.sh.

One broker, for --duration (default 30 min), with at once:
- load: `ringtail-loadgen run` in back-to-back chunks of --chunk-s at --load-share (70%) of the
  max throughput (measured first with a 10 s flat-out run, or --max-rate), acks=all, a consumer
  reading every message; topic `soak-load`, 1 MiB segments, retention.ms 60 s: retention deletes
  segments all along;
- a consumer group whose members come and go: a confluent-kafka producer (idempotent, acks=all)
  numbers records on `soak-group`; --members consumers in one group, the oldest leaving and a new
  one joining every --churn-s; every acknowledged number must be read at least once;
- compaction: a producer overwrites --keys keys on the compacted topic `soak-compacted` (64 KiB
  segments); at the end, read from the start, every key's last value must be the last one
  acknowledged, and fewer records than were produced must remain;
- a broker restart (SIGTERM, exit 0 checked, same data dir) at the middle, between two load chunks
  (the loadgen is a benchmark and does not reconnect); the Python clients ride through it.

Sampled every --sample-s: the broker's RSS, open file descriptors (/proc/PID/fd), data dir bytes
and segment count; per load chunk: the loadgen's produce and end-to-end p99 and the group
producer's p99. Written to --out: samples.csv, chunks.csv, summary.json and soak.svg (drawn by
`ringtail-loadgen chart`, the loadgen's plotters charts).

The verdict (summary.json "verdict", exit status 1 if not ok): nothing lost, compaction correct,
and flat. Flat: a least-squares slope over the samples after the warm-up (the first
WARMUP_SHARE of each broker life dropped, each life with its own intercept: the restart resets
RSS), projected over the whole duration, stays within the series' DRIFT_BOUNDS of its median.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WARMUP_SHARE = 0.15
# Series: (share of the median, absolute floor) the projected drift may reach and still be flat.
DRIFT_BOUNDS = {"rss_mib": (0.25, 16.0), "fds": (0.10, 16.0), "data_mib": (0.50, 64.0),
                "load_p99_ms": (0.50, 10.0)}
TOPIC_LOAD, TOPIC_GROUP, TOPIC_COMPACTED = "soak-load", "soak-group", "soak-compacted"


def parse_duration_s(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    return float(text[:-1]) * units[text[-1]] if text[-1] in units else float(text)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """The broker process; `restart()` keeps the port and data dir."""

    def __init__(self, binary: str, data_dir: Path, log: Path):
        self.port, self.binary, self.data_dir, self.log = free_port(), binary, data_dir, log
        self.proc: subprocess.Popen | None = None
        self.lives = 0

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self):
        cmd = [self.binary, "--listen", self.bootstrap, "--data-dir", str(self.data_dir), "--shards", "2",
               "--flush", "every_batch", "--segment-bytes", str(1 << 20), "--log-cleanup-check-ms", "5000"]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.lives += 1
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"broker exited with {self.proc.returncode}; see {self.log}")
                time.sleep(0.05)
        raise RuntimeError(f"broker did not listen; see {self.log}")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        return rc

    def restart(self) -> int:
        rc = self.stop()
        self.start()
        return rc


def create_topics(bootstrap: str, partitions: int, retention_ms: int):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": bootstrap})
    deleting = {"retention.ms": str(retention_ms), "segment.bytes": str(1 << 20)}
    topics = [
        NewTopic(TOPIC_LOAD, partitions, config=deleting),
        NewTopic("soak-probe", partitions, config=deleting),
        NewTopic(TOPIC_GROUP, partitions, config={"segment.bytes": str(1 << 20)}),
        NewTopic(TOPIC_COMPACTED, 1, config={"cleanup.policy": "compact", "segment.bytes": "65536",
                                             "min.cleanable.dirty.ratio": "0.1"}),
    ]
    for name, future in admin.create_topics(topics).items():
        future.result(timeout=30)


def loadgen(binary: str, bootstrap: str, out: Path, *args: str) -> dict:
    cmd = [binary, "run", "--bootstrap", bootstrap, "--message-bytes", "1024", "--acks", "all",
           "--json", str(out), "--quiet", *args]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"error": f"exit {done.returncode}: {done.stderr.strip()[-500:]}"}
    return json.loads(out.read_text())


def find_max_rate(args, broker: Broker, work: Path) -> float:
    report = loadgen(args.loadgen, broker.bootstrap, work / "probe.json", "--topic", "soak-probe",
                     "--partitions", str(args.partitions), "--duration-s", "10", "--consumers", "0")
    if "error" in report:
        raise RuntimeError(f"max-throughput probe failed: {report['error']}")
    return report["produce"]["msgs_per_s"]


class Shared:
    """State the client threads share with the sampler and the verdict."""

    def __init__(self):
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.group_acked: set[int] = set()
        self.group_seen: set[int] = set()
        self.group_latency: list[tuple[float, float]] = []  # (t_s, ms)
        self.compacted_acked: dict[str, int] = {}
        self.compacted_produced = 0
        self.errors: list[str] = []
        self.members_joined = 0
        self.members_left = 0
        self.commits_failed = 0


def group_producer(bootstrap: str, rate: float, shared: Shared, t0: float):
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": 300000})

    def report(seq, sent_at):
        def done(err, _msg):
            if err is not None:
                shared.errors.append(f"group produce {seq}: {err}")
                return
            with shared.lock:
                shared.group_acked.add(seq)
                shared.group_latency.append((sent_at - t0, (time.monotonic() - sent_at) * 1000))
        return done

    seq, started = 0, time.monotonic()
    while not shared.stop.is_set():
        due = started + seq / rate
        while (now := time.monotonic()) < due:
            producer.poll(min(0.01, due - now))
        producer.produce(TOPIC_GROUP, key=str(seq % 64).encode(), value=str(seq).encode(),
                         on_delivery=report(seq, time.monotonic()))
        seq += 1
    producer.flush(300)


def group_member(bootstrap: str, shared: Shared, leave: threading.Event):
    """One member: reads, records what it read, commits, and leaves cleanly when told."""
    from confluent_kafka import Consumer
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-group",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 15000, "heartbeat.interval.ms": 1000})
    consumer.subscribe([TOPIC_GROUP])
    with shared.lock:
        shared.members_joined += 1
    while not leave.is_set():
        messages = consumer.consume(500, timeout=0.5)
        good = [m for m in messages if m.error() is None]
        with shared.lock:
            shared.group_seen.update(int(m.value()) for m in good)
        if good:
            try:
                consumer.commit(asynchronous=False)
            except Exception:  # a rebalance or the restart: the next commit covers it, and at
                with shared.lock:  # worst a later member reads these records again
                    shared.commits_failed += 1
    consumer.close()
    with shared.lock:
        shared.members_left += 1


def group_churn(bootstrap: str, members: int, churn_s: float, shared: Shared, drain: threading.Event):
    """Keeps `members` members; every `churn_s` the oldest leaves and a new one joins. After the
    producers stop (`shared.stop`), members read on until everything acknowledged is seen."""
    running: list[tuple[threading.Thread, threading.Event]] = []

    def join():
        leave = threading.Event()
        thread = threading.Thread(target=group_member, args=(bootstrap, shared, leave), daemon=True)
        thread.start()
        running.append((thread, leave))

    for _ in range(members):
        join()
    next_churn = time.monotonic() + churn_s
    while not drain.is_set():
        time.sleep(0.2)
        if not shared.stop.is_set() and time.monotonic() >= next_churn:
            thread, leave = running.pop(0)
            leave.set()
            join()
            next_churn = time.monotonic() + churn_s
    for thread, leave in running:
        leave.set()
    for thread, _ in running:
        thread.join(timeout=60)


def compacted_producer(bootstrap: str, rate: float, keys: int, shared: Shared):
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "enable.idempotence": True,
                         "linger.ms": 5, "message.timeout.ms": 300000})

    def report(key, seq):
        def done(err, _msg):
            if err is not None:
                shared.errors.append(f"compacted produce {key}: {err}")
            else:
                with shared.lock:
                    # In-order per partition (idempotence), so the callback order is the log order.
                    shared.compacted_acked[key] = seq
        return done

    seq, started = 0, time.monotonic()
    while not shared.stop.is_set():
        due = started + seq / rate
        while (now := time.monotonic()) < due:
            producer.poll(min(0.01, due - now))
        key = f"k{seq % keys}"
        producer.produce(TOPIC_COMPACTED, key=key.encode(), value=f"{seq}".encode(), on_delivery=report(key, seq))
        seq += 1
        shared.compacted_produced = seq
    producer.flush(300)


def check_compacted(bootstrap: str, shared: Shared) -> dict:
    """Reads the compacted topic from the start to its end: the last value of every key must be
    the last acknowledged one, and compaction must have removed records."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-compacted-check",
                         "enable.auto.commit": False})
    low, high = consumer.get_watermark_offsets(TopicPartition(TOPIC_COMPACTED, 0), timeout=30)
    consumer.assign([TopicPartition(TOPIC_COMPACTED, 0, low)])
    last: dict[str, int] = {}
    read, position, idle = 0, low, 0
    while position < high and idle < 60:
        batch = consumer.consume(1000, timeout=0.5)
        idle = 0 if batch else idle + 1
        for m in batch:
            if m.error() is None:
                last[m.key().decode()] = int(m.value())
                read += 1
                position = m.offset() + 1
    consumer.close()
    wrong = [k for k, seq in shared.compacted_acked.items() if last.get(k) != seq]
    return {"produced": shared.compacted_produced, "acknowledged_keys": len(shared.compacted_acked),
            "records_left": read, "log_end": high, "wrong_or_missing_keys": wrong[:20],
            "ok": not wrong and read < shared.compacted_produced}


def load_watermarks(bootstrap: str, partitions: int) -> dict:
    """Summed log start and end offsets of the load topic: a start above 0 is retention at work."""
    from confluent_kafka import Consumer, TopicPartition
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "soak-watermarks"})
    marks = [consumer.get_watermark_offsets(TopicPartition(TOPIC_LOAD, p), timeout=30) for p in range(partitions)]
    consumer.close()
    return {"load_log_start": sum(low for low, _ in marks), "load_high_watermark": sum(high for _, high in marks)}


def sample(broker: Broker, t0: float) -> dict:
    pid = broker.proc.pid
    status = Path(f"/proc/{pid}/status").read_text()
    rss_kib = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:"))
    data_bytes, segments = 0, 0
    for root, _dirs, files in os.walk(broker.data_dir):
        for name in files:
            try:
                data_bytes += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                continue  # retention deleted it meanwhile
            segments += name.endswith(".log")
    return {"t_s": round(time.monotonic() - t0, 1), "life": broker.lives, "rss_mib": round(rss_kib / 1024, 1),
            "fds": len(os.listdir(f"/proc/{pid}/fd")), "data_mib": round(data_bytes / 2**20, 1),
            "segments": segments}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def within_life_slope(rows: list[dict], key: str) -> float | None:
    """Least-squares slope of `key` against t_s, each broker life with its own intercept."""
    num = den = 0.0
    for life in {r["life"] for r in rows}:
        points = [(r["t_s"], r[key]) for r in rows if r["life"] == life and r.get(key) is not None]
        if len(points) < 2:
            continue
        mean_t = sum(t for t, _ in points) / len(points)
        mean_y = sum(y for _, y in points) / len(points)
        num += sum((t - mean_t) * (y - mean_y) for t, y in points)
        den += sum((t - mean_t) ** 2 for t, _ in points)
    return num / den if den else None


def after_warmup(rows: list[dict], life_bounds: dict[int, tuple[float, float]]) -> list[dict]:
    kept = []
    for r in rows:
        start, end = life_bounds[r["life"]]
        if r["t_s"] >= start + WARMUP_SHARE * (end - start):
            kept.append(r)
    return kept


def flatness(samples: list[dict], chunks: list[dict], duration_s: float) -> dict:
    """Per series: slope, the drift it projects over the whole duration, the bound, and ok."""
    lives: dict[int, tuple[float, float]] = {}
    for r in samples + chunks:
        start, end = lives.get(r["life"], (r["t_s"], r["t_s"]))
        lives[r["life"]] = (min(start, r["t_s"]), max(end, r["t_s"]))
    out = {}
    for key, rows in [("rss_mib", samples), ("fds", samples), ("data_mib", samples), ("load_p99_ms", chunks)]:
        kept = after_warmup(rows, lives)
        values = [r[key] for r in kept if r.get(key) is not None]
        slope = within_life_slope(kept, key)
        if slope is None or not values:
            out[key] = {"ok": None, "why": "too few points after the warm-up"}
            continue
        median = percentile(values, 50)
        share, floor = DRIFT_BOUNDS[key]
        bound = max(share * median, floor)
        drift = slope * duration_s
        out[key] = {"slope_per_min": round(slope * 60, 4), "median": median, "projected_drift": round(drift, 2),
                    "bound": round(bound, 2), "ok": abs(drift) <= bound}
    return out


def run_load(args, broker: Broker, rate: float, t0: float, end_at: float, work: Path,
             shared: Shared, chunks: list[dict], samples: list[dict], out: Path):
    """Loadgen chunks until `end_at`; the broker restart happens between the chunks at the middle."""
    restart_at = t0 + (end_at - t0) / 2
    restarted = False
    index = 0
    while time.monotonic() + 5 < end_at:
        if not restarted and time.monotonic() >= restart_at:
            at = time.monotonic() - t0
            rc = broker.restart()
            chunks.append({"event": "restart", "t_s": round(at, 1), "life": broker.lives, "stop_exit": rc})
            if rc != 0:
                shared.errors.append(f"broker exited {rc} on SIGTERM at the restart")
            restarted = True
        seconds = min(args.chunk_s, end_at - time.monotonic())
        start = time.monotonic() - t0
        report = loadgen(args.loadgen, broker.bootstrap, work / f"chunk-{index}.json", "--topic", TOPIC_LOAD,
                         "--partitions", str(args.partitions), "--duration-s", f"{seconds:.1f}",
                         "--rate", f"{rate:.0f}", "--consumers", "1", "--drain-timeout-s", "30")
        row = {"chunk": index, "t_s": round(start, 1), "life": broker.lives}
        with shared.lock:
            window = [ms for t, ms in shared.group_latency if start <= t < time.monotonic() - t0]
        row["group_p99_ms"] = round(percentile(window, 99), 2) if window else None
        if "error" in report:
            row["error"] = report["error"]
            shared.errors.append(f"loadgen chunk {index}: {report['error']}")
        else:
            produce, consume = report["produce"], report["consume"]
            row.update({"produced": produce["messages"], "failed": produce["failed_messages"],
                        "consumed": consume["messages"], "msgs_per_s": round(produce["msgs_per_s"]),
                        "load_p99_ms": round(produce["latency_us"]["p99"] / 1000, 2),
                        "e2e_p99_ms": round(consume["e2e_latency_us"]["p99"] / 1000, 2)})
            if produce["failed_messages"] or consume["messages"] < produce["messages"]:
                shared.errors.append(f"loadgen chunk {index}: {produce['failed_messages']} failed, "
                                     f"{consume['messages']} of {produce['messages']} consumed")
        chunks.append(row)
        print(json.dumps(row), flush=True)
        # Written as the run goes, so a run cut short still leaves its figures.
        write_csv(out / "chunks.csv", chunks)
        write_csv(out / "samples.csv", list(samples))
        index += 1


def write_csv(path: Path, rows: list[dict]):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def chart(args, out: Path):
    """soak.svg by the loadgen's chart subcommand (plotters, as its own run charts)."""
    samples, chunks = out / "samples.csv", out / "chunks.csv"
    cmd = [args.loadgen, "chart", "--panel", f"{samples}:t_s:rss_mib", "--panel", f"{samples}:t_s:fds",
           "--panel", f"{samples}:t_s:data_mib,segments",
           "--panel", f"{chunks}:t_s:load_p99_ms,e2e_p99_ms,group_p99_ms",
           "--title", f"ringtail soak, {args.duration} (restart at the middle)", "--out", str(out / "soak.svg")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"chart not drawn: {done.stderr.strip()[-300:]}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="30m", help="e.g. 30m, 3m, 90s")
    parser.add_argument("--max-rate", type=float, help="max throughput in msgs/s (skips the probe)")
    parser.add_argument("--load-share", type=float, default=0.7)
    parser.add_argument("--chunk-s", type=float, default=60)
    parser.add_argument("--sample-s", type=float, default=5)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--load-retention-ms", type=int, default=60000, help="retention.ms of soak-load")
    parser.add_argument("--members", type=int, default=3)
    parser.add_argument("--churn-s", type=float, default=20)
    parser.add_argument("--group-rate", type=float, default=200, help="msgs/s of the group's producer")
    parser.add_argument("--keys", type=int, default=500, help="keys of the compacted topic")
    parser.add_argument("--compacted-rate", type=float, default=100)
    parser.add_argument("--ringtail", default=str(REPO / "target/release/ringtail"))
    parser.add_argument("--loadgen", default=str(REPO / "target/release/ringtail-loadgen"))
    parser.add_argument("--work-dir", default="/var/tmp", help="where the data dir goes (a real disk)")
    parser.add_argument("--out", default=str(REPO / "results/soak"))
    args = parser.parse_args()
    duration_s = parse_duration_s(args.duration)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="ringtail-soak-", dir=args.work_dir) as tmp:
        work = Path(tmp)
        broker = Broker(args.ringtail, work / "data", out / "broker.log")
        (out / "broker.log").write_text("")
        broker.start()
        try:
            summary = soak(args, broker, duration_s, work, out)
        finally:
            if broker.proc.poll() is None:
                final_rc = broker.stop()
                print(f"broker stopped: exit {final_rc}")
    print(json.dumps(summary["verdict"], indent=2))
    sys.exit(0 if summary["verdict"]["ok"] else 1)


def soak(args, broker: Broker, duration_s: float, work: Path, out: Path) -> dict:
    create_topics(broker.bootstrap, args.partitions, args.load_retention_ms)
    max_rate = args.max_rate or find_max_rate(args, broker, work)
    rate = max_rate * args.load_share
    print(f"max {max_rate:.0f} msgs/s; soaking at {rate:.0f} msgs/s for {duration_s:.0f} s", flush=True)
    load_start = os.getloadavg()
    shared, samples, chunks = Shared(), [], []
    t0 = time.monotonic()
    end_at = t0 + duration_s
    drain = threading.Event()
    threads = [threading.Thread(target=group_producer, args=(broker.bootstrap, args.group_rate, shared, t0)),
               threading.Thread(target=compacted_producer,
                                args=(broker.bootstrap, args.compacted_rate, args.keys, shared)),
               threading.Thread(target=group_churn,
                                args=(broker.bootstrap, args.members, args.churn_s, shared, drain))]
    for t in threads:
        t.start()

    def sampler():
        while not drain.is_set():
            try:
                samples.append(sample(broker, t0))
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                pass  # the broker is restarting
            time.sleep(args.sample_s)
    sampling = threading.Thread(target=sampler, daemon=True)
    sampling.start()
    run_load(args, broker, rate, t0, end_at, work, shared, chunks, samples, out)
    shared.stop.set()
    for t in threads[:2]:
        t.join()
    drain_deadline = time.monotonic() + 120
    while time.monotonic() < drain_deadline:
        with shared.lock:
            if shared.group_acked <= shared.group_seen:
                break
        time.sleep(0.5)
    drain.set()
    threads[2].join()
    missing = sorted(shared.group_acked - shared.group_seen)
    compacted = check_compacted(broker.bootstrap, shared)
    chunk_rows = [c for c in chunks if "chunk" in c]
    flat = flatness(samples, chunk_rows, duration_s)
    verdict = {"records_lost": len(missing), "client_errors": len(shared.errors), "compaction_ok": compacted["ok"],
               "flat": {k: v["ok"] for k, v in flat.items()}}
    verdict["ok"] = (not missing and not shared.errors and compacted["ok"]
                     and all(v["ok"] is not False for v in flat.values()))
    summary = {
        "command": " ".join(["scripts/soak.sh", *sys.argv[1:]]), "duration_s": duration_s,
        "max_rate_msgs_per_s": round(max_rate), "load_rate_msgs_per_s": round(rate), "load_share": args.load_share,
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg()},
        "load": {"message_bytes": 1024, "partitions": args.partitions, "acks": "all", "flush": "every_batch",
                 "load_retention_ms": args.load_retention_ms, "segment_bytes": 1 << 20},
        "retention": load_watermarks(broker.bootstrap, args.partitions),
        "loadgen": {"chunks": len(chunk_rows), "produced": sum(c.get("produced", 0) for c in chunk_rows),
                    "consumed": sum(c.get("consumed", 0) for c in chunk_rows)},
        "group": {"acknowledged": len(shared.group_acked), "read": len(shared.group_seen),
                  "missing": missing[:20], "members_joined": shared.members_joined,
                  "members_left": shared.members_left, "commits_failed": shared.commits_failed},
        "compacted": compacted,
        "restarts": [c for c in chunks if c.get("event") == "restart"],
        "errors": shared.errors[:20],
        "flatness": flat, "drift_bounds": DRIFT_BOUNDS, "warmup_share": WARMUP_SHARE,
        "verdict": verdict,
    }
    write_csv(out / "samples.csv", samples)
    write_csv(out / "chunks.csv", chunks)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    chart(args, out)
    return summary


if __name__ == "__main__":
    main()
