#!/bin/bash
# A cold catch-up (the goals' cold-catch-up load: 12 GB backlog dropped from the page cache, one
# consumer from offset 0, a producer at 50,000 msg/s of 1 KiB over 8 partitions) on a fresh
# ringtail; once the reader has read 100 MB cold, 3 s of io_uring and scheduler tracepoints are
# recorded machine-wide, then analysed by who_holds_the_cpu.py and run_queue_waits.py.
# With READER=none the same producer runs alone, on a backlog as large, and is traced after 4 s.
# Usage: [READER=none] [LOADGEN_ARGS="--consumer-priority idle"] bash results/cold-write-waits/trace.sh [RINGTAIL FLAGS...]
# (root, perf, release build; LOADGEN_ARGS are added to the loadgen's)
set -eu
cd "$(git rev-parse --show-toplevel)"
mkdir -p target/tmp
reader="--consumers 1 --start-from earliest"
[ "${READER:-}" = none ] && reader="--consumers 0"
d=$(mktemp -d target/tmp/cold-trace.XXXX)
./target/release/ringtail --data-dir "$d/data" --listen 127.0.0.1:29500 --metrics-listen 127.0.0.1:29501 "$@" > "$d/broker.log" 2>&1 &
broker=$!
sleep 1
./target/release/ringtail-loadgen run --bootstrap 127.0.0.1:29500 --topic T --partitions 8 --message-bytes 1024 \
  --duration-s 10 --warmup-s 2 --producers 1 --rate 50000 --acks 1 $reader \
  --backlog-bytes 12000000000 --evict-backlog-dir "$d/data" --quiet --json "$d/run.json" ${LOADGEN_ARGS:-} > "$d/loadgen.log" 2>&1 &
loadgen=$!
for _ in $(seq 600); do
  if [ "${READER:-}" = none ]; then
    # The backlog is written first (12 GB; the data dir's size passing it is the sign, a
    # heuristic); eviction, the 2 s warm-up and 2 s more follow it.
    [ "$(du -sb "$d/data" | cut -f1)" -gt 12000000000 ] && { sleep 6; break; }
    sleep 0.5; continue
  fi
  cold=$(curl -s 127.0.0.1:29501/metrics | awk '/^ringtail_fetch_cold_bytes_total/ {print int($2)}')
  [ "${cold:-0}" -gt 100000000 ] && break
  sleep 0.5
done
perf record -a -e io_uring:io_uring_queue_async_work -e io_uring:io_uring_complete \
  -e sched:sched_switch -e sched:sched_wakeup \
  -o "$d/trace.data" -- sleep 3 > "$d/perf.log" 2>&1
wait $loadgen
kill $broker; wait $broker || true
rm -rf "$d/data"
perf script -i "$d/trace.data" -F comm,tid,cpu,time,event,trace 2>/dev/null > "$d/trace.txt"
rm -f "$d/trace.data"
python3 results/cold-write-waits/who_holds_the_cpu.py "$d/trace.txt"
python3 results/cold-write-waits/run_queue_waits.py "$d/trace.txt"
python3 -c "import json; p = json.load(open('$d/run.json'))['produce']['latency_us']; print('producer p50 %.2f p99 %.2f p99.9 %.2f ms' % (p['p50'] / 1e3, p['p99'] / 1e3, p['p999'] / 1e3))"
rm -rf "$d"
