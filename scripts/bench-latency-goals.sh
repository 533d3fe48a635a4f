#!/usr/bin/env bash
# Issue 13's goals, measured: REPS repetitions (default 3) of the loadgen matrix on the ordinary
# filesystem with the scenarios the goals are stated in, then scripts/latency_goals.py judges them
# (medians over the repetitions, ratios within each) beside the disk's cold sequential read speed
# measured in the same session. Writes results/latency-goals.md (and .json); the last repetition's
# reports and charts go to results/<scenario>/ (and the matrix index in results/README.md), the
# earlier ones to /var/tmp/ringtail-goals/rep-N.
#   - max-produce, fixed-rate-latency (half of max-produce), max-produce-consume: Ringtail and
#     Apache Kafka (scripts/kafka-peer.sh) back to back;
#   - cold-catch-up-alone, cold-catch-up, cold-catch-up-naive: Ringtail, 4 GB backlog evicted from
#     the page cache, residency check on and off.
#   DURATION_S (default 10) measured and WARMUP_S (default 2) warm-up seconds per run.
# Run it on a quiet machine: these are latency figures.
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
duration_s=${DURATION_S:-10}
warmup_s=${WARMUP_S:-2}
work=${WORK_DIR:-/var/tmp/ringtail-goals}
cargo build --release --locked -p ringtail-server -p ringtail-loadgen
bash scripts/kafka-peer.sh fetch >/dev/null
loadgen=target/release/ringtail-loadgen
dirs=()
for rep in $(seq 1 "$reps"); do
  if [ "$rep" -eq "$reps" ]; then dir=results; else dir=$work/rep-$rep; fi
  mkdir -p "$dir"
  dirs+=("$dir")
  echo "== repetition $rep of $reps → $dir"
  "$loadgen" matrix --brokers ringtail,kafka --layouts fs \
    --scenarios max-produce,fixed-rate-latency,max-produce-consume \
    --duration-s "$duration_s" --warmup-s "$warmup_s" --results-dir "$dir" --quiet
  "$loadgen" matrix --brokers ringtail --layouts fs \
    --scenarios cold-catch-up-alone,cold-catch-up,cold-catch-up-naive --backlog-bytes-max 4000000000 \
    --duration-s "$duration_s" --warmup-s "$warmup_s" --results-dir "$dir" --quiet
done
mkdir -p "$work"
{
  echo "# Issue 13's goals"
  echo
  echo "Made by \`REPS=$reps DURATION_S=$duration_s WARMUP_S=$warmup_s bash scripts/bench-latency-goals.sh\`" \
    "($(date -u +%Y-%m-%dT%H:%MZ), commit $(git describe --always --dirty), $(nproc) cores shared by broker" \
    "and load generator, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))." \
    "Per-run reports and charts of the last repetition: \`<scenario>/ringtail-fs.md\` and \`kafka-fs.md\`."
  echo
  python3 scripts/latency_goals.py --measure-disk "$work" --json results/latency-goals.json "${dirs[@]}"
} > results/latency-goals.md
cat results/latency-goals.md
