#!/usr/bin/env python3
"""Issue 13's goals, judged from matrix repetitions (scripts/bench-latency-goals.sh runs them).

Each repetition is a results directory written by `ringtail-loadgen matrix` holding, for Ringtail
on the ordinary fs: max-produce-consume, fixed-rate-latency, cold-catch-up-alone, cold-catch-up,
cold-catch-up-idle-client and cold-catch-up-naive (and, when run, the same for Apache Kafka). Per goal it takes each
repetition's figure (or ratio within the repetition), then the median over repetitions, and says
met or not met beside the goal. The disk's cold sequential read speed is measured in the same
session (`--measure-disk DIR`: a file written, fsynced, dropped from the page cache with
POSIX_FADV_DONTNEED and read back in 8 MiB reads), or given with --disk-read-mb-s.

Each repetition may also hold its own probes of the disk (`disk-probes.jsonl`, appended by
`--probe-disk-into REP_DIR --measure-disk DIR` just before and after its catch-up runs): the
catch-up goal is then judged per repetition against the fastest of its probes (leaving out any over
1.5x the median of its probes: the host's cache serving what was just written), and the median of
those shares taken, since these shared disks drift between repetitions.

The producer-beside-a-cold-reader goal is judged twice: with the reader's client as the goal's
scenario has it (cold-catch-up: on the broker's two cores at the producers' priority), and with
that client standing for one on another machine (cold-catch-up-idle-client: SCHED_IDLE and
yielding), a separate row so neither reads as the other.

Prints a Markdown section; `--json FILE` also writes the figures.
Usage: python3 scripts/latency_goals.py [--measure-disk DIR | --disk-read-mb-s N] DIR [DIR ...]
       python3 scripts/latency_goals.py --measure-disk DIR --probe-disk-into REP_DIR
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import shutil
import subprocess
import statistics
import tempfile
import time
from pathlib import Path

# The goals of issue 13, section 3.
P99_WITH_READER_RATIO_MAX = 1.2
CATCH_UP_SHARE_OF_DISK_MIN = 0.8
FIXED_RATE_P99_MS_MAX = 2.0
FIXED_RATE_P999_MS_MAX = 5.0
PRODUCE_MB_S_MIN = 1000.0
# "Consume keeping up": the reader moved at least this share of what was produced.
KEEP_UP_SHARE_MIN = 0.95

# A second counts as catching up while the reader moves more than this multiple of what the
# producer adds: once caught up it reads at the live rate (1x).
CATCHING_UP_OVER_LIVE_RATE_MIN = 1.5

# The producer's p99 beside a catch-up reader is judged only if the reader was behind for at least
# this share of the run's seconds: one that caught up early leaves the producer alone for the rest,
# and its p99 would say little about a reader behind (the 4 GB backlog of 2026-12-03 was read in
# about 3 of the 12 seconds).
READER_BEHIND_SHARE_MIN = 0.9

# The cold catch-up whose reader's client stands for one on another machine (loadgen's scenario).
IDLE_CLIENT = "cold-catch-up-idle-client"

# The figure for this machine kind: fio's cold sequential read (direct I/O), 2026-11. Used
# only where fio is not installed; otherwise fio measures the disk in the same session (the same
# machine kind read 700-740 MB/s on 2026-12-02: these disks are shared too).
FIO_COLD_READ_MB_S = 1090.0
FIO_PROBE_BYTES = 2 << 30

DISK_PROBE_BYTES = 2 << 30
DISK_READ_CHUNK_BYTES = 8 << 20


def measure_cold_read_mb_s(directory: Path) -> float:
    """Sequential read speed of a file not in the page cache, MB/s (10^6 bytes): written, fsynced,
    dropped with POSIX_FADV_DONTNEED and read back, as the evicted backlog is. On a VM the host
    may still cache what the guest just wrote (it read 2.7 GB/s here where fio's direct reads
    gave 1.09): the goal is judged against the larger of the two, the stricter reading."""
    with tempfile.NamedTemporaryFile(dir=directory, prefix="cold-read-") as handle:
        block = os.urandom(1 << 20)
        for _ in range(DISK_PROBE_BYTES >> 20):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
        fd = os.open(handle.name, os.O_RDONLY)
        try:
            started, read = time.monotonic(), 0
            while chunk := os.read(fd, DISK_READ_CHUNK_BYTES):
                read += len(chunk)
            elapsed = time.monotonic() - started
        finally:
            os.close(fd)
    assert read == DISK_PROBE_BYTES, f"read {read} of {DISK_PROBE_BYTES} bytes"
    return read / elapsed / 1e6


def load(directory: str, scenario: str, broker: str = "ringtail") -> dict | None:
    path = Path(directory) / scenario / f"{broker}-fs.json"
    return json.loads(path.read_text()) if path.exists() else None


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def per_rep(dirs: list[str], figure) -> list:
    return [figure(d) for d in dirs]


def catch_up_mb_s(report: dict | None) -> float | None:
    """The reader's speed while it is behind, MB/s: bytes read per second over the whole seconds
    before it first reads at the live rate (the second it catches up in is only partly behind and
    is left out). A reader that catches up within the run would otherwise be credited with the
    live rate for the rest of it; one that never catches up is measured over the whole run.
    Reports without a timeline fall back to the run's mean."""
    if not report:
        return None
    timeline = report.get("timeline") or []
    behind = []
    for second in timeline:
        if second["consumed_bytes"] <= CATCHING_UP_OVER_LIVE_RATE_MIN * second["produced_bytes"]:
            break
        behind.append(second["consumed_bytes"])
    if not behind:
        return report["consume"]["mb_per_s"] if not timeline else None
    if len(behind) < len(timeline) and len(behind) > 1:
        behind.pop()
    return sum(behind) / len(behind) / 1e6


def reader_behind_share(report: dict | None) -> float | None:
    """The share of the run's seconds (its timeline) before the reader first reads at the live
    rate; None without a timeline."""
    timeline = (report or {}).get("timeline") or []
    if not timeline:
        return None
    behind = 0
    for second in timeline:
        if second["consumed_bytes"] <= CATCHING_UP_OVER_LIVE_RATE_MIN * second["produced_bytes"]:
            break
        behind += 1
    return behind / len(timeline)


def p_ms(report: dict | None, key: str) -> float | None:
    return report["produce"]["latency_us"][key] / 1000 if report else None


def measure_fio_cold_read_mb_s(directory: Path) -> float | None:
    """fio's sequential read of a file written just before, direct I/O through io_uring, 1 MiB
    reads 8 deep (the issue's measurement), MB/s; None without fio."""
    if shutil.which("fio") is None:
        return None
    with tempfile.TemporaryDirectory(dir=directory, prefix="fio-") as scratch:
        common = ["fio", "--name=cold-read", f"--filename={scratch}/read.bin", f"--size={FIO_PROBE_BYTES}",
                  "--bs=1M", "--direct=1", "--ioengine=io_uring", "--iodepth=8", "--output-format=json"]
        subprocess.run(common + ["--rw=write"], check=True, stdout=subprocess.DEVNULL)
        out = subprocess.run(common + ["--rw=read"], check=True, capture_output=True, text=True).stdout
    # fio may print notes before its JSON.
    result = json.loads(out[out.index("{"):])
    return result["jobs"][0]["read"]["bw_bytes"] / 1e6


DISK_PROBE_FILE = "disk-probes.jsonl"


def probe_disk(directory: Path, out: Path) -> dict:
    """Measures the disk now (buffered read-back, and fio when installed) and appends the figures
    as one JSON line to `out`: a repetition's probes, taken just before and after its catch-up
    runs, judge that repetition's reader (the same broker read 931-1,344 MB/s from this shared
    disk within 11 minutes of 2026-12-04, results/cold-read-waits/)."""
    probe = {
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "buffered_read_mb_s": measure_cold_read_mb_s(directory),
        "fio_mb_s": measure_fio_cold_read_mb_s(directory),
    }
    with out.open("a") as file:
        file.write(json.dumps(probe) + "\n")
    return probe


# A repetition's probe faster than this multiple of the median of its probes is taken for the
# host's cache serving what the guest just wrote (one fio probe read 2 GiB in exactly one second on
# 2026-12-04, 1.8x its repetition's median), not the disk: left out of the reference, and named.
PROBE_CACHED_OVER_MEDIAN_MIN = 1.5


def rep_disk_probes(directory: str) -> tuple[float | None, list[float]]:
    """A repetition's reference disk speed, the fastest of its probes (the stricter reference)
    once those taken for the host's cache are left out, and the left-out ones; (None, []) without
    probes."""
    path = Path(directory) / DISK_PROBE_FILE
    if not path.exists():
        return None, []
    speeds = []
    for line in path.read_text().splitlines():
        probe = json.loads(line)
        speeds += [v for v in (probe.get("buffered_read_mb_s"), probe.get("fio_mb_s")) if v]
    if not speeds:
        return None, []
    middle = statistics.median(speeds)
    cached = [v for v in speeds if v > PROBE_CACHED_OVER_MEDIAN_MIN * middle]
    return max(v for v in speeds if v not in cached), cached


def rep_disk_mb_s(directory: str) -> float | None:
    return rep_disk_probes(directory)[0]


def goals(dirs: list[str], disk_read_mb_s: float, fio_mb_s: float | None = None) -> dict:
    def p99_over_alone(d, scenario):
        """A cold-catch-up variant's producer p99 over the reader-less baseline's, same repetition."""
        alone, beside = load(d, "cold-catch-up-alone"), load(d, scenario)
        return p_ms(beside, "p99") / p_ms(alone, "p99") if alone and beside else None

    def produce_mb_s(d, scenario, broker="ringtail"):
        report = load(d, scenario, broker)
        return report["produce"]["mb_per_s"] if report else None

    def keep_up(d, broker="ringtail"):
        report = load(d, "max-produce-consume", broker)
        if not report or not report["produce"]["measured_bytes"]:
            return None
        return report["consume"]["measured_bytes"] / report["produce"]["measured_bytes"]

    figures = {
        "repetitions": len(dirs),
        "disk_cold_read_mb_s": disk_read_mb_s,
        "cold_alone_p99_ms": median(per_rep(dirs, lambda d: p_ms(load(d, "cold-catch-up-alone"), "p99"))),
        "cold_reader_p99_ms": median(per_rep(dirs, lambda d: p_ms(load(d, "cold-catch-up"), "p99"))),
        "cold_naive_p99_ms": median(per_rep(dirs, lambda d: p_ms(load(d, "cold-catch-up-naive"), "p99"))),
        "cold_reader_p99_ratio": median(per_rep(dirs, lambda d: p99_over_alone(d, "cold-catch-up"))),
        "cold_naive_p99_ratio": median(per_rep(dirs, lambda d: p99_over_alone(d, "cold-catch-up-naive"))),
        "cold_reader_behind_share": median(per_rep(dirs, lambda d: reader_behind_share(load(d, "cold-catch-up")))),
        "cold_idle_client_p99_ms": median(per_rep(dirs, lambda d: p_ms(load(d, IDLE_CLIENT), "p99"))),
        # Its baseline from the same repetitions: older ones lack the variant.
        "cold_idle_client_alone_p99_ms": median(per_rep(
            dirs, lambda d: p_ms(load(d, "cold-catch-up-alone"), "p99") if load(d, IDLE_CLIENT) else None)),
        "cold_idle_client_repetitions": sum(1 for d in dirs if load(d, IDLE_CLIENT)),
        "cold_idle_client_p99_ratio": median(per_rep(dirs, lambda d: p99_over_alone(d, IDLE_CLIENT))),
        "cold_idle_client_behind_share": median(per_rep(
            dirs, lambda d: reader_behind_share(load(d, IDLE_CLIENT)))),
        "catch_up_idle_client_mb_s": median(per_rep(dirs, lambda d: catch_up_mb_s(load(d, IDLE_CLIENT)))),
        "catch_up_mb_s": median(per_rep(dirs, lambda d: catch_up_mb_s(load(d, "cold-catch-up")))),
        "catch_up_naive_mb_s": median(per_rep(dirs, lambda d: catch_up_mb_s(load(d, "cold-catch-up-naive")))),
        "fixed_rate_msgs_per_s": median(per_rep(
            dirs, lambda d: (load(d, "fixed-rate-latency") or {}).get("config", {}).get("rate_msgs_per_s"))),
        "fixed_rate_p50_ms": median(per_rep(dirs, lambda d: p_ms(load(d, "fixed-rate-latency"), "p50"))),
        "fixed_rate_p99_ms": median(per_rep(dirs, lambda d: p_ms(load(d, "fixed-rate-latency"), "p99"))),
        "fixed_rate_p999_ms": median(per_rep(dirs, lambda d: p_ms(load(d, "fixed-rate-latency"), "p999"))),
        "kafka_fixed_rate_p99_ms": median(per_rep(
            dirs, lambda d: p_ms(load(d, "fixed-rate-latency", "kafka"), "p99"))),
        "kafka_fixed_rate_p999_ms": median(per_rep(
            dirs, lambda d: p_ms(load(d, "fixed-rate-latency", "kafka"), "p999"))),
        "produce_consume_mb_s": median(per_rep(dirs, lambda d: produce_mb_s(d, "max-produce-consume"))),
        "produce_consume_keep_up": median(per_rep(dirs, keep_up)),
        "kafka_produce_consume_mb_s": median(per_rep(
            dirs, lambda d: produce_mb_s(d, "max-produce-consume", "kafka"))),
        "kafka_produce_consume_keep_up": median(per_rep(dirs, lambda d: keep_up(d, "kafka"))),
    }
    figures["fio_measured_here"] = fio_mb_s is not None
    figures["fio_cold_read_mb_s"] = fio_mb_s if fio_mb_s is not None else FIO_COLD_READ_MB_S
    reference = max(disk_read_mb_s or 0.0, figures["fio_cold_read_mb_s"])
    catch_up_share = (figures["catch_up_mb_s"] / reference if figures["catch_up_mb_s"] is not None else None)
    # Repetitions that probed the disk around their catch-up runs are judged against their own
    # probes (the disk's speed drifts between repetitions); the session's figure stays beside.
    rep_probes = per_rep(dirs, rep_disk_probes)
    rep_disks = [reference for reference, _ in rep_probes]
    rep_catch_ups = per_rep(dirs, lambda d: catch_up_mb_s(load(d, "cold-catch-up")))
    rep_shares = [catch_up / disk if catch_up is not None and disk else None
                  for catch_up, disk in zip(rep_catch_ups, rep_disks)]
    figures["rep_disk_read_mb_s"] = rep_disks
    figures["rep_disk_probes_left_out_mb_s"] = [left_out for _, left_out in rep_probes]
    figures["rep_catch_up_share_of_disk"] = rep_shares
    figures["catch_up_share_of_session_disk"] = catch_up_share
    figures["catch_up_judged_per_rep"] = all(share is not None for share in rep_shares)
    if figures["catch_up_judged_per_rep"]:
        catch_up_share = median(rep_shares)
    figures["catch_up_share_of_disk"] = catch_up_share

    def holds(value, compare, bound):
        """Whether `compare(value, bound)`; None when the figure was not measured."""
        return None if value is None else compare(value, bound)

    def both(a, b):
        return None if a is None or b is None else a and b

    f = figures
    for variant in ("cold_reader", "cold_idle_client"):
        behind = f[f"{variant}_behind_share"]
        figures[f"{variant}_judged"] = behind is None or behind >= READER_BEHIND_SHARE_MIN
    figures["met"] = {
        "cold_reader_p99_ratio": (holds(f["cold_reader_p99_ratio"], operator.le, P99_WITH_READER_RATIO_MAX)
                                  if f["cold_reader_judged"] else None),
        "cold_idle_client_p99_ratio": (
            holds(f["cold_idle_client_p99_ratio"], operator.le, P99_WITH_READER_RATIO_MAX)
            if f["cold_idle_client_judged"] else None),
        "catch_up_share_of_disk": holds(catch_up_share, operator.ge, CATCH_UP_SHARE_OF_DISK_MIN),
        "fixed_rate_tail": both(holds(f["fixed_rate_p99_ms"], operator.lt, FIXED_RATE_P99_MS_MAX),
                                holds(f["fixed_rate_p999_ms"], operator.lt, FIXED_RATE_P999_MS_MAX)),
        "produce_with_reader": both(holds(f["produce_consume_mb_s"], operator.ge, PRODUCE_MB_S_MIN),
                                    holds(f["produce_consume_keep_up"], operator.ge, KEEP_UP_SHARE_MIN)),
    }
    return figures


def fmt(value, digits=1, suffix=""):
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def verdict(value):
    return {True: "**met**", False: "**not met**", None: "not measured"}[value]


def catch_up_text(f: dict) -> str:
    session = (f"max({fmt(f['disk_cold_read_mb_s'])} MB/s read back here, fio's {fmt(f['fio_cold_read_mb_s'])} MB/s"
               f"{' here' if f.get('fio_measured_here') else ' of 2026-11, fio not installed'})")
    naive = f"(check off: {fmt(f['catch_up_naive_mb_s'])} MB/s)"
    if not f.get("catch_up_judged_per_rep"):
        # Say why the session's figure judges: which repetitions lack probes (or a catch-up).
        missing = [i + 1 for i, share in enumerate(f.get("rep_catch_up_share_of_disk") or []) if share is None]
        why = (f" (repetitions {', '.join(map(str, missing))} without disk probes or a catch-up figure)"
               if missing and any(d is not None for d in f.get("rep_disk_read_mb_s") or []) else "")
        return (f"{fmt(f['catch_up_mb_s'])} MB/s while behind, of {session}{why}: "
                f"{fmt(f['catch_up_share_of_disk'], 2)}x {naive}")
    per_rep_text = ", ".join(f"{fmt(share, 2)}x of {fmt(disk, 0)}"
                             for share, disk in zip(f["rep_catch_up_share_of_disk"], f["rep_disk_read_mb_s"]))
    left_out = [f"{fmt(v, 0)} in repetition {i + 1}"
                for i, speeds in enumerate(f.get("rep_disk_probes_left_out_mb_s") or []) for v in speeds]
    left_out_text = (f"; probes over {PROBE_CACHED_OVER_MEDIAN_MIN}x their repetition's median taken for the host's "
                     f"cache and left out: {', '.join(left_out)} MB/s" if left_out else "")
    return (f"{fmt(f['catch_up_mb_s'])} MB/s while behind: {fmt(f['catch_up_share_of_disk'], 2)}x, the median of each "
            f"repetition's share of the fastest disk probe taken around it ({per_rep_text} MB/s{left_out_text}); "
            f"{fmt(f['catch_up_share_of_session_disk'], 2)}x of the session's {session} {naive}")


def markdown(f: dict) -> str:
    met = f["met"]
    idle_reps = f.get("cold_idle_client_repetitions", 0)
    idle_reps_text = (f"; in {idle_reps} of {f['repetitions']} repetitions"
                      if 0 < idle_reps < f["repetitions"] else "")
    # (goal, measured, status, the reader variant whose "behind" share gates the status)
    rows = [
        ("producer p99 with a cold catch-up reader ≤ 1.2x without it",
         f"{fmt(f['cold_reader_p99_ms'])} ms vs {fmt(f['cold_alone_p99_ms'])} ms alone: "
         f"{fmt(f['cold_reader_p99_ratio'], 2)}x (check off: {fmt(f['cold_naive_p99_ms'])} ms, "
         f"{fmt(f['cold_naive_p99_ratio'], 2)}x)", met["cold_reader_p99_ratio"], "cold_reader"),
        ("for comparison, not the goal's scenario: the same ≤ 1.2x with the reader's client at SCHED_IDLE "
         "on the same cores, yielding every 256 KiB (standing in for a client on another machine)",
         f"{fmt(f['cold_idle_client_p99_ms'])} ms vs {fmt(f.get('cold_idle_client_alone_p99_ms'))} ms alone: "
         f"{fmt(f['cold_idle_client_p99_ratio'], 2)}x (catch-up {fmt(f['catch_up_idle_client_mb_s'])} MB/s while "
         f"behind{idle_reps_text})",
         met["cold_idle_client_p99_ratio"], "cold_idle_client"),
        ("catch-up ≥ 0.8x the disk's cold sequential read", catch_up_text(f), met["catch_up_share_of_disk"], None),
        ("fixed-rate-latency at half the max: p99 < 2 ms, p99.9 < 5 ms",
         f"{fmt(f['fixed_rate_msgs_per_s'], 0)} msg/s: p50 {fmt(f['fixed_rate_p50_ms'], 2)}, "
         f"p99 {fmt(f['fixed_rate_p99_ms'], 2)}, p99.9 {fmt(f['fixed_rate_p999_ms'], 2)} ms "
         f"(Kafka at half its own max: p99 {fmt(f['kafka_fixed_rate_p99_ms'], 2)}, "
         f"p99.9 {fmt(f['kafka_fixed_rate_p999_ms'], 2)} ms)", met["fixed_rate_tail"], None),
        ("1 producer + 1 consumer: produce ≥ 1 GB/s, consume keeping up",
         f"{fmt(f['produce_consume_mb_s'])} MB/s, reader moved {fmt(f['produce_consume_keep_up'], 3)} of it "
         f"(Kafka: {fmt(f['kafka_produce_consume_mb_s'])} MB/s, {fmt(f['kafka_produce_consume_keep_up'], 3)})",
         met["produce_with_reader"], None),
    ]
    lines = [f"Medians of {f['repetitions']} repetitions (ratios taken within each repetition).", "",
             "| goal | measured | status |", "|---|---|---|"]
    for goal, measured, status, variant in rows:
        text = verdict(status)
        if variant and not f.get(f"{variant}_judged", True):
            text = (f"**not judged**: the reader was behind for {fmt(100 * f[f'{variant}_behind_share'], 0)}% "
                    f"of the run (at least {100 * READER_BEHIND_SHARE_MIN:.0f}% needed: a larger backlog)")
        lines.append(f"| {goal} | {measured} | {text} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--probe-disk-into", type=Path, metavar="REP_DIR",
                        help=f"only measure the disk (of --measure-disk's directory) and append the figures "
                             f"to REP_DIR/{DISK_PROBE_FILE}")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--measure-disk", type=Path, help="a directory on the disk the brokers used")
    source.add_argument("--disk-read-mb-s", type=float)
    parser.add_argument("--fio-mb-s", type=float, help="fio's figure if measured already (else measured with --measure-disk)")
    parser.add_argument("--json", type=Path)
    parser.add_argument("dirs", nargs="*")
    args = parser.parse_args()
    if args.probe_disk_into:
        if not args.measure_disk:
            parser.error("--probe-disk-into needs --measure-disk DIR")
        print(json.dumps(probe_disk(args.measure_disk, args.probe_disk_into / DISK_PROBE_FILE)))
        return
    if not args.dirs:
        parser.error("the repetitions' directories are required")
    disk = args.disk_read_mb_s or measure_cold_read_mb_s(args.measure_disk)
    fio = args.fio_mb_s or (measure_fio_cold_read_mb_s(args.measure_disk) if args.measure_disk else None)
    figures = goals(args.dirs, disk, fio)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(markdown(figures), end="")


if __name__ == "__main__":
    main()
