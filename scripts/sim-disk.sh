#!/usr/bin/env bash
# Long run of the engine's simulated-disk model tests (engine/tests/sim_disk.rs).
#
# Usage: scripts/sim-disk.sh [SEEDS]     (default 20000; CI runs 1000 through `cargo test`)
# Runs SEEDS seeds of the every_batch model, SEEDS/4 of the `none` loss-window check and
# SEEDS/10 of each injected-fault test, in release mode, and prints the figures. A failing seed is
# printed with the command that replays it (RINGTAIL_SIM_SEED=<seed>).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seeds=${1:-20000}
[[ $seeds =~ ^[0-9]+$ && $seeds -gt 0 ]] || { echo "usage: $0 [SEEDS]" >&2; exit 2; }
run() {
    RINGTAIL_SIM_SEEDS=$2 cargo test --release -p ringtail-engine --test sim_disk "$1" -- --nocapture --test-threads 1
}
run every_batch "$seeds"
run none_policy $(( (seeds + 3) / 4 ))
run faults:: $(( (seeds + 9) / 10 ))
