#!/usr/bin/env python3
"""Produce stalls from block allocation: a fixed-rate producer with the file system's allocator cold.

Each repetition runs every variant once (alternating, order A B A B ...): a fresh broker on a fresh
data directory, then `ringtail-loadgen run` at a fixed rate (the fixed-rate-latency scenario's
shape: 1 producer, 4 partitions, 1 KiB messages, acks=1, linger 1 ms). With --cold (the default),
each run starts after `sync; echo 3 > /proc/sys/vm/drop_caches`: ext4's block bitmaps and buddy
cache leave memory, as after a boot or under memory pressure, so the allocator reads them from
disk. With --warm, the same without the drop.

While the load runs, a sampler reads every 50 ms the kernel stack of each thread in
uninterruptible sleep (state D, /proc/<pid>/task/<tid>/stack: needs root) and the disk's requests
in flight. The report counts, per variant, the samples of each stack (innermost frames first): a
stall names the kernel function it waited in.

Writes OUT/README.md (the tables and the command) and OUT/runs.json (every run's figures).

Usage: python3 scripts/allocation_stalls.py [--reps 5] [--rate 240000] [--warm] \
           [--out results/allocation-stalls] 'default=' 'preallocate=--preallocate true' ...
Each variant is LABEL=BROKER_FLAGS (the release build's ringtail). Needs root and
cargo build --release -p ringtail-server -p ringtail-loadgen.
"""

import argparse
import collections
import datetime
import json
import os
import shlex
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BROKER = ROOT / "target/release/ringtail"
LOADGEN = ROOT / "target/release/ringtail-loadgen"
SAMPLE_PERIOD_S = 0.05
# Innermost frames kept per stack; STACK_FRAMES=16 shows which syscall an allocator wait is under.
STACK_FRAMES = int(os.environ.get("STACK_FRAMES", "8"))
# A run whose longest produce latency passed this stalled (the runs that did not stay under 40 ms).
STALL_MS = 100


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"the broker never listened on {port}")


def blocked_stacks():
    """(thread name, innermost frames) of every thread in state D on the machine."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                    text = stat.read()
                if text[text.rindex(")") + 2] != "D":
                    continue
                name = text[text.index("(") + 1:text.rindex(")")]
                with open(f"/proc/{pid}/task/{tid}/stack") as stack:
                    frames = [line.split(" ", 1)[-1].split("+")[0] for line in stack if line.strip()]
                found.append((name, frames[:STACK_FRAMES]))
        except (OSError, ValueError):
            continue
    return found


def thread_kind(name):
    """Groups threads: an io_uring worker's name carries its pid, a kworker's its queue."""
    for prefix in ("iou-wrk", "kworker", "jbd2", "shard"):
        if name.startswith(prefix):
            return prefix
    return name


class Sampler(threading.Thread):
    """Samples blocked kernel stacks until stopped."""

    def __init__(self):
        super().__init__(daemon=True)
        self.stop_event = threading.Event()
        self.stacks = collections.Counter()
        self.samples = 0

    def run(self):
        while not self.stop_event.is_set():
            started = time.monotonic()
            self.samples += 1
            for name, frames in blocked_stacks():
                if frames:
                    self.stacks[(thread_kind(name), " < ".join(frames))] += 1
            self.stop_event.wait(max(0.0, SAMPLE_PERIOD_S - (time.monotonic() - started)))


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(label, flags, args, work):
    if not args.warm:
        subprocess.run(["sync"], check=True)
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    data = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))
    port = free_port()
    broker = subprocess.Popen(
        [str(BROKER), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data / "data"), *flags],
        stdout=subprocess.DEVNULL, stderr=open(data / "broker.log", "w"))
    try:
        wait_for_port(port)
        report = data / "report.json"
        sampler = Sampler()
        sampler.start()
        cpu_before = cpu_seconds(broker.pid)
        subprocess.run(
            [str(LOADGEN), "run", "--bootstrap", f"127.0.0.1:{port}", "--topic", "stalls",
             "--partitions", "4", "--message-bytes", "1024", "--producers", "1",
             "--rate", str(args.rate), "--acks", "1", "--linger-ms", "1",
             "--batch-bytes", "1048576", "--duration-s", str(args.duration_s),
             "--warmup-s", "2", "--broker-pid", str(broker.pid), "--json", str(report),
             "--quiet"],
            check=True, stdout=subprocess.DEVNULL)
        broker_cpu_s = cpu_seconds(broker.pid) - cpu_before
        sampler.stop_event.set()
        sampler.join()
        latency = json.loads(report.read_text())["produce"]["latency_us"]
    finally:
        broker.terminate()
        broker.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)
    return {
        "variant": label,
        "p50_ms": latency["p50"] / 1000,
        "p99_ms": latency["p99"] / 1000,
        "p999_ms": latency["p999"] / 1000,
        "max_ms": latency["max"] / 1000,
        "broker_cpu_s": round(broker_cpu_s, 2),
        "samples": sampler.samples,
        "blocked": [[kind, stack, count] for (kind, stack), count in sampler.stacks.most_common()],
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--rate", type=int, default=240_000, help="messages/s")
    parser.add_argument("--duration-s", type=int, default=10)
    parser.add_argument("--warm", action="store_true", help="do not drop the caches before a run")
    parser.add_argument("--out", default="results/allocation-stalls")
    parser.add_argument("--report-only", action="store_true",
                        help="write README.md again from OUT/runs.json (same arguments)")
    parser.add_argument("variants", nargs="+", help="LABEL=BROKER_FLAGS")
    args = parser.parse_args()
    if args.report_only:
        variants = [(spec.partition("=")[0], []) for spec in args.variants]
        out = ROOT / args.out
        runs = json.loads((out / "runs.json").read_text())
        # The measured run's provenance (command, time, commit) stays.
        made_by = next(line for line in (out / "README.md").read_text().splitlines()
                       if line.startswith("Made by"))
        text = report(args, variants, runs).splitlines()
        text[2] = made_by
        (out / "README.md").write_text("\n".join(text) + "\n")
        return
    if os.geteuid() != 0:
        raise SystemExit("needs root: it drops the caches and reads kernel stacks")
    variants = []
    for spec in args.variants:
        label, _, flags = spec.partition("=")
        variants.append((label, shlex.split(flags)))
    out = ROOT / args.out
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="allocation-stalls-", dir="/var/tmp"))
    runs = []
    try:
        for rep in range(args.reps):
            for label, flags in variants:
                run = one_run(label, flags, args, work)
                run["rep"] = rep + 1
                runs.append(run)
                print(f"rep {rep + 1} {label}: p99 {run['p99_ms']:.1f} ms, max {run['max_ms']:.1f} ms",
                      file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out / "runs.json").write_text(json.dumps(runs, indent=1) + "\n")
    (out / "README.md").write_text(report(args, variants, runs))
    print((out / "README.md").read_text())


def report(args, variants, runs):
    command = "python3 scripts/allocation_stalls.py " + " ".join(
        shlex.quote(arg) for arg in sys.argv[1:])
    lines = [
        "# Produce stalls from block allocation",
        "",
        f"Made by `{command}` ({datetime.datetime.now(datetime.timezone.utc):%Y-%m-%dT%H:%MZ}, "
        f"commit {git_describe()}, {os.cpu_count()} cores shared by broker and load generator).",
        f"{args.reps} repetitions, variants alternating; each run a fresh broker and data directory, "
        f"{args.rate} msg/s of 1 KiB to 4 partitions for {args.duration_s} s after 2 s of warm-up; "
        + ("caches kept (`--warm`)." if args.warm else
           "before each run `sync; echo 3 > /proc/sys/vm/drop_caches` (the allocator's bitmaps cold)."),
        "",
        f"A run stalled when its longest produce latency passed {STALL_MS} ms.",
        "",
        "| variant | runs stalled | p50 ms | p99 ms (runs) | p99.9 ms | max ms (runs) | broker CPU s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    medians = {}
    for label, _ in variants:
        mine = [run for run in runs if run["variant"] == label]
        median = {key: statistics.median(run[key] for run in mine)
                  for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "broker_cpu_s")}
        medians[label] = median
        p99s = ", ".join(f"{run['p99_ms']:.1f}" for run in mine)
        maxes = ", ".join(f"{run['max_ms']:.0f}" for run in mine)
        stalled = sum(run["max_ms"] > STALL_MS for run in mine)
        lines.append(f"| {label} | {stalled} of {len(mine)} | {median['p50_ms']:.2f} | {median['p99_ms']:.1f} ({p99s}) | "
                     f"{median['p999_ms']:.1f} | {median['max_ms']:.0f} ({maxes}) | "
                     f"{median['broker_cpu_s']:.2f} |")
    base = variants[0][0]
    lines += ["", f"Medians' ratios to `{base}`:", ""]
    for label, _ in variants[1:]:
        ratios = ", ".join(
            f"{key.removesuffix('_ms').removesuffix('_s')} "
            f"{medians[label][key] / medians[base][key]:.2f}x"
            for key in ("p50_ms", "p99_ms", "p999_ms", "max_ms", "broker_cpu_s")
            if medians[base][key])
        lines.append(f"- `{label}`: {ratios}")
    lines += ["", "## Where threads waited",
              "",
              f"Samples (every {int(SAMPLE_PERIOD_S * 1000)} ms, all runs of a variant) of threads "
              "in uninterruptible sleep, by kernel stack (innermost first). The loadgen's own "
              "socket waits are left out.", ""]
    for label, _ in variants:
        counts = collections.Counter()
        samples = sum(run["samples"] for run in runs if run["variant"] == label)
        for run in runs:
            if run["variant"] == label:
                for kind, stack, count in run["blocked"]:
                    if kind.startswith("produce") or "tcp_recvmsg" in stack:
                        continue
                    counts[(kind, stack)] += count
        lines += [f"### {label} ({samples} samples)", ""]
        if not counts:
            lines += ["No thread of the machine was seen in state D.", ""]
            continue
        lines += ["| samples | thread | stack |", "|---:|---|---|"]
        for (kind, stack), count in counts.most_common(10):
            lines.append(f"| {count} | {kind} | `{stack}` |")
        lines.append("")
    return "\n".join(lines) + "\n"


def git_describe():
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                              capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


if __name__ == "__main__":
    main()
