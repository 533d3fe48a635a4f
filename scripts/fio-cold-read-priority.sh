#!/usr/bin/env bash
# What IOPRIO_CLASS_IDLE on cold reads does at this machine's disk, without the broker
# (`--fetch-cold-read-priority`, results/cold-read-priority/): fio, O_DIRECT through io_uring, in a
# scratch directory on the data disk, REPS (default 3) repetitions alternating the reader's class
# (best effort, idle), DURATION_S (default 12) seconds each, two workloads:
#   - live: a writer at 150 MB/s (256 KiB direct writes, one at a time, as a producer's flushes)
#     beside a catch-up reader (1 MiB reads, 8 in flight, as the broker's two ranges of four):
#     the writer's completion latency and the reader's speed;
#   - saturated: a writer flat out (1 MiB, 8 in flight) beside the same reader (4 in flight):
#     how far the reader starves.
# AGING_MS=N sets the disk's mq-deadline prio_aging_expire (how long an idle read may wait) for the
# runs and puts the old value back after (root).
# Prints a markdown table of medians (and every run) and writes the raw fio JSON under WORK_DIR.
# Needs fio (`apt-get install fio`). Run it on a quiet machine.
set -euo pipefail
reps=${REPS:-3}
duration_s=${DURATION_S:-12}
work=${WORK_DIR:-/var/tmp/ringtail-fio-prio}
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 1; }
mkdir -p "$work"
cd "$work"
if [ ! -f read.bin ]; then
  fio --name=prep --filename=read.bin --size=6G --rw=write --bs=1M --direct=1 \
    --ioengine=io_uring --iodepth=8 >/dev/null
fi
# The block scheduler of the disk under WORK_DIR (a partition's parent disk holds the queue).
source_dev=$(findmnt -no SOURCE -T "$work")
disk=$(lsblk -no PKNAME "$source_dev" 2>/dev/null | head -1)
disk=${disk:-$(basename "$source_dev")}
aging_file=/sys/block/$disk/queue/iosched/prio_aging_expire
if [ -n "${AGING_MS:-}" ]; then
  old_aging=$(cat "$aging_file")
  trap 'echo "$old_aging" > "$aging_file"' EXIT
  echo "$AGING_MS" > "$aging_file"
fi
common=(--output-format=json --ioengine=io_uring --direct=1 --time_based "--runtime=$duration_s")
for rep in $(seq 1 "$reps"); do
  for class in 2 3; do
    fio "${common[@]}" \
      --name=write --filename=write.bin --size=2G --rw=write --bs=256k --iodepth=1 --rate=150m \
      --name=read --filename=read.bin --size=6G --rw=read --bs=1M --iodepth=8 --prioclass=$class \
      >"live-$class-$rep.json"
    fio "${common[@]}" \
      --name=write --filename=write.bin --size=2G --rw=write --bs=1M --iodepth=8 \
      --name=read --filename=read.bin --size=6G --rw=read --bs=1M --iodepth=4 --prioclass=$class \
      >"saturated-$class-$rep.json"
  done
done
scheduler="$disk: $(cat "/sys/block/$disk/queue/scheduler" 2>/dev/null || echo unknown)"
aging=$(cat "$aging_file" 2>/dev/null || echo "-")
python3 - "$reps" "$scheduler, prio_aging_expire $aging ms" <<'EOF'
import json, statistics, sys
reps = int(sys.argv[1])
names = {2: "best effort (normal)", 3: "idle"}
def load(kind, cls, rep):
    jobs = json.load(open(f"{kind}-{cls}-{rep}.json"))["jobs"]
    return jobs[0]["write"], jobs[1]["read"]
def ms(ns):
    return ns / 1e6
print(f"block scheduler: {sys.argv[2]}; {reps} runs of each, alternating; medians in bold")
print()
print("| reader's class | live: write p50 ms | write p99 ms | write p99.9 ms | reader MB/s | saturated: writer MB/s | reader MB/s | read max ms |")
print("|---|---|---|---|---|---|---|---|")
for cls in (2, 3):
    rows = {k: [] for k in ("p50", "p99", "p999", "rd", "sw", "sr", "smax")}
    for rep in range(1, reps + 1):
        w, r = load("live", cls, rep)
        p = w["clat_ns"]["percentile"]
        rows["p50"].append(ms(p["50.000000"]))
        rows["p99"].append(ms(p["99.000000"]))
        rows["p999"].append(ms(p["99.900000"]))
        rows["rd"].append(r["bw_bytes"] / 1e6)
        w, r = load("saturated", cls, rep)
        rows["sw"].append(w["bw_bytes"] / 1e6)
        rows["sr"].append(r["bw_bytes"] / 1e6)
        rows["smax"].append(ms(r["clat_ns"]["max"]))
    cell = lambda k, f: f"**{f.format(statistics.median(rows[k]))}** ({', '.join(f.format(v) for v in rows[k])})"
    print(f"| {names[cls]} | {cell('p50', '{:.2f}')} | {cell('p99', '{:.1f}')} | {cell('p999', '{:.1f}')} | {cell('rd', '{:.0f}')} | {cell('sw', '{:.0f}')} | {cell('sr', '{:.0f}')} | {cell('smax', '{:.0f}')} |")
EOF
