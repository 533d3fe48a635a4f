#!/usr/bin/env bash
# Issue 13's goals, measured: REPS repetitions (default 3) of the loadgen matrix on the ordinary
# filesystem with the scenarios the goals are stated in, then scripts/latency_goals.py judges them
# (medians over the repetitions, ratios within each) beside the disk's cold sequential read speed
# measured in the same session. Writes results/latency-goals.md (and .json); the last repetition's
# reports and charts go to results/<scenario>/ (and the matrix index in results/README.md), the
# earlier ones to /var/tmp/ringtail-goals/rep-N.
#   - max-produce, fixed-rate-latency (half of max-produce), max-produce-consume: Ringtail and
#     Apache Kafka (scripts/kafka-peer.sh) back to back;
#   - cold-catch-up-alone, cold-catch-up, cold-catch-up-idle-client, cold-catch-up-naive: Ringtail,
#     20 GB backlog evicted from the page cache, residency check on and off, and the reader's
#     client on the cores as a normal thread or standing for one on another machine.
#   The disk is measured in the same session: a buffered read back of a dropped file, and fio
#   (direct, 1 MiB, 8 deep; installed with apt-get when missing and running as root); each
#   repetition probes it just before and after its catch-up runs, and its reader is judged
#   against the fastest of its probes.
#   DURATION_S (default 10) measured and WARMUP_S (default 2) warm-up seconds per run.
#   KEEP_CPUS_AWAKE=1 runs every matrix under scripts/keep-cpus-awake.sh (the vCPUs never halt, so
#   a host wake-up cannot stall them; an experiment, results/produce-stalls/) and writes
#   results/latency-goals-awake.md (and .json) instead, leaving results/<scenario>/ alone.
#   RINGTAIL_ARGS="--write-direct true" gives every Ringtail broker those flags (the matrix's
#   --ringtail-arg) and writes results/latency-goals-$GOALS_NAME.md (and .json; GOALS_NAME
#   defaults to "flags"), also leaving results/<scenario>/ alone.
#   RINGTAIL_BIN=PATH runs that broker binary instead of this tree's (the matrix's --ringtail-bin;
#   scripts/ringtail-at.sh gives an earlier commit's) and, like RINGTAIL_ARGS, writes
#   results/latency-goals-$GOALS_NAME.md, leaving results/<scenario>/ alone.
# Run it on a quiet machine: these are latency figures.
set -euo pipefail
# A relative RINGTAIL_BIN names a file from where the script was started, not from the repo root
# (where it runs) nor from the run's output directory (where the loadgen starts the broker).
case ${RINGTAIL_BIN:-} in ''|/*) ;; *) RINGTAIL_BIN=$PWD/$RINGTAIL_BIN ;; esac
cd "$(dirname "$0")/.."
reps=${REPS:-3}
duration_s=${DURATION_S:-10}
warmup_s=${WARMUP_S:-2}
work=${WORK_DIR:-/var/tmp/ringtail-goals}
wrap=()
goals=results/latency-goals
last=results
if [ "${KEEP_CPUS_AWAKE:-0}" = 1 ]; then
  wrap=(scripts/keep-cpus-awake.sh)
  goals=results/latency-goals-awake
  last=$work/awake-rep-$reps
fi
ringtail_flags=()
for arg in ${RINGTAIL_ARGS:-}; do ringtail_flags+=("--ringtail-arg=$arg"); done
if [ -n "${RINGTAIL_BIN:-}" ]; then
  [ -x "$RINGTAIL_BIN" ] || { echo "bench-latency-goals: RINGTAIL_BIN=$RINGTAIL_BIN is not an executable" >&2; exit 2; }
  ringtail_flags+=("--ringtail-bin=$RINGTAIL_BIN")
fi
# Any other broker than the default leaves the default's results alone.
if [ ${#ringtail_flags[@]} -gt 0 ]; then
  goals=results/latency-goals-${GOALS_NAME:-flags}
  last=$work/${GOALS_NAME:-flags}-rep-$reps
fi
# The catch-up goal is judged against the disk measured in the same session. Without fio only a
# buffered read-back measures it, and the host's cache can serve that at twice the disk's speed
# (results/write-direct-2026-12-05/), so fio is installed where it can be.
if ! command -v fio >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null 2>&1 \
      || { apt-get update -qq >/dev/null 2>&1 \
           && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fio >/dev/null 2>&1; }; } \
      || echo "bench-latency-goals: fio could not be installed; the disk is measured by read-back only" >&2
  else
    echo "bench-latency-goals: no fio (install it as root); the disk is measured by read-back only" >&2
  fi
fi
cargo build --release --locked -p ringtail-server -p ringtail-loadgen
bash scripts/kafka-peer.sh fetch >/dev/null
loadgen=target/release/ringtail-loadgen
dirs=()
for rep in $(seq 1 "$reps"); do
  if [ "$rep" -eq "$reps" ]; then dir=$last; else dir=$work/rep-$rep; fi
  mkdir -p "$dir"
  dirs+=("$dir")
  echo "== repetition $rep of $reps → $dir"
  "${wrap[@]}" "$loadgen" matrix --brokers ringtail,kafka --layouts fs "${ringtail_flags[@]}" \
    --scenarios max-produce,fixed-rate-latency,max-produce-consume \
    --duration-s "$duration_s" --warmup-s "$warmup_s" --results-dir "$dir" --quiet
  # The disk just before and after the catch-up runs: this repetition's reader is judged against
  # what the (shared, drifting) disk gave around it.
  rm -f "$dir/disk-probes.jsonl"
  mkdir -p "$work"
  python3 scripts/latency_goals.py --measure-disk "$work" --probe-disk-into "$dir"
  "${wrap[@]}" "$loadgen" matrix --brokers ringtail --layouts fs "${ringtail_flags[@]}" \
    --scenarios cold-catch-up-alone,cold-catch-up,cold-catch-up-idle-client,cold-catch-up-naive --backlog-bytes-max 20000000000 \
    --duration-s "$duration_s" --warmup-s "$warmup_s" --results-dir "$dir" --quiet
  python3 scripts/latency_goals.py --measure-disk "$work" --probe-disk-into "$dir"
done
mkdir -p "$work"
{
  echo "# Issue 13's goals"
  echo
  echo "Made by \`REPS=$reps DURATION_S=$duration_s WARMUP_S=$warmup_s KEEP_CPUS_AWAKE=${KEEP_CPUS_AWAKE:-0}${RINGTAIL_ARGS:+ RINGTAIL_ARGS=\"$RINGTAIL_ARGS\"}${RINGTAIL_BIN:+ RINGTAIL_BIN=$RINGTAIL_BIN}${GOALS_NAME:+ GOALS_NAME=$GOALS_NAME} bash scripts/bench-latency-goals.sh\`" \
    "($(date -u +%Y-%m-%dT%H:%MZ), commit $(git describe --always --dirty), $(nproc) cores shared by broker" \
    "and load generator, load average at the end: $(cut -d' ' -f1-3 /proc/loadavg))." \
    "Per-run reports and charts of the last repetition: \`$last/<scenario>/ringtail-fs.md\` and \`kafka-fs.md\`."
  echo
  python3 scripts/latency_goals.py --measure-disk "$work" --json "$goals.json" "${dirs[@]}"
} > "$goals.md"
cat "$goals.md"
