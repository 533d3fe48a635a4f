#!/usr/bin/env bash
# cold catch-up with shards pinned (default) and unpinned, alternating
cd /work/main
for rep in 1 2 3; do
  for variant in pinned unpinned; do
    extra=()
    [ "$variant" = unpinned ] && extra=(--ringtail-arg=--pin-shards --ringtail-arg=false)
    dir=/var/tmp/pin-cold/$variant-$rep
    rm -rf $dir; mkdir -p $dir
    echo "== $variant rep $rep $(date -u +%H:%M:%S)"
    target/release/ringtail-loadgen matrix --brokers ringtail --layouts fs "${extra[@]}" \
      --scenarios cold-catch-up-alone,cold-catch-up --backlog-bytes-max 20000000000 \
      --duration-s 10 --warmup-s 2 --results-dir $dir --quiet
  done
done
echo done
