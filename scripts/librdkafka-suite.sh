#!/usr/bin/env bash
# Runs librdkafka's own integration tests (its tests/ directory, the C/C++
# "0xxx" tests that need a real cluster) against a Ringtail broker.
#
# Not part of CI: building librdkafka and its test-runner takes ~15 min on
# two cores and a run of the list below ~10 min. Results and the reasons for
# every failure or exclusion: docs/compat/librdkafka-suite.md.
#
# Usage: scripts/librdkafka-suite.sh <librdkafka checkout> [test numbers...]
#   e.g. scripts/librdkafka-suite.sh ~/src/librdkafka
#        scripts/librdkafka-suite.sh ~/src/librdkafka 0011 0103
# Env:
#   RINGTAIL_BIN   broker binary (default: target/debug/ringtail, built if absent)
#   RDK_PORT       listen port (default 29092)
#   RDK_TIMEOUT_S  timeout per test (default 300)
#   RDK_QUICK      1 (default): test-runner -Q (fewer messages, shorter runs)
#   RDK_OUT        logs (default /tmp/librdkafka-suite)
# Needs: build-essential zlib1g-dev libssl-dev, rapidjson-dev (else 0053,
# 0110 skip their checks); SASL/GSSAPI, zstd and curl are configured out.
set -euo pipefail

RDK=${1:?usage: $0 <librdkafka checkout> [test numbers...]}
shift
RDK=$(cd "$RDK" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PORT=${RDK_PORT:-29092}
TIMEOUT_S=${RDK_TIMEOUT_S:-300}
QUICK=${RDK_QUICK:-1}
OUT=${RDK_OUT:-/tmp/librdkafka-suite}
mkdir -p "$OUT"

# Every test that needs a broker, minus those that need what one Ringtail
# broker cannot be (docs/compat/librdkafka-suite.md): several brokers, SSL/SASL/
# OIDC set-ups, KIP-932 share groups (Kafka 4.2), a Kafka install (KAFKA_PATH)
# for its shell tools or a JVM (0052, 0077, 0098, 0109, 0115, 0119).
DEFAULT_TESTS="0001 0002 0003 0005 0007 0008 0011 0012 0013 0014 0015 0016
0017 0018 0019 0020 0021 0022 0026 0028 0029 0030 0031 0033 0034 0035 0036
0039 0040 0041 0042 0044 0045 0048 0049 0050 0051 0053 0054 0055 0056 0057
0058 0059 0060 0061 0062 0063 0064 0065 0067 0068 0069 0070 0073 0074 0075
0076 0079 0081 0082 0083 0084 0085 0086 0088 0089 0090 0091 0092 0093 0094
0099 0100 0102 0103 0106 0110 0112 0113 0114 0116 0118 0120 0121
0122 0123 0125 0127 0129 0130 0132 0137 0140"
TESTS_TO_RUN=${*:-$DEFAULT_TESTS}

# 0103, 0107 and 0111 create their topics with replication factor 3, which a
# single broker (Kafka's as much as Ringtail's) refuses; -1 (the broker's
# default, KIP-464) lets them test transactions, topic re-creation and late
# topic creation here. Idempotent.
sed -i 's/\(test_create_topic_wait_exists(.*\), 3, 5000);/\1, -1, 5000);/' \
  "$RDK/tests/0103-transactions.c" "$RDK/tests/0107-topic_recreate.c"
sed -i 's/Test::create_topic(NULL, topic.c_str(), 1, 3);/Test::create_topic(NULL, topic.c_str(), 1, -1);/' \
  "$RDK/tests/0111-delay_create_topics.cpp"
(
  cd "$RDK"
  [[ -f config.h ]] || ./configure --disable-gssapi --disable-zstd --disable-curl
  nice -n 10 make -j"$(nproc)" libs
  nice -n 10 make -j"$(nproc)" -C tests build
)

BIN=${RINGTAIL_BIN:-$ROOT/target/debug/ringtail}
if [[ ! -x "$BIN" ]]; then
  (cd "$ROOT" && cargo build -p ringtail-server --bin ringtail)
fi

DATA=$(mktemp -d /tmp/rdk-data.XXXXXX)
BROKER_PID=
stop_broker() {
  if [[ -n "$BROKER_PID" ]]; then
    kill "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
    BROKER_PID=
  fi
}
trap 'stop_broker; rm -rf "$DATA"' EXIT

# librdkafka's test clusters auto-create topics with 4 partitions
# (num.partitions=4): several tests produce to partitions 1..3 of an
# auto-created topic.
start_broker() { # $1: auto-create topics (true/false)
  rm -rf "${DATA:?}"/*
  "$BIN" --data-dir "$DATA" --listen "127.0.0.1:$PORT" --segment-bytes 8388608 \
    --default-partitions 4 --auto-create-topics "$1" --log-cleanup-check-ms 1000 \
    >>"$OUT/broker.log" 2>&1 &
  BROKER_PID=$!
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && return 0
    sleep 0.1
  done
  echo "broker did not start, see $OUT/broker.log" >&2
  exit 1
}

printf 'bootstrap.servers=127.0.0.1:%s\ntest.timeout.multiplier=2\n' "$PORT" >"$OUT/test.conf"

QFLAG=()
[[ "$QUICK" == 1 ]] && QFLAG=(-Q)
PASSED=() FAILED=()
cd "$RDK/tests"
run_one() { # $1: test number, $2...: extra test-runner arguments
  local t=$1 log="$OUT/$1${2:+-scenario}.log"
  shift
  if RDKAFKA_TEST_CONF="$OUT/test.conf" TESTS=$t TEST_KAFKA_VERSION=4.0.0 \
    LD_LIBRARY_PATH=../src:../src-cpp \
    timeout "$TIMEOUT_S" ./test-runner "${QFLAG[@]}" -p1 "$@" >"$log" 2>&1; then
    PASSED+=("$t")
    if grep -v '<MAIN>' "$log" | grep -q 'SKIPPED'; then
      echo "PASS $t $* (parts skipped: grep SKIPPED $log)"
    else
      echo "PASS $t $*"
    fi
  else
    FAILED+=("$t")
    echo "FAIL $t $* (see $log)"
  fi
}

start_broker true
for t in $TESTS_TO_RUN; do
  run_one "$t"
done
stop_broker
# The "noautocreate" scenario's tests (0045's topic-removal and partition-change
# parts, 0107, 0111) run only with -s noautocreate, against a broker that
# creates no topic by itself.
if [[ -z "${*:-}" ]]; then
  start_broker false
  for t in 0045 0107 0111; do
    run_one "$t" -s noautocreate
  done
  stop_broker
fi
echo "passed: ${#PASSED[@]}  failed: ${#FAILED[@]} ${FAILED[*]:-}"
[[ ${#FAILED[@]} -eq 0 ]]
