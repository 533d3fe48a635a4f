#!/usr/bin/env python3
"""Summarise criterion results of the engine benchmarks into summary.md and summary.csv.

Reads every `<criterion dir>/**/new/{benchmark,estimates}.json` written since `--since` (so a
run filtered to some benchmarks does not pick up stale results of others), takes the median
point estimate (and its 95% confidence interval) per benchmark, computes throughput from the
bytes per iteration criterion recorded (`Throughput::Bytes`), and pairs, within each criterion
group, every `engine*` function with the group's `baseline*` function.

Units: times in ns (criterion's unit); throughput in GB/s = 1e9 bytes/s (criterion's console
output uses GiB/s). The ratio is engine throughput / baseline throughput: above 1, the engine is
faster. Standard library only.
"""

import argparse
import csv
import json
import sys
from pathlib import Path

CSV_FIELDS = [
    "group",
    "function",
    "role",
    "bytes_per_iter",
    "median_ns",
    "median_ci_low_ns",
    "median_ci_high_ns",
    "throughput_gbps",
    "throughput_ci_low_gbps",
    "throughput_ci_high_gbps",
    "baseline_function",
    "ratio_engine_over_baseline",
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--criterion-dir", required=True, type=Path)
    parser.add_argument("--out-dir", required=True, type=Path)
    parser.add_argument("--since", type=float, default=0.0, help="ignore results older than this (epoch s)")
    parser.add_argument("--meta", action="append", default=[], metavar="KEY=VALUE",
                        help="run metadata for the report header, in order (repeatable)")
    return parser.parse_args()


def load_results(criterion_dir, since):
    """One dict per benchmark measured since `since`, in the order they finished."""
    results = []
    for benchmark_file in sorted(criterion_dir.glob("**/new/benchmark.json")):
        estimates_file = benchmark_file.with_name("estimates.json")
        if not estimates_file.exists() or estimates_file.stat().st_mtime < since:
            continue
        benchmark = json.loads(benchmark_file.read_text())
        estimates = json.loads(estimates_file.read_text())
        median = estimates["median"]
        throughput = benchmark.get("throughput") or {}
        results.append({
            "finished": estimates_file.stat().st_mtime,
            "group": benchmark["group_id"],
            "function": benchmark.get("function_id") or benchmark.get("value_str") or "",
            # Only byte throughput is used here; other kinds are reported as times alone.
            "bytes_per_iter": throughput.get("Bytes") or throughput.get("BytesDecimal"),
            "median_ns": median["point_estimate"],
            "median_ci_low_ns": median["confidence_interval"]["lower_bound"],
            "median_ci_high_ns": median["confidence_interval"]["upper_bound"],
        })
    results.sort(key=lambda result: result["finished"])
    return results


def role_of(function):
    if function.startswith("engine"):
        return "engine"
    if function.startswith("baseline"):
        return "baseline"
    return ""


def gbps(bytes_per_iter, ns):
    """Bytes per ns is GB/s (decimal)."""
    if not bytes_per_iter or not ns:
        return None
    return bytes_per_iter / ns


def enrich(results):
    """Adds role, throughput and the engine/baseline ratio to each result."""
    baselines = {}
    for result in results:
        result["role"] = role_of(result["function"])
        result["throughput_gbps"] = gbps(result["bytes_per_iter"], result["median_ns"])
        # A longer time is a lower throughput: the CI bounds swap.
        result["throughput_ci_low_gbps"] = gbps(result["bytes_per_iter"], result["median_ci_high_ns"])
        result["throughput_ci_high_gbps"] = gbps(result["bytes_per_iter"], result["median_ci_low_ns"])
        if result["role"] == "baseline":
            if result["group"] in baselines:
                sys.exit(f"group {result['group']} has more than one baseline function")
            baselines[result["group"]] = result
    for result in results:
        baseline = baselines.get(result["group"])
        result["baseline_function"] = ""
        result["ratio_engine_over_baseline"] = None
        if result["role"] == "engine" and baseline and result["throughput_gbps"] and baseline["throughput_gbps"]:
            result["baseline_function"] = baseline["function"]
            result["ratio_engine_over_baseline"] = result["throughput_gbps"] / baseline["throughput_gbps"]
    return results


def fmt(value, digits):
    return "" if value is None else f"{value:.{digits}f}"


def write_csv(results, path):
    with path.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=CSV_FIELDS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for result in results:
            row = dict(result)
            for key in ("median_ns", "median_ci_low_ns", "median_ci_high_ns"):
                row[key] = fmt(row[key], 1)
            for key in ("throughput_gbps", "throughput_ci_low_gbps", "throughput_ci_high_gbps"):
                row[key] = fmt(row[key], 4)
            row["ratio_engine_over_baseline"] = fmt(row["ratio_engine_over_baseline"], 3)
            row["bytes_per_iter"] = row["bytes_per_iter"] or ""
            writer.writerow(row)


def human_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.2f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.2f} ns"


def goal_lines(results):
    """The issue's targets, checked (for reference: they are goals, not assertions)."""
    by_id = {(result["group"], result["function"]): result for result in results}
    lines = []

    def engine_of(group):
        return next((result for (g, _), result in by_id.items() if g == group and result["role"] == "engine"), None)

    for group in ("append_none_16KiB", "append_none_1MiB"):
        engine = engine_of(group)
        if engine is None or engine["ratio_engine_over_baseline"] is None:
            lines.append(f"- `{group}`: not measured in this run")
            continue
        met = engine["ratio_engine_over_baseline"] >= 1.0 and engine["throughput_gbps"] >= 2.0
        lines.append(
            f"- `{group}`: engine >= baseline and >= 2 GB/s — {'met' if met else 'NOT met'} "
            f"({engine['throughput_gbps']:.2f} GB/s, {engine['ratio_engine_over_baseline']:.2f}x baseline)"
        )
    engine = engine_of("append_every_batch_1MiB")
    if engine is None or engine["ratio_engine_over_baseline"] is None:
        lines.append("- `append_every_batch_1MiB`: not measured in this run")
    else:
        met = engine["ratio_engine_over_baseline"] >= 0.9
        lines.append(
            f"- `append_every_batch_1MiB`: engine >= 0.9x baseline with sync_data — "
            f"{'met' if met else 'NOT met'} ({engine['ratio_engine_over_baseline']:.2f}x)"
        )
    return lines


def write_markdown(results, meta, path):
    lines = ["# Engine criterion benchmarks", ""]
    lines += [f"- **{key}**: {value}" if key != "command" else f"- **command**: `{value}`" for key, value in meta]
    lines += [
        "",
        "Median of criterion's samples per benchmark, with its 95% confidence interval. "
        "GB/s = 10^9 bytes/s, from the bytes each iteration appends or validates. "
        "Ratio = engine throughput / throughput of the group's baseline (> 1: engine faster). "
        "Raw criterion output: `cargo-bench.log`; machine-readable: `summary.csv`.",
        "",
    ]
    append = [result for result in results if result["role"] in ("engine", "baseline")]
    throughput = [result for result in results if not result["role"] and result["throughput_gbps"]]
    latency = [result for result in results if not result["role"] and not result["throughput_gbps"]]
    if append:
        lines += [
            "## Append: engine beside baseline",
            "",
            "| group | function | median / iter | GB/s | 95% CI GB/s | engine / baseline |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for result in append:
            lines.append(
                f"| {result['group']} | {result['function']} | {human_time(result['median_ns'])} "
                f"| {fmt(result['throughput_gbps'], 3)} "
                f"| {fmt(result['throughput_ci_low_gbps'], 3)}–{fmt(result['throughput_ci_high_gbps'], 3)} "
                f"| {fmt(result['ratio_engine_over_baseline'], 2)} |"
            )
        lines += ["", "### Goals (reference, not assertions)", ""] + goal_lines(results) + [""]
    if throughput:
        lines += [
            "## Throughput",
            "",
            "| group | function | bytes / iter | median / iter | GB/s | 95% CI GB/s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for result in throughput:
            lines.append(
                f"| {result['group']} | {result['function']} | {result['bytes_per_iter']} "
                f"| {human_time(result['median_ns'])} | {fmt(result['throughput_gbps'], 2)} "
                f"| {fmt(result['throughput_ci_low_gbps'], 2)}–{fmt(result['throughput_ci_high_gbps'], 2)} |"
            )
        lines.append("")
    if latency:
        lines += [
            "## Latency (one operation per iteration)",
            "",
            "| group | function | median | 95% CI |",
            "|---|---|---:|---:|",
        ]
        for result in latency:
            lines.append(
                f"| {result['group']} | {result['function']} | {human_time(result['median_ns'])} "
                f"| {human_time(result['median_ci_low_ns'])}–{human_time(result['median_ci_high_ns'])} |"
            )
        lines.append("")
    path.write_text("\n".join(lines))


def main():
    args = parse_args()
    meta = []
    for item in args.meta:
        key, _, value = item.partition("=")
        meta.append((key, value))
    if not args.criterion_dir.is_dir():
        sys.exit(f"no criterion results in {args.criterion_dir}")
    results = enrich(load_results(args.criterion_dir, args.since))
    if not results:
        sys.exit(f"no criterion results in {args.criterion_dir} newer than the run's start")
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(results, args.out_dir / "summary.csv")
    write_markdown(results, meta, args.out_dir / "summary.md")
    print(f"wrote {args.out_dir / 'summary.md'} and summary.csv ({len(results)} benchmarks)")


if __name__ == "__main__":
    main()
