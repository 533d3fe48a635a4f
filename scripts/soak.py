#!/usr/bin/env python3
"""Soak: hours-long behaviour in minutes of code (issue 14, section 4). Run through scripts/soak.sh.

One broker, for --duration (default 30 min), with at once:
- load: `ringtail-loadgen run` in back-to-back chunks of --chunk-s at --load-share (70%) of the
  max throughput (measured first: the median second of the second half of a --probe-s flat-out
  run of the same shape, producer and consumer; or --max-rate), acks=all, a consumer
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

Sampled every --sample-s: the broker's RSS, open file descriptors by kind (/proc/PID/fd: into
the data dir, of deleted files, the rest) and per segment file, data dir bytes and segment count;
per load chunk: the loadgen's produce and end-to-end p99, its backlog per second, and the group
producer's p99. Written to --out: samples.csv, chunks.csv, lag.csv, summary.json and soak.svg
(drawn by `ringtail-loadgen chart`, the loadgen's plotters charts); results/soak/README.md
describes each.

The verdict (summary.json "verdict", exit status 1 if not ok): nothing lost, compaction correct,
and flat: no series *grows* from the first third of the steady run to the last (medians, the
warm-up and the restart window left out; the rule and its bounds are in scripts/soak_verdict.py
and results/soak/README.md). The restart window is reported on its own (summary.json
"restart"): the broker's stop and start times, and the loadgen's backlog second by second
(lag.csv) with the time it took to drain.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))
import soak_verdict  # noqa: E402

# The broker's retention and compaction check interval (--log-cleanup-check-ms).
CLEANUP_CHECK_S = 5
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

    def start(self) -> float:
        """Starts the broker; returns the seconds until it listened."""
        cmd = [self.binary, "--listen", self.bootstrap, "--data-dir", str(self.data_dir), "--shards", "2",
               "--flush", "every_batch", "--segment-bytes", str(1 << 20),
               "--log-cleanup-check-ms", str(CLEANUP_CHECK_S * 1000)]
        started = time.monotonic()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        self.lives += 1
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return time.monotonic() - started
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"broker exited with {self.proc.returncode}; see {self.log}")
                time.sleep(0.05)
        raise RuntimeError(f"broker did not listen; see {self.log}")

    def stop(self) -> tuple[int, float]:
        """SIGTERM; returns the exit status and the seconds the shutdown took."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(timeout=60)
        return rc, time.monotonic() - started

    def restart(self) -> dict:
        rc, stop_s = self.stop()
        listen_s = self.start()
        return {"stop_exit": rc, "stop_s": round(stop_s, 2), "listen_s": round(listen_s, 2)}


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
    """The max the load's own shape sustains: flat out for --probe-s with the consumer reading
    every message, as the soak's chunks run, taken as the median per-second rate of the probe's
    second half. A short produce-only probe overstated it twice (2026-11-30: 411k msg/s probed
    produce-only, chunks then reached 130-164k of a 288k target; 2026-12-01: 372k with the
    consumer over 10 s, chunks then reached 141-209k of 261k): the first seconds write into the
    page cache before every_batch's fsyncs and retention reach their steady pace. The group and
    compacted clients (300 msg/s together) start after the probe; `steady_state` in summary.json
    reports the rate the chunks reached against the target."""
    report = loadgen(args.loadgen, broker.bootstrap, work / "probe.json", "--topic", "soak-probe",
                     "--partitions", str(args.partitions), "--duration-s", str(args.probe_s),
                     "--consumers", "1", "--drain-timeout-s", "60")
    if "error" in report:
        raise RuntimeError(f"max-throughput probe failed: {report['error']}")
    sustained = soak_verdict.sustained_rate(report["timeline"], args.probe_s)
    print(f"probe: {report['produce']['msgs_per_s']:.0f} msgs/s over {args.probe_s:.0f} s, "
          f"{sustained:.0f} msgs/s sustained (median second of its second half)", flush=True)
    return sustained


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


def open_descriptors(pid: int, data_dir: Path) -> dict:
    """The broker's descriptors by kind: into the data dir (segments, indexes), of files already
    deleted (a reader that never lets go), and the rest (sockets, timers, io_uring...)."""
    data, deleted, total = 0, 0, 0
    prefix = str(data_dir)
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed meanwhile
        total += 1
        data += target.startswith(prefix)
        deleted += target.endswith(" (deleted)")
    return {"fds": total, "fds_data": data, "fds_deleted": deleted, "fds_other": total - data}


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
    fds = open_descriptors(pid, broker.data_dir)
    return {"t_s": round(time.monotonic() - t0, 1), "life": broker.lives, "rss_mib": round(rss_kib / 1024, 1),
            **fds, "fds_per_segment": round(fds["fds_data"] / max(segments, 1), 3),
            "data_mib": round(data_bytes / 2**20, 1), "segments": segments}


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


class Figures:
    """What the soak records as it goes: broker samples, load chunks (and the restart as an event
    row), and the loadgen's backlog per second (lag.csv)."""

    def __init__(self):
        self.samples: list[dict] = []
        self.chunks: list[dict] = []
        self.lags: list[dict] = []

    def write(self, out: Path):
        write_csv(out / "samples.csv", list(self.samples))
        write_csv(out / "chunks.csv", self.chunks)
        write_csv(out / "lag.csv", self.lags)


def restart_broker(broker: Broker, t0: float, shared: Shared, figures: Figures):
    at = time.monotonic() - t0
    timing = broker.restart()
    figures.chunks.append({"event": "restart", "t_s": round(at, 1), "life": broker.lives, **timing})
    print(json.dumps(figures.chunks[-1]), flush=True)
    if timing["stop_exit"] != 0:
        shared.errors.append(f"broker exited {timing['stop_exit']} on SIGTERM at the restart")


def chunk_row(index: int, start: float, seconds: float, rate: float, report: dict, broker: Broker,
              figures: Figures) -> tuple[dict, list[str]]:
    """One chunk's row (p99s, the backlog's peak and drain) and its lag seconds into `figures`."""
    row, errors = {"chunk": index, "t_s": round(start, 1), "life": broker.lives}, []
    if "error" in report:
        row["error"] = report["error"]
        return row, [f"loadgen chunk {index}: {report['error']}"]
    produce, consume = report["produce"], report["consume"]
    lags = soak_verdict.backlog_lag_s(report["timeline"], rate, seconds)
    figures.lags.extend({"t_s": round(start + t, 1), "chunk": index, "lag_s": lag} for t, lag in lags)
    row.update({"produced": produce["messages"], "failed": produce["failed_messages"],
                "consumed": consume["messages"], "msgs_per_s": round(produce["msgs_per_s"]),
                "load_p99_ms": round(produce["latency_us"]["p99"] / 1000, 2),
                "e2e_p99_ms": round(consume["e2e_latency_us"]["p99"] / 1000, 2),
                "lag_max_s": max((lag for _, lag in lags), default=None),
                "drained_after_s": soak_verdict.drained_after_s(lags)})
    if produce["failed_messages"] or consume["messages"] < produce["messages"]:
        errors.append(f"loadgen chunk {index}: {produce['failed_messages']} failed, "
                      f"{consume['messages']} of {produce['messages']} consumed")
    return row, errors


def run_load(args, broker: Broker, rate: float, t0: float, end_at: float, work: Path,
             shared: Shared, figures: Figures, out: Path):
    """Loadgen chunks until `end_at`; the broker restart happens between the chunks at the middle."""
    restart_at = t0 + (end_at - t0) / 2
    restarted = False
    index = 0
    while time.monotonic() + 5 < end_at:
        if not restarted and time.monotonic() >= restart_at:
            restart_broker(broker, t0, shared, figures)
            restarted = True
        seconds = min(args.chunk_s, end_at - time.monotonic())
        start = time.monotonic() - t0
        report = loadgen(args.loadgen, broker.bootstrap, work / f"chunk-{index}.json", "--topic", TOPIC_LOAD,
                         "--partitions", str(args.partitions), "--duration-s", f"{seconds:.1f}",
                         "--rate", f"{rate:.0f}", "--consumers", "1", "--drain-timeout-s", "30")
        row, errors = chunk_row(index, start, seconds, rate, report, broker, figures)
        with shared.lock:
            window = [ms for t, ms in shared.group_latency if start <= t < time.monotonic() - t0]
            shared.errors.extend(errors)
        row["group_p99_ms"] = round(percentile(window, 99), 2) if window else None
        figures.chunks.append(row)
        print(json.dumps(row), flush=True)
        # Written as the run goes, so a run cut short still leaves its figures.
        figures.write(out)
        index += 1


def write_csv(path: Path, rows: list[dict]):
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)


def chart(args, out: Path):
    """soak.svg by the loadgen's chart subcommand (plotters, as its own run charts)."""
    samples, chunks, lag = out / "samples.csv", out / "chunks.csv", out / "lag.csv"
    panels = [f"{samples}:t_s:rss_mib", f"{samples}:t_s:fds,fds_data", f"{samples}:t_s:fds_other,fds_deleted",
              f"{samples}:t_s:fds_per_segment", f"{samples}:t_s:data_mib,segments",
              f"{chunks}:t_s:load_p99_ms,e2e_p99_ms,group_p99_ms", f"{lag}:t_s:lag_s"]
    cmd = [args.loadgen, "chart", *[arg for panel in panels for arg in ("--panel", panel)],
           "--title", f"ringtail soak, {args.duration} (restart at the middle)", "--out", str(out / "soak.svg")]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        print(f"chart not drawn: {done.stderr.strip()[-300:]}", file=sys.stderr)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", default="30m", help="e.g. 30m, 3m, 90s")
    parser.add_argument("--max-rate", type=float, help="max throughput in msgs/s (skips the probe)")
    parser.add_argument("--load-share", type=float, default=0.7)
    parser.add_argument("--probe-s", type=float, default=60, help="length of the flat-out probe (producer + consumer); its second half sets the max")
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
                final_rc, _ = broker.stop()
                print(f"broker stopped: exit {final_rc}")
    print(json.dumps(summary["verdict"], indent=2))
    sys.exit(0 if summary["verdict"]["ok"] else 1)


def soak(args, broker: Broker, duration_s: float, work: Path, out: Path) -> dict:
    create_topics(broker.bootstrap, args.partitions, args.load_retention_ms)
    max_rate = args.max_rate or find_max_rate(args, broker, work)
    rate = max_rate * args.load_share
    print(f"max {max_rate:.0f} msgs/s; soaking at {rate:.0f} msgs/s for {duration_s:.0f} s", flush=True)
    load_start = os.getloadavg()
    shared, figures = Shared(), Figures()
    t0 = time.monotonic()
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
                figures.samples.append(sample(broker, t0))
            except (FileNotFoundError, ProcessLookupError, StopIteration):
                pass  # the broker is restarting
            time.sleep(args.sample_s)
    threading.Thread(target=sampler, daemon=True).start()
    run_load(args, broker, rate, t0, t0 + duration_s, work, shared, figures, out)
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
    summary = {
        "command": " ".join(["scripts/soak.sh", *sys.argv[1:]]), "duration_s": duration_s,
        "max_rate_msgs_per_s": round(max_rate), "load_rate_msgs_per_s": round(rate), "load_share": args.load_share,
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "loadavg_start": load_start,
                    "loadavg_end": os.getloadavg()},
        "load": {"message_bytes": 1024, "partitions": args.partitions, "acks": "all", "flush": "every_batch",
                 "load_retention_ms": args.load_retention_ms, "segment_bytes": 1 << 20},
        "retention": load_watermarks(broker.bootstrap, args.partitions),
        **judge(args, figures, shared, check_compacted(broker.bootstrap, shared), duration_s),
    }
    reached = summary["steady_state"]["msgs_per_s_median"]
    # Whether the load ran at the rate it was meant to: an open-loop load that can't keep up
    # measures its own backlog, not the broker (reported, not judged).
    summary["steady_state"]["reached_share_of_target"] = round(reached / rate, 3) if reached else None
    figures.write(out)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    chart(args, out)
    return summary


def judge(args, figures: Figures, shared: Shared, compacted: dict, duration_s: float) -> dict:
    """The checks, the flatness verdict, and the restart window beside the steady state."""
    missing = sorted(shared.group_acked - shared.group_seen)
    chunk_rows = [c for c in figures.chunks if "chunk" in c]
    restarts = [c for c in figures.chunks if c.get("event") == "restart"]
    restarts_t_s = [r["t_s"] for r in restarts]
    # Retention deletes once segments are older than retention.ms and a check ran: until then,
    # after the start or the restart, segments and data grow by design.
    settle_s = args.load_retention_ms / 1000 + 2 * CLEANUP_CHECK_S
    flat = soak_verdict.flatness(figures.samples, chunk_rows, duration_s=duration_s, restarts_t_s=restarts_t_s,
                                 warmup_floor_s=settle_s, settle_s=settle_s)
    steady = soak_verdict.steady_chunks(chunk_rows, flat["windows"]["warmup_end_s"], restarts_t_s)
    steady_p99 = [c["load_p99_ms"] for c in steady if c.get("load_p99_ms") is not None]
    verdict = {"records_lost": len(missing), "client_errors": len(shared.errors), "compaction_ok": compacted["ok"],
               "flat": {k: v["ok"] for k, v in flat["series"].items()}}
    verdict["ok"] = (not missing and not shared.errors and compacted["ok"]
                     and all(v["ok"] is not False for v in flat["series"].values()))
    return {
        "loadgen": {"chunks": len(chunk_rows), "produced": sum(c.get("produced", 0) for c in chunk_rows),
                    "consumed": sum(c.get("consumed", 0) for c in chunk_rows)},
        "group": {"acknowledged": len(shared.group_acked), "read": len(shared.group_seen),
                  "missing": missing[:20], "members_joined": shared.members_joined,
                  "members_left": shared.members_left, "commits_failed": shared.commits_failed},
        "compacted": compacted,
        "errors": shared.errors[:20],
        "steady_state": {"chunks": len(steady), "load_p99_ms_median": soak_verdict.median(steady_p99),
                         "load_p99_ms_max": max(steady_p99, default=None),
                         "msgs_per_s_median": soak_verdict.median(
                             [c["msgs_per_s"] for c in steady if c.get("msgs_per_s") is not None])},
        "restart": [restart_window(r, chunk_rows) for r in restarts],
        "flatness": flat, "growth_bounds": soak_verdict.GROWTH_BOUNDS, "warmup_share": soak_verdict.WARMUP_SHARE,
        "verdict": verdict,
    }


def restart_window(restart: dict, chunks: list[dict]) -> dict:
    """A restart's timings and the chunks the verdict leaves out for it: their p99s, the
    loadgen's backlog peak and when it drained (seconds into the chunk; lag.csv has every second)."""
    after = sorted((c for c in chunks if c["t_s"] >= restart["t_s"]), key=lambda c: c["t_s"])
    keys = ("chunk", "t_s", "load_p99_ms", "e2e_p99_ms", "group_p99_ms", "lag_max_s", "drained_after_s")
    return {**restart, "chunks": [{k: c.get(k) for k in keys} for c in after[:soak_verdict.RESTART_CHUNKS]]}


if __name__ == "__main__":
    main()
