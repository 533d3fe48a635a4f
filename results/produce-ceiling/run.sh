#!/bin/bash
# Alternating, REPS repetitions (default 5): ringtail + loadgen at RATE msg/s of 1 KiB (default
# 850000; scripts/ab_broker.py, one run, a fresh broker with its defaults), then the ceiling
# (benches/src/bin/produce_ceiling.rs) with buffered writes and drop behind, then with no writes.
# Needs: cargo build --release -p ringtail-server -p ringtail-loadgen -p ringtail-benches.
# Appends to ringtail-RATE.jsonl and ceiling-RATE.jsonl beside this script.
set -e
cd "$(git rev-parse --show-toplevel)"
OUT=results/produce-ceiling
RATE=${RATE:-850000}
for rep in $(seq "${REPS:-5}"); do
  python3 scripts/ab_broker.py --reps 1 --port 29711 --out "$OUT/ringtail-$RATE.jsonl" \
    --loadgen "--topic T --partitions 4 --message-bytes 1024 --producers 1 --consumers 0 --acks 1 --rate $RATE --duration-s 10 --warmup-s 2" \
    ringtail=target/release/ringtail | grep '^rep' | cut -c1-200
  for w in buffered none; do
    ./target/release/produce_ceiling --rate-msg-s "$RATE" --write $w --dir target/tmp --duration-s 10 --warmup-s 2 \
      | tee -a "$OUT/ceiling-$RATE.jsonl"
  done
done
