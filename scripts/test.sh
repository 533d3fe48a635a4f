#!/usr/bin/env bash
# The whole test suite: what README tells users to run and what CI runs.
# 1. Unit, property, recovery and crash tests of every crate (cargo test; arguments go to it).
# 2. Client compatibility tests: real, unchanged Kafka clients (confluent-kafka, kafka-python,
#    aiokafka, kcat, kafkajs) against the real `ringtail` binary (tests/compat; they build it with
#    cargo build --release). scripts/setup-test-deps.sh installs the clients first (quick when
#    they are there already).
# 3. tests/jvm: the Java client, Kafka Streams and Kafka's CLI tools (JUnit 5, Maven; the Kafka
#    version pinned in tests/jvm/pom.xml) against the same binary.
# 4. tests/go: franz-go, sarama and segmentio/kafka-go against the same binary, and franz-go's
#    own integration suite (its package kgo's tests) against it (tests/go/franz_suite_test.go),
#    and kafka-go's own tests (tests/go/kafkago_suite_test.go; they need ports 9092 and 9093), and
#    /metrics read by Prometheus's own text parser and linter (tests/go/metrics_test.go).
#    It runs beside suites 2 and 3, at nice 10.
# 5. Fuzzing, briefly: every cargo-fuzz target in fuzz/ for 15 s (scripts/fuzz.sh).
#    `scripts/fuzz.sh 600` is the long form. Its build (an instrumented copy of every crate, about
#    9 minutes of a core) runs beside suites 2-4 at the lowest CPU and I/O priority: they mostly
#    wait on clients, sockets and timeouts, and none of them measures time.
# Every part runs even when an earlier one failed; the exit status is the first failure's.
# No timing assertions anywhere: speed is measured by benches/ and reported in results/.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each part's heading says when it started (seconds into this script): CI must stay well under
# 40 minutes, and the log shows which part grew.
phase() { echo "== $* [at ${SECONDS}s]"; }
# Dependencies first: the loadgen's disk-layout test needs mkfs.xfs (xfsprogs) to run its
# xfs-loop case rather than skip it.
bash scripts/setup-test-deps.sh
phase "cargo test --workspace"
cargo test --workspace --locked "$@"

# Every release binary the suites below run, in one cargo run (the crates they share are built
# once, two at a time): the broker, the load generator, the FUSE file system of the power-loss
# tests and the transactional history writer. tests/compat's fixtures take them from these
# variables instead of building each alone.
phase "release build"
cargo build --release --locked -p ringtail-server --bin ringtail -p ringtail-loadgen \
  --bin ringtail-loadgen -p forgetful-fs --bin forgetful-fs -p ringtail-engine --example txn_history
ringtail_bin=$PWD/target/release/ringtail
export RINGTAIL_BIN=$ringtail_bin LOADGEN_BIN=$PWD/target/release/ringtail-loadgen \
  FORGETFUL_FS_BIN=$PWD/target/release/forgetful-fs \
  TXN_HISTORY_BIN=$PWD/target/release/examples/txn_history
cache=${RINGTAIL_CACHE:-$HOME/.cache/ringtail}

status=0
first_failure() { [ "$status" -ne 0 ] || status=$1; }

phase "engine modules: no import circles (scripts/module_cycles.py)"
python3 scripts/module_cycles.py | tail -n 1 || first_failure $?

mkdir -p target
fuzz_build_log=target/fuzz-build.log
phase "fuzz targets: building in the background (log: $fuzz_build_log)"
nice -n 19 ionice -c 3 bash scripts/fuzz.sh --build-only >"$fuzz_build_log" 2>&1 &
fuzz_build_pid=$!

# The Go suite (its own brokers: free ports, and 9092/9093 for kafka-go's suite, which no other
# suite uses) runs beside the Python and JVM ones at a lower CPU priority: they all mostly wait
# on clients and timeouts, and none measures time. Its output is printed once it is done.
go_log=target/go-tests.log
phase "tests/go (go test, in the background; log: $go_log)"
(cd tests/go && GOMODCACHE="$cache/go-mod" GOFLAGS=-mod=readonly RINGTAIL_BIN="$ringtail_bin" \
  nice -n 10 go test -count=1 -timeout 30m ./...) >"$go_log" 2>&1 &
go_pid=$!

phase "tests/compat (pytest)"
pytest_status=0
.venv/bin/python -m pytest tests/compat -q || pytest_status=$?
if [ "$pytest_status" -eq 5 ]; then
  echo "scripts/test.sh: pytest collected no compatibility tests" >&2
fi
first_failure "$pytest_status"

phase "tests/jvm (mvn test)"
mvn -B -ntp -f tests/jvm/pom.xml -Dmaven.repo.local="$cache/m2" -Dringtail.bin="$ringtail_bin" test \
  || first_failure $?

phase "tests/go (go test)"
go_status=0
wait "$go_pid" || go_status=$?
cat "$go_log"
first_failure "$go_status"

phase "fuzz (scripts/fuzz.sh 15)"
fuzz_build_status=0
wait "$fuzz_build_pid" || fuzz_build_status=$?
if [ "$fuzz_build_status" -ne 0 ]; then
  cat "$fuzz_build_log" >&2
  echo "scripts/test.sh: the fuzz targets' build failed" >&2
  first_failure "$fuzz_build_status"
else
  tail -n 1 "$fuzz_build_log"
  bash scripts/fuzz.sh 15 || first_failure $?
fi
phase "done"
exit "$status"
