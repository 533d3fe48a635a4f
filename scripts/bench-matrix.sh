#!/usr/bin/env bash
# The committed matrix (results/<scenario>/ and the index in results/README.md), re-runnable:
#   1. Ringtail on every disk layout (ordinary fs, tmpfs, xfs and ext4 loop images with direct
#      I/O; the loop and tmpfs layouts need root) in every scenario.
#   2. Apache Kafka (scripts/kafka-peer.sh: Maven Central jars, KRaft single node, 1 GiB heap,
#      config/kafka/server.properties; flush.messages=1 in durable-produce) in every scenario on
#      the layouts in KAFKA_LAYOUTS (default: all four, like Ringtail).
#   3. The peer tansu (sqlite storage) on the ordinary fs, in the scenarios it can finish in time,
#      when installed at ~/.cache/ringtail/tansu/bin/tansu (the matrix says it skipped it otherwise):
#      cargo install --root ~/.cache/ringtail/tansu tansu --features dynostore,libsql
# Each run: DURATION_S measured seconds after WARMUP_S of warm-up (defaults 10 and 2), broker and
# load generator on the same cores, figures in MB = 10^6 bytes. Extra arguments go to both
# matrix invocations (e.g. --scenarios max-produce).
set -euo pipefail
cd "$(dirname "$0")/.."
duration_s=${DURATION_S:-10}
warmup_s=${WARMUP_S:-2}
kafka_layouts=${KAFKA_LAYOUTS:-fs,tmpfs,xfs-loop,ext4-loop}
cargo build --release --locked -p ringtail-server -p ringtail-loadgen
bash scripts/kafka-peer.sh fetch >/dev/null
loadgen=target/release/ringtail-loadgen
status=0
"$loadgen" matrix --brokers ringtail --duration-s "$duration_s" --warmup-s "$warmup_s" "$@" || status=$?
"$loadgen" matrix --brokers kafka --layouts "$kafka_layouts" --duration-s "$duration_s" \
  --warmup-s "$warmup_s" "$@" || status=$?
# tansu takes about a minute to build a 1 GB backlog and long to create 1024 partitions: the
# scenarios below are the ones it finishes within a run's time.
"$loadgen" matrix --brokers tansu --layouts fs \
  --scenarios max-produce,durable-produce,fixed-rate-latency,e2e-latency,partitions-1,partitions-16 \
  --duration-s "$duration_s" --warmup-s "$warmup_s" "$@" || status=$?
exit "$status"
