#!/usr/bin/env bash
# Whether this machine's disk gives more read bandwidth to more reads in flight, or to larger
# requests, without the broker (results/cold-read-waits/): fio, O_DIRECT through io_uring,
# sequential reads of a file written just before, at DEPTHS (default "1 2 4 8") in flight and
# read sizes SIZES (default "4M"), REPS (default 3) repetitions alternating them, each reading
# 1 GiB at another offset of an 8 GiB file. IOMEM (default malloc) is fio's buffer memory:
# `HUGE=1` puts the buffers in huge pages (a hugetlbfs mount at /mnt/huge, made if missing; root),
# as the broker's cold buffers are, so a 4 MiB read can go to the disk as one request; in 4 KiB
# pages it is split. Prints MB/s, mean completion latency and the disk's request size per run
# (from /sys/block/*/stat). A device capped in bandwidth reads the same MB/s at every depth, its
# latency growing with the depth. Needs fio (`apt-get install fio`).
set -euo pipefail
reps=${REPS:-3}
depths=${DEPTHS:-"1 2 4 8"}
sizes=${SIZES:-4M}
work=${WORK_DIR:-/var/tmp/ringtail-fio-depths}
command -v fio >/dev/null || { echo "fio is not installed (apt-get install fio)" >&2; exit 1; }
mkdir -p "$work"
iomem=malloc
file=$work/read.bin
restore=()
trap 'rm -f "$file"; for step in "${restore[@]}"; do eval "$step"; done' EXIT
if [ "${HUGE:-0}" = 1 ]; then
  mkdir -p /mnt/huge
  if ! mountpoint -q /mnt/huge; then
    mount -t hugetlbfs none /mnt/huge
    restore+=("umount /mnt/huge")
  fi
  # 512 huge pages (1 GiB) hold every buffer at depth 8 of 8 MiB reads; put back as found.
  hugepages_before=$(cat /proc/sys/vm/nr_hugepages)
  if [ "$hugepages_before" -lt 512 ]; then
    echo 512 > /proc/sys/vm/nr_hugepages
    restore+=("echo $hugepages_before > /proc/sys/vm/nr_hugepages")
  fi
  iomem=mmaphuge:/mnt/huge/fio-read-depths
fi
fio --name=prep --filename="$file" --size=8G --bs=4M --direct=1 --ioengine=io_uring --iodepth=8 \
  --rw=write --output-format=terse >/dev/null
# The block device holding the file (a partition's own counters if it is one); none on overlay,
# tmpfs or btrfs, where the request size column says "—".
stat_file=/sys/dev/block/$(stat -c '%Hd:%Ld' "$file")/stat
reads_and_sectors() { if [ -r "$stat_file" ]; then awk '{print $1, $3}' "$stat_file"; else echo "0 0"; fi; }
echo "| repetition | read size | reads in flight | buffers | MB/s | mean latency ms | disk request KiB |"
echo "|---:|---:|---:|---|---:|---:|---:|"
for rep in $(seq 1 "$reps"); do
  for size in $sizes; do
    for depth in $depths; do
      offset_gib=$(( (rep * 3 + depth + ${#size}) % 8 ))
      before=$(reads_and_sectors)
      json=$(fio --name=read --filename="$file" --size=1G --offset=${offset_gib}G --bs="$size" \
        --direct=1 --ioengine=io_uring --iodepth="$depth" --rw=read --iomem="$iomem" \
        --output-format=json)
      after=$(reads_and_sectors)
      python3 -c "
import json, sys
text = sys.argv[1]
job = json.loads(text[text.index('{'):])['jobs'][0]['read']
(r0, s0), (r1, s1) = (map(int, sys.argv[2].split()), map(int, sys.argv[3].split()))
request_kib = f'{(s1 - s0) * 512 / 1024 / (r1 - r0):.0f}' if r1 > r0 else '—'
print(f\"| $rep | $size | $depth | ${iomem%%:*} | {job['bw_bytes'] / 1e6:.0f} | {job['clat_ns']['mean'] / 1e6:.2f} | {request_kib} |\")" \
        "$json" "$before" "$after"
    done
  done
done
