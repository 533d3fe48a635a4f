#!/usr/bin/env bash
# Whether this machine's disk gives more read bandwidth to more reads in flight, without the
# broker (results/cold-read-waits/): fio, O_DIRECT through io_uring, 4 MiB sequential reads of a
# file written just before, at DEPTHS (default "1 2 4 8") in flight, REPS (default 3) repetitions
# alternating the depths, each reading 2 GiB at another offset of an 8 GiB file. Prints MB/s and
# the mean completion latency per run. A device capped in bandwidth reads the same MB/s at every
# depth, its latency growing with the depth. Needs fio (`apt-get install fio`).
set -euo pipefail
reps=${REPS:-3}
depths=${DEPTHS:-"1 2 4 8"}
work=${WORK_DIR:-/var/tmp/ringtail-fio-depths}
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 1; }
mkdir -p "$work"
file=$work/read.bin
trap 'rm -f "$file"' EXIT
fio --name=prep --filename="$file" --size=8G --bs=4M --direct=1 --ioengine=io_uring --iodepth=8 \
  --rw=write --output-format=terse >/dev/null
echo "| repetition | reads in flight | offset | MB/s | mean latency ms |"
echo "|---:|---:|---:|---:|---:|"
for rep in $(seq 1 "$reps"); do
  for depth in $depths; do
    offset_gib=$(( (rep + depth) % 4 * 2 ))
    fio --name=read --filename="$file" --size=2G --offset=${offset_gib}G --bs=4M --direct=1 \
      --ioengine=io_uring --iodepth="$depth" --rw=read --output-format=json 2>/dev/null |
      python3 -c "
import json, sys
text = sys.stdin.read()
job = json.loads(text[text.index('{'):])['jobs'][0]['read']
print(f\"| $rep | $depth | ${offset_gib} GiB | {job['bw_bytes'] / 1e6:.0f} | {job['clat_ns']['mean'] / 1e6:.2f} |\")"
  done
done
