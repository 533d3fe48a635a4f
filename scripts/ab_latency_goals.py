#!/usr/bin/env python3
"""Summary of alternating goals runs (scripts/ab-latency-goals.sh): per goal figure, each
variant's value in every round, its median over the rounds, and its ratio to the first variant's
value in the same round (with the median of those ratios), since rounds an hour apart differ more
than variants a few minutes apart.

Reads DIR/<label>-round-<n>.json, written by scripts/latency_goals.py (one repetition each), and
prints a Markdown section.
Usage: python3 scripts/ab_latency_goals.py DIR LABEL [LABEL ...]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path

# (key in latency_goals.py's JSON, what it is, the goal's bound or None)
FIGURES = [
    ("cold_reader_p99_ratio", "producer p99 beside the cold reader, to alone", "≤ 1.2x"),
    ("cold_idle_client_p99_ratio", "the same, reader's client idle (comparison row)", "≤ 1.2x"),
    ("catch_up_share_of_disk", "catch-up, share of the disk probes", "≥ 0.8x"),
    ("catch_up_mb_s", "catch-up MB/s", None),
    ("catch_up_idle_client_mb_s", "catch-up MB/s, reader's client idle", None),
    ("cold_alone_p99_ms", "producer p99 alone, ms", None),
    ("cold_reader_p99_ms", "producer p99 beside the cold reader, ms", None),
    ("fixed_rate_p99_ms", "fixed rate p99, ms", "< 2 ms"),
    ("fixed_rate_p999_ms", "fixed rate p99.9, ms", "< 5 ms"),
    ("produce_consume_mb_s", "1 producer + 1 consumer, MB/s", "≥ 1000"),
]


def load_rounds(directory: Path, labels: list[str]) -> dict[int, dict[str, dict]]:
    """{round: {label: figures}} for the rounds that have a JSON file of at least one label."""
    rounds: dict[int, dict[str, dict]] = {}
    for label in labels:
        for path in directory.glob(f"{label}-round-*.json"):
            match = re.fullmatch(re.escape(label) + r"-round-(\d+)\.json", path.name)
            if match:
                rounds.setdefault(int(match.group(1)), {})[label] = json.loads(path.read_text())
    return dict(sorted(rounds.items()))


def figure(figures: dict | None, key: str) -> float | None:
    if figures is None:
        return None
    value = figures.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def ratios(rounds: dict[int, dict[str, dict]], key: str, label: str, base: str) -> list[float]:
    """The label's figure over the base's, per round where both were measured."""
    out = []
    for by_label in rounds.values():
        value, base_value = figure(by_label.get(label), key), figure(by_label.get(base), key)
        if value is not None and base_value:
            out.append(value / base_value)
    return out


def fmt(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"


def markdown(rounds: dict[int, dict[str, dict]], labels: list[str]) -> str:
    base = labels[0]
    lines = [
        f"{len(rounds)} rounds; ratios are each variant's figure over `{base}`'s in the same round.",
        "",
        "| figure | goal | " + " | ".join(f"`{label}` per round | `{label}` median" for label in labels)
        + "".join(f" | `{label}`/`{base}` per round (median)" for label in labels[1:]) + " |",
        "|---|---|" + "---:|---:|" * len(labels) + "---:|" * (len(labels) - 1),
    ]
    for key, title, goal in FIGURES:
        cells = [title, goal or ""]
        for label in labels:
            values = [figure(by_label.get(label), key) for by_label in rounds.values()]
            measured = [v for v in values if v is not None]
            cells.append(" / ".join(fmt(v) for v in values))
            cells.append(fmt(statistics.median(measured)) if measured else "–")
        for label in labels[1:]:
            per_round = ratios(rounds, key, label, base)
            cells.append(
                f"{' / '.join(f'{r:.2f}' for r in per_round)} (**{statistics.median(per_round):.2f}x**)"
                if per_round else "–"
            )
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    for label in labels:
        met = {}
        for by_label in rounds.values():
            for goal, ok in (by_label.get(label) or {}).get("met", {}).items():
                met.setdefault(goal, []).append(bool(ok))
        summary = ", ".join(f"{goal} {sum(oks)} of {len(oks)}" for goal, oks in met.items())
        lines.append(f"- `{label}` met: {summary or 'no runs'}.")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", type=Path)
    parser.add_argument("labels", nargs="+")
    args = parser.parse_args()
    rounds = load_rounds(args.dir, args.labels)
    if not rounds:
        parser.error(f"no <label>-round-<n>.json in {args.dir}")
    print(markdown(rounds, args.labels), end="")


if __name__ == "__main__":
    main()
