#!/usr/bin/env python3
"""Ringtail ÷ each peer, per scenario, from matrix results of one or more repetitions.

Each repetition is a results directory written by `ringtail-loadgen matrix` in which Ringtail and
the peers ran back to back (same session, same machine). For every scenario and peer it takes,
per repetition, Ringtail's figure over the peer's (both on the same layout), then the median over
the repetitions; it also gives each broker's median figures. Prints a Markdown section.

Usage: python3 scripts/matrix_ratios.py --layout fs DIR [DIR…]
"""

import argparse
import json
import statistics
from pathlib import Path

SCENARIOS = ["max-produce", "durable-produce", "fixed-rate-latency", "e2e-latency", "fan-out", "catch-up",
             "partitions-1", "partitions-16", "partitions-256", "partitions-1024"]
PEERS = ["kafka", "tansu-sqlite"]


def load(directory, scenario, broker, layout):
    path = Path(directory) / scenario / f"{broker}-{layout}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def figures(report):
    produce_mb_s = report["produce"]["mb_per_s"]
    consume_mb_s = report["consume"]["mb_per_s"]
    cpu_s = report.get("broker_cpu_s")
    moved_mb = report["produce"]["measured_bytes"] / 1e6 + report["consume"]["measured_bytes"] / 1e6
    return {
        "produce_mb_s": produce_mb_s,
        "produce_p99_ms": report["produce"]["latency_us"]["p99"] / 1000,
        "consume_mb_s": consume_mb_s,
        "e2e_p99_ms": report["consume"]["e2e_latency_us"]["p99"] / 1000,
        "broker_cpu_s": cpu_s,
        # MB moved (produced + consumed) per broker CPU-second: efficiency, whatever the rate.
        "mb_per_cpu_s": moved_mb / cpu_s if cpu_s else None,
    }


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def ratio(a, b):
    return a / b if a is not None and b else None


def fmt(value, digits=1, suffix=""):
    return "—" if value is None else f"{value:.{digits}f}{suffix}"


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--layout", default="fs")
    parser.add_argument("dirs", nargs="+")
    args = parser.parse_args()
    reps = len(args.dirs)
    print(f"Medians of {reps} repetition(s) on the `{args.layout}` layout; ratios are taken within each "
          "repetition (brokers back to back), then the median of those. Produce and consume "
          "ratios > 1 mean Ringtail moved more; latency ratios < 1 mean Ringtail was faster; "
          "MB per broker CPU-s counts produced plus consumed MB.\n")
    header = ("| scenario | broker | produce MB/s | produce p99 ms | consume MB/s | e2e p99 ms | broker CPU-s "
              "| MB per broker CPU-s | runs |\n|---|---|---:|---:|---:|---:|---:|---:|---:|")
    print(header)
    ratio_rows = []
    for scenario in SCENARIOS:
        per_broker = {}
        for broker in ["ringtail"] + PEERS:
            runs = [load(d, scenario, broker, args.layout) for d in args.dirs]
            runs = [figures(r) if r else None for r in runs]
            per_broker[broker] = runs
            present = [r for r in runs if r]
            if not present:
                continue
            m = {k: median(r[k] for r in present) for k in present[0]}
            print(f"| {scenario} | {broker} | {fmt(m['produce_mb_s'])} | {fmt(m['produce_p99_ms'], 2)} | "
                  f"{fmt(m['consume_mb_s'])} | {fmt(m['e2e_p99_ms'], 2) if m['consume_mb_s'] else '—'} | "
                  f"{fmt(m['broker_cpu_s'], 2)} | {fmt(m['mb_per_cpu_s'], 0)} | {len(present)} |")
        for peer in PEERS:
            pairs = [(r, p) for r, p in zip(per_broker["ringtail"], per_broker[peer]) if r and p]
            if not pairs:
                continue
            row = {k: median(ratio(r[k], p[k]) for r, p in pairs)
                   for k in ("produce_mb_s", "produce_p99_ms", "consume_mb_s", "e2e_p99_ms", "mb_per_cpu_s")}
            ratio_rows.append((scenario, peer, row, len(pairs)))
    print("\nRingtail ÷ peer (median of per-repetition ratios):\n")
    print("| scenario | ringtail ÷ | produce MB/s | produce p99 | consume MB/s | e2e p99 | MB per broker CPU-s | pairs |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|")
    for scenario, peer, row, pairs in ratio_rows:
        print(f"| {scenario} | {peer} | {fmt(row['produce_mb_s'], 2, 'x')} | {fmt(row['produce_p99_ms'], 2, 'x')} | "
              f"{fmt(row['consume_mb_s'], 2, 'x')} | {fmt(row['e2e_p99_ms'], 2, 'x')} | "
              f"{fmt(row['mb_per_cpu_s'], 2, 'x')} | {pairs} |")


if __name__ == "__main__":
    main()
