#!/usr/bin/env python3
"""What a cold catch-up reader does to a live producer, taken apart (issue 13).

The producer is `cold-catch-up-alone`'s: `ringtail-loadgen run` at 50,000 msg/s of 1 KiB over 8
partitions, acks=1, 10 s measured after 2 s of warm-up, on a fresh `ringtail` (its defaults).
Beside it, one disturbance per variant, started just before the producer and outlasting it:

- `alone`: nothing.
- `disk`: fio reading a file sequentially with O_DIRECT through io_uring (4 MiB reads, 2 in
  flight, as the broker's cold reads), on the data directory's file system: the reader's disk
  reads without a broker, a network or a client. As fast as the disk goes, or --disk-mb-s.
- `loopback`: a sender and a receiver moving --loopback-mb-s over a loopback TCP connection, from
  and into reused buffers: the reader's network copies without a disk.
- `disk+loopback`: both at once.
- `cold-reader`: the broker's own catch-up reader, as in `cold-catch-up`: the loadgen writes a
  --backlog-bytes backlog first, drops it from the page cache, and one consumer reads from offset
  0 while the producer runs.
- `cold-reader-elsewhere`: the same reader, but of a second `ringtail` (its own data directory on
  the same disk) started at SCHED_IDLE: all of the reader's work, the broker's part included, at
  idle priority and in other threads than the producer's broker.

Every disturbance (fio, the loopback pair, the cold reader's whole loadgen) runs at SCHED_IDLE,
so inside the guest it gets a core only when the producer's and the broker's threads leave one
free: what is left of its harm is not the guest's scheduling. Per run, /proc/stat over the
producer's run gives the machine's steal, iowait, softirq and busy shares of its CPUs (steal: time
the hypervisor ran something else on a vCPU that had work).

Variants alternate run by run (alone, disk, loopback, disk+loopback, cold-reader, alone, ...).
Writes one JSON line per run to --out and prints medians per variant.

Usage: python3 scripts/reader_interference.py [--reps 3] [--out runs.jsonl]
           [--variants alone,disk,loopback,disk+loopback,cold-reader,cold-reader-elsewhere]
           [--backlog-bytes 12000000000]
Needs: target/release/ringtail and ringtail-loadgen (cargo build --release), fio, chrt.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_kafka_tools import ROOT, free_port  # noqa: E402

BROKER = ROOT / "target/release/ringtail"
LOADGEN = ROOT / "target/release/ringtail-loadgen"
VARIANTS = ["alone", "disk", "loopback", "disk+loopback", "cold-reader", "cold-reader-elsewhere"]
PRODUCER = ["--topic", "T", "--partitions", "8", "--message-bytes", "1024", "--acks", "1",
            "--rate", "50000", "--duration-s", "10", "--warmup-s", "2"]
# Each disturbance outlasts the producer's 12 s.
DISTURB_S = 15
FIO_FILE_BYTES = 8 << 30
STAT_FIELDS = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]

# The loopback pair, run as its own process at SCHED_IDLE: the sender paces itself to the rate.
LOOPBACK_PAIR = r"""
import socket, sys, threading, time
seconds, rate = float(sys.argv[1]), float(sys.argv[2]) * 1e6
server = socket.create_server(("127.0.0.1", 0))
received = [0]
def receive():
    conn, _ = server.accept()
    view = memoryview(bytearray(4 << 20))
    while (n := conn.recv_into(view)):
        received[0] += n
thread = threading.Thread(target=receive)
thread.start()
sender = socket.create_connection(server.getsockname())
piece = bytes(256 << 10)
start, sent = time.monotonic(), 0
while time.monotonic() - start < seconds:
    sender.sendall(piece)
    sent += len(piece)
    ahead = sent / rate - (time.monotonic() - start)
    if ahead > 0:
        time.sleep(ahead)
sender.close()
thread.join()
print(received[0] / (time.monotonic() - start) / 1e6)
"""


def cpu_ticks() -> list[int]:
    with open("/proc/stat") as stat:
        return [int(v) for v in stat.readline().split()[1:9]]


def shares(before: list[int], after: list[int]) -> dict:
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta)
    if total <= 0:
        return {name: 0.0 for name in [*STAT_FIELDS, "busy"]}
    share = {name: d / total for name, d in zip(STAT_FIELDS, delta)}
    share["busy"] = 1.0 - share["idle"] - share["iowait"]
    return share


def start_broker(data_dir: Path, idle: bool = False) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [str(BROKER), "--listen", f"127.0.0.1:{port}", "--data-dir", str(data_dir)]
    if idle:
        command = ["chrt", "--idle", "0", *command]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return proc, f"127.0.0.1:{port}"
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                sys.exit("ringtail did not start")
            time.sleep(0.1)


def loadgen(bootstrap: str, json_path: Path, extra: list[str], idle: bool = False) -> subprocess.Popen:
    command = [str(LOADGEN), "run", "--bootstrap", bootstrap, "--quiet", "--json", str(json_path), *extra]
    if idle:
        command = ["chrt", "--idle", "0", *command]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def finished(proc: subprocess.Popen, what: str) -> None:
    _, err = proc.communicate()
    if proc.returncode != 0:
        sys.exit(f"{what} failed ({proc.returncode}): {err.strip()[-2000:]}")


def make_fio_file(path: Path) -> None:
    if path.exists() and path.stat().st_size >= FIO_FILE_BYTES:
        return
    subprocess.run(["fio", "--name=prepare", f"--filename={path}", f"--size={FIO_FILE_BYTES}",
                    "--rw=write", "--bs=4M", "--direct=1", "--ioengine=io_uring", "--iodepth=4"],
                   check=True, stdout=subprocess.DEVNULL)


def one_run(variant: str, args, scratch: Path, fio_file: Path) -> dict:
    data_dir = scratch / "data"
    broker, bootstrap = start_broker(data_dir)
    brokers = [broker]
    disturbers: list[tuple[str, subprocess.Popen]] = []
    out: dict = {"variant": variant}
    try:
        if variant.startswith("cold-reader"):
            reader_dir, reader_bootstrap = data_dir, bootstrap
            if variant == "cold-reader-elsewhere":
                reader_dir = scratch / "reader-data"
                reader_broker, reader_bootstrap = start_broker(reader_dir, idle=True)
                brokers.append(reader_broker)
            # The backlog, written and dropped from the page cache, by a run of its own.
            finished(loadgen(reader_bootstrap, scratch / "backlog.json",
                             ["--topic", "T", "--partitions", "8", "--message-bytes", "1024", "--consumers", "0",
                              "--acks", "1", "--rate", "50000", "--duration-s", "1", "--warmup-s", "0",
                              "--backlog-bytes", str(args.backlog_bytes), "--evict-backlog-dir", str(reader_dir)]),
                     "the backlog's loadgen")
            # The reader's loadgen needs a producer: 10 msg/s, nothing beside the measured one.
            disturbers.append(("reader", loadgen(
                reader_bootstrap, scratch / "reader.json",
                ["--topic", "T", "--partitions", "8", "--message-bytes", "1024", "--producers", "1",
                 "--rate", "10", "--acks", "1", "--consumers", "1", "--start-from", "earliest",
                 "--duration-s", str(DISTURB_S - 2), "--warmup-s", "0"], idle=True)))
        if variant in ("disk", "disk+loopback"):
            disturbers.append(("fio", subprocess.Popen(
                ["chrt", "--idle", "0", "fio", "--name=reader", f"--filename={fio_file}", "--rw=read",
                 "--bs=4M", "--direct=1", "--ioengine=io_uring", "--iodepth=2", f"--runtime={DISTURB_S}",
                 "--time_based", "--output-format=json",
                 *([f"--rate={args.disk_mb_s * 1_000_000:.0f}"] if args.disk_mb_s else [])],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        if variant in ("loopback", "disk+loopback"):
            disturbers.append(("loopback", subprocess.Popen(
                ["chrt", "--idle", "0", sys.executable, "-c", LOOPBACK_PAIR, str(DISTURB_S),
                 str(args.loopback_mb_s)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        time.sleep(0.5 if disturbers else 0)
        before = cpu_ticks()
        producer = loadgen(bootstrap, scratch / "producer.json", [*PRODUCER, "--consumers", "0"])
        finished(producer, "the producer's loadgen")
        out["cpu"] = shares(before, cpu_ticks())
        for name, proc in disturbers:
            stdout, err = proc.communicate()
            if proc.returncode != 0:
                sys.exit(f"{name} failed ({proc.returncode}): {err.strip()[-2000:]}")
            if name == "fio":
                out["disk_read_mb_s"] = json.loads(stdout)["jobs"][0]["read"]["bw_bytes"] / 1e6
            elif name == "loopback":
                out["loopback_mb_s"] = float(stdout.strip())
            else:
                out["reader_mb_s"] = json.loads((scratch / "reader.json").read_text())["consume"]["mb_per_s"]
    finally:
        for _, proc in disturbers:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for proc in brokers:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    report = json.loads((scratch / "producer.json").read_text())
    latency = report["produce"]["latency_us"]
    out.update({
        "p50_ms": latency["p50"] / 1000, "p99_ms": latency["p99"] / 1000, "p999_ms": latency["p999"] / 1000,
        "worst_second_ms": [t.get("produce_latency_max_us", 0) / 1000 for t in report.get("timeline", [])],
    })
    return out


def describe(run: dict) -> str:
    cpu = run["cpu"]
    beside = ", ".join(f"{key} {run[key]:.0f}" for key in ("disk_read_mb_s", "loopback_mb_s", "reader_mb_s")
                       if key in run)
    return (f"{run['variant']:>14}: p50 {run['p50_ms']:6.2f} p99 {run['p99_ms']:7.2f} p99.9 {run['p999_ms']:7.2f} ms;"
            f" CPU shares: busy {cpu['busy']:.2f}, steal {cpu['steal']:.3f}, iowait {cpu['iowait']:.3f},"
            f" softirq {cpu['softirq']:.3f}" + (f"; {beside} MB/s" if beside else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, help="one JSON line per run")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--backlog-bytes", type=int, default=12_000_000_000,
                        help="cold-reader: the backlog it reads (enough to stay behind for the run)")
    parser.add_argument("--loopback-mb-s", type=float, default=1000.0)
    parser.add_argument("--disk-mb-s", type=float, default=0.0,
                        help="caps fio's reads (0: as fast as the disk goes)")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "target/tmp",
                        help="where the broker's data and fio's file go (the disk under test)")
    args = parser.parse_args()
    variants = args.variants.split(",")
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}; known: {VARIANTS}")
    for tool in ("fio", "chrt"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is needed (apt-get install fio util-linux)")
    args.work_dir.mkdir(parents=True, exist_ok=True)
    fio_file = args.work_dir / "reader-interference.fio"
    runs: list[dict] = []
    try:
        if any("disk" in v for v in variants):
            make_fio_file(fio_file)
        out = open(args.out, "a") if args.out else None
        print(f"# {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} reps {args.reps}, variants {variants}")
        for rep in range(args.reps):
            for variant in variants:
                with tempfile.TemporaryDirectory(dir=args.work_dir) as scratch:
                    run = one_run(variant, args, Path(scratch), fio_file)
                run["rep"] = rep
                runs.append(run)
                print(f"rep {rep} {describe(run)}", flush=True)
                if out:
                    out.write(json.dumps(run) + "\n")
                    out.flush()
    finally:
        fio_file.unlink(missing_ok=True)
    print("\nmedians (p99 ratio to alone's median):")
    alone = [r["p99_ms"] for r in runs if r["variant"] == "alone"]
    base = statistics.median(alone) if alone else None
    for variant in variants:
        mine = [r for r in runs if r["variant"] == variant]
        p99 = statistics.median(r["p99_ms"] for r in mine)
        ratio = f" ({p99 / base:.2f}x)" if base else ""
        print(f"{variant:>14}: p99 {p99:.2f} ms{ratio}, p99.9 {statistics.median(r['p999_ms'] for r in mine):.2f} ms,"
              f" steal {statistics.median(r['cpu']['steal'] for r in mine):.3f},"
              f" CPU busy share {statistics.median(r['cpu']['busy'] for r in mine):.2f}")


if __name__ == "__main__":
    main()
