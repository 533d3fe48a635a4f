#!/bin/bash
# ringtail, its io-wq workers reniced to NICE (default -10) every 0.1 s (experiment only)
"$(dirname "$0")"/../../target/release/ringtail "$@" &
bp=$!
trap 'kill $bp 2>/dev/null; wait $bp; exit 0' TERM INT
while kill -0 $bp 2>/dev/null; do
  for t in /proc/$bp/task/*; do
    case "$(cat $t/comm 2>/dev/null)" in iou-wrk*) renice -n ${NICE:--10} -p ${t##*/} > /dev/null 2>&1;; esac
  done
  sleep 0.1
done
