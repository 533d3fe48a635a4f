#!/bin/bash
# Alternating, 5 repetitions: ringtail + loadgen at 850k msg/s (ab_broker, one run), then the ceiling with buffered writes (drop behind), then with none.
set -e
# Needs: cargo build --release (ringtail, ringtail-loadgen, produce_ceiling). Appends to ringtail.jsonl and ceiling.jsonl here.
cd "$(git rev-parse --show-toplevel)"
OUT=results/produce-ceiling
for rep in 1 2 3 4 5; do
  python3 scripts/ab_broker.py --reps 1 --port 29711 --out $OUT/ringtail.jsonl \
    --loadgen "--topic T --partitions 4 --message-bytes 1024 --producers 1 --consumers 0 --acks 1 --rate 850000 --duration-s 10 --warmup-s 2" \
    ringtail=target/release/ringtail | grep '^rep' | cut -c1-200
  for w in buffered none; do
    ./target/release/produce_ceiling --rate-msg-s 850000 --write $w --dir target/tmp --duration-s 10 --warmup-s 2 | tee -a $OUT/ceiling.jsonl
  done
done
