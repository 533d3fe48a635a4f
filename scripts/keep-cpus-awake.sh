#!/usr/bin/env bash
# Keeps every vCPU of this VM from halting while a command runs: one SCHED_IDLE busy loop per CPU.
# SCHED_IDLE threads run only when nothing else wants the CPU, so they take little time from the
# broker or the load generator, but a vCPU that never halts needs no host wake-up (an IPI and the
# host's scheduler) before it runs again. An experiment switch: whether the 70-190 ms produce
# stalls seen on these VMs now and then are such wake-ups is not settled
# (results/produce-stalls/README.md). Never for tests.
# Usage: scripts/keep-cpus-awake.sh COMMAND [ARGS...]   (needs chrt, util-linux)
set -euo pipefail
spinners=()
for _ in $(seq 1 "$(nproc)"); do
  chrt --idle 0 sh -c 'while :; do :; done' &
  spinners+=($!)
done
trap 'kill "${spinners[@]}" 2>/dev/null || true' EXIT
"$@"
