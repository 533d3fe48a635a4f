#!/usr/bin/env python3
"""Where a Produce request's time goes in the broker, under an independent client (issue 13, part 2).

Starts `ringtail` (defaults, fresh data dir, a metrics listener), drives it with the same paced
confluent-kafka producer as scripts/bench_client_latency.py (acks=1, linger.ms=0, 1 KiB records
over --partitions partitions, at --rate records/s), and reads `ringtail_produce_stage_seconds`
from /metrics before and after the run (with the loadgen client, over its last --duration-s
seconds only: snapshots every 0.5 s leave out the backlog written before them). Prints, per
stage, the requests, the mean and the bucket bounds under which 50% and 99% fell (the histogram's buckets, 1-2.5-5 steps), beside the client's
own view (delivery latency and librdkafka's broker round trip).

With `--client loadgen` the load is `ringtail-loadgen run` at the same rate instead (1 KiB, acks=1,
its own batching: the `fixed-rate-latency` scenario's client), and the client's figures are the
loadgen's. `--catch-up-backlog-bytes N` (loadgen client only) adds the `cold-catch-up` scenario's
reader: the loadgen first writes an N-byte backlog, drops the broker's files from the page cache,
and one consumer reads from offset 0 while the producer runs at its rate.

Usage: python3 scripts/produce_stages.py [--rate 50000] [--duration-s 15] [--warmup-s 5] [--partitions 8]
           [--client librdkafka|loadgen] [--linger-ms MS] [--catch-up-backlog-bytes N] [--ringtail-arg ARG ...]
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_client_latency import librdkafka_paced  # noqa: E402
from bench_kafka_tools import ROOT, free_port  # noqa: E402

STAGE = "ringtail_produce_stage_seconds"
LINE = re.compile(STAGE + r'_(bucket|sum|count)\{stage="([^"]+)"(?:,le="([^"]+)")?\} (\S+)')


def scrape(metrics_port: int) -> dict:
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    stages: dict = {}
    for kind, stage, le, value in LINE.findall(text):
        entry = stages.setdefault(stage, {"buckets": [], "sum": 0.0, "count": 0})
        if kind == "bucket":
            entry["buckets"].append((float("inf") if le == "+Inf" else float(le), float(value)))
        elif kind == "sum":
            entry["sum"] = float(value)
        else:
            entry["count"] = int(float(value))
    return stages


def quantile_bound(buckets: list[tuple[float, float]], fraction: float) -> float | None:
    """The smallest bucket bound holding `fraction` of the counts (cumulative buckets)."""
    total = buckets[-1][1] if buckets else 0
    if not total:
        return None
    return next(le for le, cumulative in buckets if cumulative >= fraction * total)


def delta(after: dict, before: dict) -> dict:
    out = {}
    for stage, entry in after.items():
        prior = before.get(stage, {"buckets": [(le, 0.0) for le, _ in entry["buckets"]], "sum": 0.0, "count": 0})
        buckets = [(le, n - m) for (le, n), (_, m) in zip(entry["buckets"], prior["buckets"])]
        out[stage] = {"buckets": buckets, "sum": entry["sum"] - prior["sum"], "count": entry["count"] - prior["count"]}
    return out


def ms(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    return "> max" if seconds == float("inf") else f"≤ {seconds * 1000:g}"


class Snapshots:
    """The stage histograms scraped every `interval_s` while a run goes on, so the stages of its
    measured window can be told from those of what came before it (the catch-up backlog, written
    flat out before the producer's paced seconds begin)."""

    def __init__(self, metrics_port: int, interval_s: float = 0.5):
        self.metrics_port, self.interval_s = metrics_port, interval_s
        self.taken: list[tuple[float, dict]] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.taken.append((time.monotonic(), scrape(self.metrics_port)))
            self.stop.wait(self.interval_s)

    def finish(self) -> None:
        self.stop.set()
        self.thread.join()

    def at_or_before(self, at: float) -> dict:
        """The last snapshot taken at or before `at` (the first one if none was)."""
        earlier = [stages for taken_at, stages in self.taken if taken_at <= at]
        return earlier[-1] if earlier else self.taken[0][1]


class Ringtail:
    def __init__(self, work: Path, extra_args: list[str]):
        self.port, self.metrics_port = free_port(), free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.data_dir = work / "data"
        self.proc = subprocess.Popen(
            [str(ROOT / "target/release/ringtail"), "--listen", self.bootstrap,
             "--metrics-listen", f"127.0.0.1:{self.metrics_port}", "--data-dir", str(self.data_dir),
             *extra_args],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    sys.exit("ringtail did not start")
                time.sleep(0.1)


def loadgen_paced(broker: Ringtail, args, topic: str) -> dict:
    """The loadgen's open-loop producer at `args.rate`: its own latency percentiles."""
    if args.catch_up_backlog_bytes:
        reader = ["--consumers", "1", "--start-from", "earliest", "--backlog-bytes",
                  str(args.catch_up_backlog_bytes), "--evict-backlog-dir", str(broker.data_dir)]
    else:
        reader = ["--consumers", "0"]
    with tempfile.NamedTemporaryFile(suffix=".json") as report_file:
        subprocess.run(
            [str(ROOT / "target/release/ringtail-loadgen"), "run", "--bootstrap", broker.bootstrap,
             "--quiet", "--json", report_file.name, "--topic", topic,
             "--partitions", str(args.partitions), "--message-bytes", "1024", *reader,
             "--acks", "1", "--rate", str(args.rate), "--duration-s", str(args.duration_s),
             *(["--linger-ms", str(args.linger_ms)] if args.linger_ms is not None else []),
             "--warmup-s", str(args.warmup_s)],
            check=True, stdout=subprocess.DEVNULL)
        report = json.load(open(report_file.name))
    latency = report["produce"]["latency_us"]
    figures = {"records_per_s": report["produce"]["msgs_per_s"], "p50_ms": latency["p50"] / 1000,
               "p99_ms": latency["p99"] / 1000, "p999_ms": latency["p999"] / 1000}
    # Where the client's latency went: before the request left (linger, batching, a late
    # producer thread) and the request's round trip (network and broker).
    for name, key in (("send_wait", "send_wait_us"), ("round_trip", "request_round_trip_us"),
                      ("write", "request_write_us")):
        part = report["produce"][key]
        figures.update({f"{name}_p50_ms": part["p50"] / 1000, f"{name}_p99_ms": part["p99"] / 1000,
                        f"{name}_p999_ms": part["p999"] / 1000})
    if args.catch_up_backlog_bytes:
        figures["consume_mb_per_s"] = report["consume"]["mb_per_s"]
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--duration-s", type=int, default=15)
    parser.add_argument("--warmup-s", type=int, default=5)
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--client", choices=["librdkafka", "loadgen"], default="librdkafka")
    parser.add_argument("--linger-ms", type=float, default=None,
                        help="the loadgen client's linger (its default, 1 ms, if not given)")
    parser.add_argument("--catch-up-backlog-bytes", type=int, default=0,
                        help="loadgen client only: a consumer catching up from offset 0 of this evicted backlog")
    parser.add_argument("--ringtail-arg", action="append", default=[],
                        help="an extra argument for ringtail (repeat for each)")
    args = parser.parse_args()
    if args.catch_up_backlog_bytes and args.client != "loadgen":
        parser.error("--catch-up-backlog-bytes needs --client loadgen")
    with tempfile.TemporaryDirectory(prefix="produce-stages-", dir="/var/tmp") as work:
        broker = Ringtail(Path(work), args.ringtail_arg)
        try:
            topic = "stages"
            if args.client == "librdkafka":
                from confluent_kafka.admin import AdminClient, NewTopic

                admin = AdminClient({"bootstrap.servers": broker.bootstrap})
                admin.create_topics([NewTopic(topic, args.partitions, 1)])[topic].result(30)
            before = scrape(broker.metrics_port)
            if args.client == "librdkafka":
                client = librdkafka_paced(broker, args, topic)
            else:
                # The loadgen's measured seconds are its last --duration-s (after the backlog, its
                # eviction and the warm-up): the stages are taken over those only.
                snapshots = Snapshots(broker.metrics_port)
                try:
                    client = loadgen_paced(broker, args, topic)
                finally:
                    snapshots.finish()
                before = snapshots.at_or_before(time.monotonic() - args.duration_s)
            stages = delta(scrape(broker.metrics_port), before)
        finally:
            broker.proc.terminate()
            broker.proc.wait(30)
    print(f"`python3 scripts/produce_stages.py --rate {args.rate} --duration-s {args.duration_s} "
          f"--warmup-s {args.warmup_s} --partitions {args.partitions} --client {args.client}"
          + (f" --catch-up-backlog-bytes {args.catch_up_backlog_bytes}" if args.catch_up_backlog_bytes else "")
          + (f" --linger-ms {args.linger_ms:g}" if args.linger_ms is not None else "")
          + "".join(f" --ringtail-arg={arg}" for arg in args.ringtail_arg) + "` "
          f"({time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())})\n")
    if args.client == "librdkafka":
        print(f"Client: {client['records_per_s']:.0f} records/s, delivery p50 {client['p50_ms']:.2f} ms, "
              f"p99 {client['p99_ms']:.2f} ms; librdkafka broker rtt p50 {client['rtt_p50_ms_median_window']:.2f} ms, "
              f"p99 {client['rtt_p99_ms_median_window']:.2f} ms (median of 1 s windows); errors {client['errors']}.\n")
    else:
        print(f"Client (ringtail-loadgen): {client['records_per_s']:.0f} records/s, produce latency "
              f"p50 {client['p50_ms']:.2f}, p99 {client['p99_ms']:.2f}, p99.9 {client['p999_ms']:.2f} ms"
              + (f"; catch-up reader {client['consume_mb_per_s']:.0f} MB/s (whole run)" if "consume_mb_per_s" in client else "")
              + f". Of that, per message before its request left (linger, batching): p50 "
              f"{client['send_wait_p50_ms']:.2f}, p99 {client['send_wait_p99_ms']:.2f}, p99.9 "
              f"{client['send_wait_p999_ms']:.2f} ms; per request, its round trip: p50 "
              f"{client['round_trip_p50_ms']:.2f}, p99 {client['round_trip_p99_ms']:.2f}, p99.9 "
              f"{client['round_trip_p999_ms']:.2f} ms, of which writing it into the socket p99 "
              f"{client['write_p99_ms']:.2f}, p99.9 {client['write_p999_ms']:.2f} ms.\n")
    print("| stage | count | mean ms | p50 ms | p99 ms | p99.9 ms |\n|---|---:|---:|---:|---:|---:|")
    for stage, entry in stages.items():
        mean = entry["sum"] / entry["count"] * 1000 if entry["count"] else 0.0
        print(f"| {stage} | {entry['count']} | {mean:.3f} | {ms(quantile_bound(entry['buckets'], 0.5))} "
              f"| {ms(quantile_bound(entry['buckets'], 0.99))} | {ms(quantile_bound(entry['buckets'], 0.999))} |")


if __name__ == "__main__":
    main()
