#!/usr/bin/env bash
# Consumer-group tests in a loop, to show they hold (a flaky test is a bug: in the broker or the
# test). Not part of scripts/test.sh: it takes tens of minutes.
#
#   bash scripts/stress-groups.sh                 # 5 takeover rounds of 50 kills per protocol,
#                                                 # then 10 rounds of the group test files
#   TAKEOVER_ROUNDS=1 KILLS=100 GROUP_ROUNDS=0 bash scripts/stress-groups.sh
#   RINGTAIL_TAKEOVER_SEED=1234 ...               # replay a seed a failure printed
#
# Every round's output goes to $OUT (default target/stress-groups/); the summary says which
# rounds failed, with their seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
TAKEOVER_ROUNDS=${TAKEOVER_ROUNDS:-5}
KILLS=${KILLS:-50}
GROUP_ROUNDS=${GROUP_ROUNDS:-10}
OUT=${OUT:-target/stress-groups}
mkdir -p "$OUT"
bash scripts/setup-test-deps.sh >/dev/null
cargo build --release --locked -p ringtail-server --bin ringtail
export RINGTAIL_BIN=${RINGTAIL_BIN:-$PWD/target/release/ringtail}
failed=0
for round in $(seq 1 "$TAKEOVER_ROUNDS"); do
  log="$OUT/takeover-$round.log"
  if RINGTAIL_TAKEOVER_KILLS=$KILLS .venv/bin/python -m pytest tests/compat/test_group_takeover.py -q -rA \
      -o timeout=3600 >"$log" 2>&1; then
    echo "takeover round $round: passed ($(grep -m1 -o 'seed [0-9]*' "$log" || true))"
  else
    echo "takeover round $round: FAILED ($(grep -m1 -o 'seed [0-9]*' "$log" || true)); see $log"
    failed=$((failed + 1))
  fi
done
for round in $(seq 1 "$GROUP_ROUNDS"); do
  log="$OUT/groups-$round.log"
  if .venv/bin/python -m pytest tests/compat/test_groups.py tests/compat/test_groups_kip848.py -q -rf \
      >"$log" 2>&1; then
    echo "group tests round $round: $(tail -1 "$log")"
  else
    echo "group tests round $round: FAILED: $(tail -1 "$log"); see $log"
    failed=$((failed + 1))
  fi
done
echo "stress-groups: $failed failed round(s)"
[ "$failed" -eq 0 ]
