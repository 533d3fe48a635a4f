#!/usr/bin/env python3
"""Counts produce stalls in the cold-catch-up scenarios with the vCPUs free to halt and kept awake.

Each repetition runs `cold-catch-up-alone` then `cold-catch-up` (ringtail, ordinary fs) twice: once
plain, once under scripts/keep-cpus-awake.sh (SCHED_IDLE busy loops, one per CPU), alternating
which goes first. From each run it takes the producer's p99 and the timeline's per-second longest
produce latency; a second whose longest latency is over --stall-ms is a stall. Prints a Markdown
table and writes the per-run figures as JSON lines.

Usage: python3 scripts/stall_census.py [--reps 3] [--stall-ms 50] [--out results/produce-stalls]
Needs: cargo build --release -p ringtail-server -p ringtail-loadgen.
"""

import argparse
import json
import statistics
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOADGEN = ROOT / "target/release/ringtail-loadgen"
SCENARIOS = ("cold-catch-up-alone", "cold-catch-up")


def run_matrix(awake: bool, results: Path) -> dict:
    command = [str(LOADGEN), "matrix", "--brokers", "ringtail", "--layouts", "fs", "--scenarios",
               ",".join(SCENARIOS), "--backlog-bytes-max", "4000000000", "--duration-s", "10",
               "--warmup-s", "2", "--results-dir", str(results), "--quiet"]
    if awake:
        command = [str(ROOT / "scripts/keep-cpus-awake.sh")] + command
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return {s: json.loads((results / s / "ringtail-fs.json").read_text()) for s in SCENARIOS}


def summary(report: dict, stall_ms: float) -> dict:
    seconds_max_ms = [p.get("produce_latency_max_us", 0) / 1000 for p in report["timeline"]]
    return {"p99_ms": report["produce"]["latency_us"]["p99"] / 1000,
            "p999_ms": report["produce"]["latency_us"]["p999"] / 1000,
            "worst_second_ms": max(seconds_max_ms, default=0.0),
            "stall_seconds": sum(1 for m in seconds_max_ms if m > stall_ms)}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--stall-ms", type=float, default=50.0)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "produce-stalls")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    with tempfile.TemporaryDirectory(dir="/var/tmp") as work:
        for rep in range(args.reps):
            order = (False, True) if rep % 2 == 0 else (True, False)
            for awake in order:
                reports = run_matrix(awake, Path(work) / f"rep-{rep}-{'awake' if awake else 'plain'}")
                row = {"rep": rep, "awake": awake}
                for scenario, report in reports.items():
                    row[scenario] = summary(report, args.stall_ms)
                row["ratio"] = row["cold-catch-up"]["p99_ms"] / row["cold-catch-up-alone"]["p99_ms"]
                runs.append(row)
                print(json.dumps(row), flush=True)
    (args.out / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in runs))
    lines = [f"Stall: a second whose longest produce latency is over {args.stall_ms:g} ms.", "",
             "| vCPUs | runs | runs with a stall (alone / with reader) | worst second ms (alone / with reader) "
             "| p99 alone ms (median) | p99 with reader ms (median) | ratio (median of per-rep) |",
             "|---|---:|---|---|---:|---:|---:|"]
    for awake in (False, True):
        mine = [r for r in runs if r["awake"] == awake]
        alone = [r["cold-catch-up-alone"] for r in mine]
        reader = [r["cold-catch-up"] for r in mine]
        lines.append(
            f"| {'kept awake' if awake else 'free to halt'} | {len(mine)} "
            f"| {sum(1 for a in alone if a['stall_seconds'])} / {sum(1 for b in reader if b['stall_seconds'])} "
            f"| {max(a['worst_second_ms'] for a in alone):.0f} / {max(b['worst_second_ms'] for b in reader):.0f} "
            f"| {statistics.median(a['p99_ms'] for a in alone):.2f} "
            f"| {statistics.median(b['p99_ms'] for b in reader):.2f} "
            f"| {statistics.median(r['ratio'] for r in mine):.2f}x |")
    table = "\n".join(lines) + "\n"
    (args.out / "census.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
