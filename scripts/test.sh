#!/usr/bin/env bash
# The whole test suite: what README tells users to run and what CI runs.
# 1. Unit, property, recovery and crash tests of every crate (cargo test; arguments go to it).
# 2. Client compatibility tests: real, unchanged Kafka clients (confluent-kafka, kafka-python,
#    aiokafka, kcat, kafkajs) against the real `ringtail` binary (tests/compat; they build it with
#    cargo build --release). scripts/setup-test-deps.sh installs the clients first (quick when
#    they are there already).
# No timing assertions anywhere: speed is measured by benches/ and reported in results/.
set -euo pipefail
cd "$(dirname "$0")/.."
# Dependencies first: the loadgen's disk-layout test needs mkfs.xfs (xfsprogs) to run its
# xfs-loop case rather than skip it.
bash scripts/setup-test-deps.sh
cargo test --workspace --locked "$@"

status=0
.venv/bin/python -m pytest tests/compat -q || status=$?
if [ "$status" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no compatibility tests" >&2
fi
exit "$status"
