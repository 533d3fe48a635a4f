#!/usr/bin/env bash
# Ringtail beside its peers, the committed figures of results/peers.md: REPS repetitions (default
# 3) of the loadgen matrix on the ordinary filesystem, each running Ringtail, Apache Kafka
# (scripts/kafka-peer.sh) and, when installed, tansu (sqlite) back to back, every run on a fresh
# broker. The last repetition is written to results/ (its reports, charts and index); the earlier
# ones to /var/tmp/ringtail-peers/rep-N. results/peers.md: each broker's medians and
# ringtail ÷ peer per scenario (the median of the per-repetition ratios).
#   DURATION_S (default 6) measured and WARMUP_S (default 2) warm-up seconds per run.
# tansu: cargo install --root ~/.cache/ringtail/tansu tansu --features dynostore,libsql
set -euo pipefail
cd "$(dirname "$0")/.."
reps=${REPS:-3}
duration_s=${DURATION_S:-6}
warmup_s=${WARMUP_S:-2}
cargo build --release --locked -p ringtail-server -p ringtail-loadgen
bash scripts/kafka-peer.sh fetch >/dev/null
loadgen=target/release/ringtail-loadgen
# tansu takes about a minute to build a 1 GB backlog and long to create 1024 partitions: the
# scenarios below are the ones it finishes within a run's time (as in bench-matrix.sh).
tansu_scenarios=max-produce,durable-produce,fixed-rate-latency,e2e-latency,partitions-1,partitions-16
status=0
dirs=()
for rep in $(seq 1 "$reps"); do
  if [ "$rep" -eq "$reps" ]; then dir=results; else dir=/var/tmp/ringtail-peers/rep-$rep; fi
  mkdir -p "$dir"
  dirs+=("$dir")
  echo "== repetition $rep of $reps → $dir"
  "$loadgen" matrix --brokers ringtail,kafka --layouts fs --duration-s "$duration_s" \
    --warmup-s "$warmup_s" --results-dir "$dir" "$@" || status=$?
  "$loadgen" matrix --brokers tansu --layouts fs --scenarios "$tansu_scenarios" \
    --duration-s "$duration_s" --warmup-s "$warmup_s" --results-dir "$dir" "$@" || status=$?
done
{
  echo "# Ringtail beside Apache Kafka and tansu"
  echo
  echo "Made by \`REPS=$reps DURATION_S=$duration_s WARMUP_S=$warmup_s bash scripts/bench-peers.sh\`" \
    "($(date -u +%Y-%m-%d), commit $(git describe --always --dirty), $(nproc) cores shared by broker" \
    "and load generator). Each broker's configuration is in \`<scenario>/<broker>-fs-broker.txt\`."
  echo
  python3 scripts/matrix_ratios.py --layout fs "${dirs[@]}"
} > results/peers.md
echo "wrote results/peers.md"
exit "$status"
