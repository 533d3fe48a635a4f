#!/usr/bin/env bash
# The loadgen's partition-move scenario (layout jbod) run RUNS times (default 3) against this
# tree's release broker; each run's report goes to results/partition-move/runs/<n>/, and the
# medians of the move's figures (p99 before/during and their ratio, move seconds, switch pause,
# broker CPU) to results/partition-move/medians.md. The machine is shared and noisy: read the
# ratios and medians, not one run. Needs root (loop devices or tmpfs mounts).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${RUNS:-3}"
DURATION_S="${DURATION_S:-20}"
out=results/partition-move
mkdir -p "$out/runs"
command="ringtail-loadgen matrix --scenarios partition-move --layouts jbod --brokers ringtail --duration-s $DURATION_S --disk-bytes 2147483648"
for n in $(seq 1 "$RUNS"); do
    dir="$out/runs/$n"
    rm -rf "$dir"
    target/release/ringtail-loadgen matrix --scenarios partition-move --layouts jbod --brokers ringtail \
        --duration-s "$DURATION_S" --disk-bytes 2147483648 --results-dir "$dir" --quiet
    # Keep the report and its markdown; charts and broker logs are large and say nothing more here.
    find "$dir" -type f ! -name 'ringtail-jbod.json' ! -name 'ringtail-jbod.md' -delete
    find "$dir" -type d -empty -delete
done
.venv/bin/python - "$out" "$RUNS" "$command" <<'PY'
import json, statistics, sys
from pathlib import Path
out, runs, command = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rows = []
for n in range(1, runs + 1):
    report = json.loads((out / "runs" / str(n) / "partition-move" / "ringtail-jbod.json").read_text())
    move = report["partition_move"]
    rows.append({
        "p99 before ms": move["produce_latency_before_us"]["p99"] / 1000,
        "p99 during ms": move["produce_latency_during_us"]["p99"] / 1000,
        "p99 during/before": move["p99_during_over_before"],
        "max during ms": move["produce_latency_during_us"]["max"] / 1000,
        "move s": move["move_s"],
        "switch pause ms": move["switch_pause_ms"],
        "broker CPU s during move": move["broker_cpu_during_s"],
        "broker CPU s whole run": report["broker_cpu_s"],
        "produce MB/s": report["produce"]["mb_per_s"],
        "failed msgs": report["produce"]["failed_messages"],
        "error": move["error"],
        "disks": report["label"],
    })
keys = [k for k in rows[0] if k not in ("error", "disks")]
lines = ["# partition-move: a busy partition moved between two data dirs during a fixed-rate run", "",
         f"Command: `RUNS={runs} scripts/partition-move-bench.sh` (each run: `{command}`).", "",
         "Scenario: 1 partition, 1 producer at 5000 msgs/s of 1 KiB (acks=1) over a 500 MB backlog; 5 s into the "
         "measured window the partition is moved to the other data dir (AlterReplicaLogDirs), copy paced at "
         "50 MB/s (`--move-bytes-per-sec`). \"before\"/\"during\": messages whose intended send time falls before "
         "the move was asked for / between that and the partition living in its new dir. The switch pause is "
         "the broker's `switch_pause_ms` log field. Machine: 2 cores shared with other jobs — compare medians "
         "and ratios, not single runs.", "",
         "| run | " + " | ".join(keys) + " |", "|---|" + "---:|" * len(keys)]
def fmt(v):
    return "n/a" if v is None else (f"{v:.2f}" if isinstance(v, float) else str(v))
for i, row in enumerate(rows, 1):
    lines.append(f"| {i} | " + " | ".join(fmt(row[k]) for k in keys) + " |")
medians = {k: statistics.median([r[k] for r in rows if r[k] is not None]) if any(r[k] is not None for r in rows) else None for k in keys}
lines.append("| **median** | " + " | ".join(f"**{fmt(medians[k])}**" for k in keys) + " |")
errors = [f"run {i}: {r['error']}" for i, r in enumerate(rows, 1) if r["error"]]
lines += ["", "Move errors: " + ("; ".join(errors) if errors else "none") + "."]
(out / "medians.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
PY
