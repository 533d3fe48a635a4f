#!/usr/bin/env bash
# The long form of tests/compat/test_power_loss.py: the real broker on tests/forgetful-fs, powered
# off ROUNDS times (default 200) under flush=every_batch, every acknowledged record and committed
# offset checked after each power loss; then the flush=none run that must show a loss. The CI runs
# the short form (20 rounds) with scripts/test.sh.
#
#   ROUNDS=1000 SEED=42 scripts/power-loss.sh
#
# SEED (default: random, printed) fixes the kill points and the torn writes' sectors, up to the
# timing of the broker's group commits. Each run's figures are appended as one JSON line per test
# to results/power-loss/runs.jsonl (seed, rounds, power losses, records acknowledged, records read
# back and checked, the filesystem's counters). Needs root and /dev/fuse.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS="${ROUNDS:-200}"
SEED="${SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}"
mkdir -p results/power-loss
echo "== power-loss: ${ROUNDS} rounds, seed ${SEED}"
cargo build --release --locked -p ringtail-server --bin ringtail
cargo build --release --locked -p forgetful-fs --bin forgetful-fs
POWER_LOSS_ROUNDS="$ROUNDS" POWER_LOSS_SEED="$SEED" \
  POWER_LOSS_REPORT="$PWD/results/power-loss/runs.jsonl" \
  RINGTAIL_BIN="$PWD/target/release/ringtail" FORGETFUL_FS_BIN="$PWD/target/release/forgetful-fs" \
  .venv/bin/python -m pytest tests/compat/test_power_loss.py -q "$@"
tail -n 2 results/power-loss/runs.jsonl
