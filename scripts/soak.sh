#!/usr/bin/env bash
# Soak the broker (issue 14, section 4): 30 minutes by default at 70% of its max throughput, with
# a consumer group whose members come and go, retention, compaction and a restart in the middle;
# RSS, open fds, data dir size and p99 sampled and judged flat. Figures in results/soak/.
#
#   scripts/soak.sh [--duration 30m] [--max-rate MSGS_PER_S] [--out results/soak] [...]
#
# Every flag goes to scripts/soak.py (--help lists them). Builds the release broker and loadgen
# first unless RINGTAIL_BIN / LOADGEN_BIN name prebuilt ones. Exit status 1 if records were lost,
# compaction was wrong or a series was not flat (the verdict in results/soak/summary.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
if [[ -z "${RINGTAIL_BIN:-}" || -z "${LOADGEN_BIN:-}" ]]; then
    cargo build --release --locked -p ringtail-server --bin ringtail -p ringtail-loadgen --bin ringtail-loadgen
fi
exec "$PYTHON" scripts/soak.py --ringtail "${RINGTAIL_BIN:-target/release/ringtail}" \
    --loadgen "${LOADGEN_BIN:-target/release/ringtail-loadgen}" "$@"
