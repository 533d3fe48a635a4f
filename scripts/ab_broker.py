#!/usr/bin/env python3
"""Side-by-side broker measurements: variants alternate run by run, medians and ratios at the end.

Usage:
  python3 scripts/ab_broker.py [--reps N] [--loadgen ARGS] [--warm-frames-mb MB] \
      'base=/tmp/ringtail-base' 'change=target/release/ringtail --some-flag x' ...

Each variant is `label=BROKER_BINARY [broker flags...]`. Every run starts the broker on a fresh data
directory (under target/tmp), runs `ringtail-loadgen run` with the given arguments (`{data_dir}` in
them becomes that directory, e.g. `--evict-backlog-dir {data_dir}` for cold catch-up reads), reads the
broker's CPU time (utime + stime of all its threads, io-wq workers included) from /proc/<pid>/stat
before and after, stops the broker and deletes its data. Variants run in the order
A B C A B C ..., so slow drifts of a shared machine (other builds, page-cache state) hit them alike.

--loadgen-of LABEL=PATH runs that variant's load with another ringtail-loadgen binary (to measure
a change of the client itself against the same broker); the loadgen's own CPU is reported too.
--loadgen-args-of LABEL=ARGS appends ARGS to that variant's loadgen arguments: the same broker under
different loads, alternating (e.g. a producer alone, beside a hot reader, beside a cold one).

Each run also samples the machine once a second: over the seconds the data directory's disk read
more than 100 MB/s (a cold reader behind), the medians of its read MB/s, its busy share (1.0: I/O in
flight all the time) and the busy CPUs of the whole machine (2.0: both cores), so a slow catch-up
can be told to wait for the disk or for the cores.

Each broker also serves /metrics (on the next port), scraped just before it stops: the cold
writer's waits per chunk (for its read, for socket room) and the disk's cold read waits, as sums in
seconds and means per chunk in ms, say which stage held a catch-up reader back.

--warm-frames-mb writes and deletes a file of that size just before each run: the freed page
frames are then the ones the broker's page cache gets (see results/profile/README.md on why that
matters on this VM). Without it, runs see whatever the previous run freed. --warm-only limits it to
some variants (e.g. the same binary twice, cold and warm).

--return-memory-mb does the opposite, for every variant: just before each run a child process
touches that many MiB of anonymous memory and exits, then the run waits --return-memory-wait-s
(default 5) seconds. This VM hands free memory back to its host after about 2 s (free page
reporting), so the run starts on memory the host must fault in again, as after any large free on
such a VM (results/fixed-rate-returned-memory/).
"""

import argparse
import contextlib
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "scripts"))
from latency_goals import catch_up_mb_s  # noqa: E402
LOADGEN = os.path.join(REPO, "target/release/ringtail-loadgen")
DEFAULT_LOADGEN = (
    "--topic T --partitions 4 --message-bytes 1024 --duration-s 8 --producers 2 "
    "--consumers 0 --acks 1"
)


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3): utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_for_port(port, timeout_s=10.0):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"broker not listening on {port}")


def warm_frames(directory, megabytes):
    path = os.path.join(directory, "warm")
    chunk = b"\0" * (1 << 20)
    with open(path, "wb") as file:
        for _ in range(megabytes):
            file.write(chunk)
    os.unlink(path)


def return_memory(megabytes, wait_s):
    """Touches `megabytes` MiB of anonymous memory in a child that then exits, and waits while
    the guest reports the freed pages to its host."""
    subprocess.run(
        [sys.executable, "-c",
         "import sys\n"
         "b = bytearray(int(sys.argv[1]) << 20)\n"
         "for i in range(0, len(b), 4096): b[i] = 1\n",
         str(megabytes)],
        check=True)
    time.sleep(wait_s)


def block_device_stat(directory):
    """/sys path of the stat file of the block device holding `directory` (its partition's own
    counters if it is one), or None (tmpfs, overlay)."""
    device = os.stat(directory).st_dev
    path = f"/sys/dev/block/{os.major(device)}:{os.minor(device)}/stat"
    return path if os.path.exists(path) else None


class MachineSampler:
    """Samples, once a second while a run lasts, the disk's read and write MB/s and busy share
    (/sys/block/*/stat's io_ticks) and the whole machine's busy CPUs (/proc/stat): whether a
    catch-up reader is held back by the disk or by the two cores the broker and loadgen share. Also
    the CPUs stolen (/proc/stat's steal: the hypervisor ran something else on a vCPU with work),
    which disk reads on a busy guest cause here (results/reader-interference/)."""

    SECTOR_BYTES = 512

    def __init__(self, directory):
        self.disk = block_device_stat(directory)
        self.samples = []
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def read(self):
        with open("/proc/stat") as stat:
            cpu = [int(v) for v in stat.readline().split()[1:]]
        idle = cpu[3] + cpu[4]
        steal = cpu[7] if len(cpu) > 7 else 0
        disk = None
        if self.disk:
            with open(self.disk) as stat:
                fields = [int(v) for v in stat.read().split()]
            # read sectors, write sectors, io_ticks (ms the device had I/O in flight), reads
            # completed, ms those reads waited (summed over reads)
            disk = (fields[2], fields[6], fields[9], fields[0], fields[3])
        return time.monotonic(), sum(cpu), idle, disk, steal

    def run(self):
        last = self.read()
        while not self.stopping.wait(1.0):
            now = self.read()
            seconds = now[0] - last[0]
            ticks = now[1] - last[1]
            sample = {
                "cpus_busy": (ticks - (now[2] - last[2])) / ticks * os.cpu_count() if ticks else 0.0,
                "cpus_stolen": (now[4] - last[4]) / ticks * os.cpu_count() if ticks else 0.0,
            }
            if now[3] and last[3]:
                sample["read_mb_s"] = (now[3][0] - last[3][0]) * self.SECTOR_BYTES / seconds / 1e6
                sample["write_mb_s"] = (now[3][1] - last[3][1]) * self.SECTOR_BYTES / seconds / 1e6
                sample["disk_busy"] = (now[3][2] - last[3][2]) / 1000 / seconds
                reads = now[3][3] - last[3][3]
                if reads:
                    # The requests the device saw: their size tells how the reads were split.
                    sample["read_request_kib"] = (now[3][0] - last[3][0]) * self.SECTOR_BYTES / reads / 1024
                    sample["read_wait_ms"] = (now[3][4] - last[3][4]) / reads
            self.samples.append(sample)
            last = now

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        self.thread.join()

    def reading_seconds(self, read_mb_s_min=100.0):
        """Medians over the seconds the disk read more than `read_mb_s_min` (a cold reader behind)."""
        reading = [s for s in self.samples if s.get("read_mb_s", 0.0) > read_mb_s_min]
        if not reading:
            return {
                "disk_read_mb_s": 0.0,
                "disk_busy": 0.0,
                "cpus_busy_reading": 0.0,
                "cpus_stolen_reading": 0.0,
                "read_request_kib": 0.0,
                "read_wait_ms": 0.0,
            }
        return {
            "disk_read_mb_s": statistics.median(s["read_mb_s"] for s in reading),
            "read_request_kib": statistics.median(s.get("read_request_kib", 0.0) for s in reading),
            "read_wait_ms": statistics.median(s.get("read_wait_ms", 0.0) for s in reading),
            "disk_busy": statistics.median(s["disk_busy"] for s in reading),
            "cpus_busy_reading": statistics.median(s["cpus_busy"] for s in reading),
            "cpus_stolen_reading": statistics.median(s.get("cpus_stolen", 0.0) for s in reading),
        }


# /metrics histograms read after each run: (key prefix, series name with its labels).
WAIT_SERIES = [
    ("writer_read_wait", 'ringtail_fetch_cold_writer_wait_seconds{for="read"}'),
    ("writer_socket_wait", 'ringtail_fetch_cold_writer_wait_seconds{for="socket"}'),
    ("disk_read_wait", "ringtail_fetch_cold_read_wait_seconds"),
]


def scrape_waits(metrics_port):
    """Sum (s) and mean per observation (ms) of each of WAIT_SERIES, and the mean cold chunk
    read (KiB); zeros for a series the broker does not export (an older binary)."""
    url = f"http://127.0.0.1:{metrics_port}/metrics"
    text = urllib.request.urlopen(url, timeout=5).read().decode()
    values = dict(line.rpartition(" ")[::2] for line in text.splitlines())
    waits = {}
    for key, series in WAIT_SERIES:
        base, brace, labels = series.partition("{")
        sum_s = float(values.get(f"{base}_sum{brace}{labels}", 0))
        count = float(values.get(f"{base}_count{brace}{labels}", 0))
        waits[f"{key}_s"] = sum_s
        waits[f"{key}_mean_ms"] = sum_s / count * 1000 if count else 0.0
    # Bytes per cold chunk read: what the disk was asked for at a time.
    reads = float(values.get("ringtail_fetch_cold_read_wait_seconds_count", 0))
    cold_bytes = float(values.get("ringtail_fetch_cold_bytes_total", 0))
    waits["cold_chunk_mean_kib"] = cold_bytes / reads / 1024 if reads else 0.0
    # Cold bytes spliced because the cold read memory budget was full (the naive path's way).
    over_budget = float(values.get("ringtail_fetch_cold_over_budget_bytes_total", 0))
    waits["cold_over_budget_mb"] = over_budget / 1e6
    return waits


@contextlib.contextmanager
def broker_on(command, data, port, metrics=False):
    """A broker of `command` on the data dir `data` and `port` (with /metrics on port + 1 when
    `metrics`), once it listens; stopped, and its data dir removed, on exit."""
    metrics_args = ["--metrics-listen", f"127.0.0.1:{port + 1}"] if metrics else []
    broker = subprocess.Popen(
        command + ["--data-dir", data, "--listen", f"127.0.0.1:{port}"] + metrics_args,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        yield broker
    finally:
        broker.terminate()
        broker.wait()
        subprocess.run(["rm", "-rf", data], check=True)


def run_before(command, before_args, port, scratch, loadgen):
    """A loadgen run against a broker of its own (same command, fresh data dir), whose data is
    removed before the measured run starts: what the measured run inherits from a run before it
    (the freed page cache, memory handed back to the host, the disk's writeback)."""
    with broker_on(command, tempfile.mkdtemp(dir=scratch, prefix="ab-before-"), port):
        subprocess.run(
            [loadgen, "run", "--bootstrap", f"127.0.0.1:{port}", "--quiet"] + before_args,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def one_run(variant, loadgen_args, port, scratch, warm_mb, loadgen=LOADGEN, returned=None,
            before_args=None):
    label, command = variant
    if before_args:
        run_before(command, before_args, port, scratch, loadgen)
    data = tempfile.mkdtemp(dir=scratch, prefix=f"ab-{label}-")
    if warm_mb:
        warm_frames(scratch, warm_mb)
    if returned:
        return_memory(*returned)
    with broker_on(command, data, port, metrics=True) as broker:
        report_path = os.path.join(data, "report.json")
        before = cpu_seconds(broker.pid)
        with MachineSampler(data) as machine:
            subprocess.run(
                [loadgen, "run", "--bootstrap", f"127.0.0.1:{port}", "--quiet", "--json", report_path]
                + [arg.replace("{data_dir}", data) for arg in loadgen_args],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        after = cpu_seconds(broker.pid)
        try:
            waits = scrape_waits(port + 1)
        except (OSError, ValueError) as error:
            # The run's other figures still count; its waits read as zeros.
            print(f"# {label}: /metrics not scraped ({error}); its waits are zeros", file=sys.stderr)
            waits = {f"{key}{suffix}": 0.0 for key, _ in WAIT_SERIES for suffix in ("_s", "_mean_ms")}
            waits["cold_chunk_mean_kib"] = 0.0
            waits["cold_over_budget_mb"] = 0.0
        with open(report_path) as file:
            report = json.load(file)
    produce = report["produce"]
    consume = report.get("consume") or {}
    moved_bytes = produce["bytes"] + consume.get("bytes", 0)
    return {
        "label": label,
        "produce_mb_s": produce["mb_per_s"],
        "produce_p50_ms": produce["latency_us"]["p50"] / 1000,
        "produce_p99_ms": produce["latency_us"]["p99"] / 1000,
        "produce_p999_ms": produce["latency_us"]["p999"] / 1000,
        # The loadgen's split of that latency (zeros from a loadgen without it).
        "send_wait_p50_ms": produce.get("send_wait_us", {}).get("p50", 0) / 1000,
        "send_wait_p99_ms": produce.get("send_wait_us", {}).get("p99", 0) / 1000,
        "round_trip_p50_ms": produce.get("request_round_trip_us", {}).get("p50", 0) / 1000,
        "round_trip_p99_ms": produce.get("request_round_trip_us", {}).get("p99", 0) / 1000,
        "consume_mb_s": consume.get("mb_per_s", 0.0),
        # A catch-up reader's speed while behind (the run's mean counts the live rate after it).
        "catch_up_mb_s": (catch_up_mb_s(report) or 0.0) if consume else 0.0,
        "broker_cpu_s": after - before,
        "cpu_s_per_gb": (after - before) / (moved_bytes / 1e9),
        "loadgen_cpu_s": report.get("loadgen_cpu_s", 0.0),
        **machine.reading_seconds(),
        **waits,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--loadgen", default=DEFAULT_LOADGEN, help="ringtail-loadgen run arguments")
    parser.add_argument("--port", type=int, default=29190)
    parser.add_argument("--warm-frames-mb", type=int, default=0)
    parser.add_argument("--return-memory-mb", type=int, default=0,
                        help="touch and free this much anonymous memory before each run")
    parser.add_argument("--return-memory-wait-s", type=float, default=5.0,
                        help="with --return-memory-mb: seconds to wait after the free (default 5)")
    parser.add_argument("--warm-only", help="comma list of the variants that get warm frames (default: all)")
    parser.add_argument("--out", help="append each run as a JSON line here")
    parser.add_argument(
        "--loadgen-of",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="the ringtail-loadgen binary for one variant (default: target/release's)",
    )
    parser.add_argument(
        "--loadgen-args-of",
        action="append",
        default=[],
        metavar="LABEL=ARGS",
        help="ringtail-loadgen arguments added for one variant (after --loadgen's)",
    )
    parser.add_argument(
        "--before-of",
        action="append",
        default=[],
        metavar="LABEL=ARGS",
        help="for one variant, a ringtail-loadgen run with these arguments against a broker of"
        " its own just before each measured run, its data removed before the measured run starts",
    )
    parser.add_argument("variants", nargs="+", help="label=BROKER_BINARY [flags...]")
    args = parser.parse_args()
    if args.reps < 1:
        parser.error("--reps must be at least 1")

    variants = []
    for text in args.variants:
        label, _, command = text.partition("=")
        variants.append((label, shlex.split(command)))
    loadgen_args = shlex.split(args.loadgen)
    labels = {name for name, _ in variants}

    def per_variant(option, texts, value_of):
        """LABEL=VALUE options of one variant each, as {label: value_of(VALUE)}."""
        values = {}
        for text in texts:
            label, _, value = text.partition("=")
            if label not in labels or not value:
                parser.error(f"{option} {text}: expected LABEL=VALUE for one of the variants")
            values[label] = value_of(value)
        return values

    loadgens = per_variant("--loadgen-of", args.loadgen_of, str)
    extra_args = per_variant("--loadgen-args-of", args.loadgen_args_of, shlex.split)
    befores = per_variant("--before-of", args.before_of, shlex.split)
    scratch = os.path.join(REPO, "target/tmp")
    os.makedirs(scratch, exist_ok=True)

    print(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} loadgen: {args.loadgen}")
    for label, extra in extra_args.items():
        print(f"#   {label}: + {shlex.join(extra)}")
    for label, before in befores.items():
        print(f"#   {label}: each run after a run of its own: {shlex.join(before)}")
    if args.return_memory_mb and args.warm_frames_mb:
        parser.error("--return-memory-mb undoes --warm-frames-mb: use one of them")
    if args.return_memory_mb:
        print(f"# before each run: {args.return_memory_mb} MiB of anonymous memory touched and freed,"
              f" then {args.return_memory_wait_s:g} s for the guest to hand it back")
    runs = []
    for rep in range(args.reps):
        for variant in variants:
            warm_mb = args.warm_frames_mb
            if args.warm_only and variant[0] not in args.warm_only.split(","):
                warm_mb = 0
            loadgen = loadgens.get(variant[0], LOADGEN)
            variant_args = loadgen_args + extra_args.get(variant[0], [])
            returned = ((args.return_memory_mb, args.return_memory_wait_s)
                        if args.return_memory_mb else None)
            run = one_run(variant, variant_args, args.port, scratch, warm_mb, loadgen, returned,
                          befores.get(variant[0]))
            run["rep"] = rep
            run["returned_memory_mb"] = args.return_memory_mb
            runs.append(run)
            print(
                f"rep {rep} {run['label']:>10}: produce {run['produce_mb_s']:7.1f} MB/s"
                f" p99 {run['produce_p99_ms']:7.2f} ms (send wait p50/p99"
                f" {run['send_wait_p50_ms']:.2f}/{run['send_wait_p99_ms']:.2f}, round trip"
                f" {run['round_trip_p50_ms']:.2f}/{run['round_trip_p99_ms']:.2f}),"
                f" consume {run['consume_mb_s']:7.1f} MB/s"
                f" ({run['catch_up_mb_s']:7.1f} while behind),"
                f" broker {run['broker_cpu_s']:5.2f} CPU-s = {run['cpu_s_per_gb']:.3f} s/GB,"
                f" loadgen {run['loadgen_cpu_s']:5.2f} CPU-s;"
                f" while the disk read: {run['disk_read_mb_s']:6.1f} MB/s,"
                f" disk busy {run['disk_busy']:.2f}, read requests {run['read_request_kib']:.0f} KiB"
                f" waiting {run['read_wait_ms']:.2f} ms, CPUs busy {run['cpus_busy_reading']:.2f}"
                f" (stolen {run.get('cpus_stolen_reading', 0.0):.2f});"
                f" cold writer waited {run['writer_read_wait_s']:.1f} s for reads"
                f" ({run['writer_read_wait_mean_ms']:.2f} ms/chunk),"
                f" {run['writer_socket_wait_s']:.1f} s for the socket"
                f" ({run['writer_socket_wait_mean_ms']:.2f} ms/chunk), chunks of"
                f" {run['cold_chunk_mean_kib']:.0f} KiB,"
                f" {run.get('cold_over_budget_mb', 0.0):.0f} MB spliced over the memory budget",
                flush=True,
            )
            if args.out:
                with open(args.out, "a") as file:
                    file.write(json.dumps(run) + "\n")

    keys = [
        "produce_mb_s",
        "produce_p50_ms",
        "produce_p99_ms",
        "produce_p999_ms",
        "send_wait_p50_ms",
        "send_wait_p99_ms",
        "round_trip_p50_ms",
        "round_trip_p99_ms",
        "consume_mb_s",
        "catch_up_mb_s",
        "cpu_s_per_gb",
        "loadgen_cpu_s",
        "disk_read_mb_s",
        "disk_busy",
        "read_request_kib",
        "read_wait_ms",
        "cpus_busy_reading",
        "cpus_stolen_reading",
        "writer_read_wait_s",
        "writer_read_wait_mean_ms",
        "writer_socket_wait_s",
        "writer_socket_wait_mean_ms",
        "disk_read_wait_mean_ms",
        "cold_chunk_mean_kib",
        "cold_over_budget_mb",
    ]
    medians = {
        label: {key: statistics.median(r[key] for r in runs if r["label"] == label) for key in keys}
        for label, _ in variants
    }
    base = variants[0][0]
    print(f"\nmedians of {args.reps} (ratio to {base}):")
    for label, _ in variants:
        parts = []
        for key in keys:
            value, reference = medians[label][key], medians[base][key]
            ratio = value / reference if reference else float("nan")
            parts.append(f"{key} {value:.3f} ({ratio:.2f}x)")
        print(f"  {label:>10}: " + ", ".join(parts))


if __name__ == "__main__":
    sys.exit(main())
