#!/usr/bin/env bash
# Installs what the client compatibility tests (tests/compat) and the loadgen's disk-layout test
# need, and nothing else:
#   kcat, xfsprogs        Debian packages (kcat links the system librdkafka; mkfs.xfs)
#   .venv/                Python venv: confluent-kafka, kafka-python, aiokafka, their compression
#                         libraries, pytest (exact pins in tests/compat/requirements.txt)
#   tests/compat/node/node_modules   kafkajs and its codecs (tests/compat/node/package-lock.json)
#   ~/.cache/ringtail/m2  Maven repository for tests/jvm (Kafka's clients, Streams and tools at the
#                         version pinned in tests/jvm/pom.xml; JUnit 5); also scripts/kafka-peer.sh's
#   ~/.cache/ringtail/kafka-<version>  Apache Kafka's jars (scripts/kafka-peer.sh fetch), for the
#                         loadgen's broker test
#   ~/.cache/ringtail/go-mod  Go modules for tests/go (franz-go, sarama, kafka-go; tests/go/go.sum)
#   cargo-fuzz            for scripts/fuzz.sh, built once into ~/.cache/ringtail/cargo-fuzz-<version>
# Idempotent and quick when everything is already there: each step is skipped while its stamp
# matches its pin file. Called by scripts/test.sh; safe to run by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "== setup-test-deps: $*"; }

# --- Debian packages -----------------------------------------------------------------------
#   kcat      the kcat compatibility tests (links the system librdkafka)
#   xfsprogs  mkfs.xfs, for the loadgen's xfs-loop disk layout (loadgen/tests/layout.rs)
#   openssl   test certificates for the TLS tests (tests/compat/test_tls.py, tests/jvm SecurityTest)
missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
PATH="$PATH:/usr/sbin:/sbin" command -v mkfs.xfs >/dev/null 2>&1 || missing+=(xfsprogs)
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing ${missing[*]} (apt)"
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup-test-deps: ${missing[*]} missing and this is not root; install: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
PATH="$PATH:/usr/sbin:/sbin" mkfs.xfs -V >/dev/null

# --- Python venv ---------------------------------------------------------------------------
reqs=tests/compat/requirements.txt
stamp=.venv/.ringtail-requirements.txt
if ! .venv/bin/python -c 'import sys' >/dev/null 2>&1; then
  log "creating .venv"
  rm -rf .venv
  python3 -m venv .venv
fi
if ! cmp -s "$reqs" "$stamp"; then
  log "pip install -r $reqs"
  .venv/bin/python -m pip install --disable-pip-version-check --no-input -q -r "$reqs"
  cp "$reqs" "$stamp"
fi

# --- examples venv (quixstreams pins its own confluent-kafka) ------------------------------
examples_reqs=examples/batch_stream/requirements.txt
examples_stamp=.venv-examples/.ringtail-requirements.txt
if ! .venv-examples/bin/python -c 'import sys' >/dev/null 2>&1; then
  log "creating .venv-examples"
  rm -rf .venv-examples
  python3 -m venv .venv-examples
fi
if ! cmp -s "$examples_reqs" "$examples_stamp"; then
  log "pip install -r $examples_reqs"
  .venv-examples/bin/python -m pip install --disable-pip-version-check --no-input -q -r "$examples_reqs"
  cp "$examples_reqs" "$examples_stamp"
fi

# --- kafkajs -------------------------------------------------------------------------------
node_dir=tests/compat/node
node_stamp=$node_dir/node_modules/.ringtail-package-lock.json
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "setup-test-deps: node and npm are needed for the kafkajs tests (apt-get install nodejs npm)" >&2
  exit 1
fi
if ! cmp -s "$node_dir/package-lock.json" "$node_stamp"; then
  log "npm ci in $node_dir"
  (cd "$node_dir" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$node_dir/package-lock.json" "$node_stamp"
fi

# --- Java (tests/jvm) and Go (tests/go) -----------------------------------------------------
# Both caches live outside the repo so a fresh clone (CI) reuses them; each step is skipped while
# its stamp matches its pin file.
cache=${RINGTAIL_CACHE:-$HOME/.cache/ringtail}
if ! command -v mvn >/dev/null 2>&1 || ! command -v javac >/dev/null 2>&1; then
  log "installing maven and a JDK 17 (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends maven openjdk-17-jdk-headless >/dev/null
fi
jvm_stamp=$cache/m2/.ringtail-pom.xml
if ! cmp -s tests/jvm/pom.xml "$jvm_stamp"; then
  log "mvn: resolving tests/jvm's dependencies and plugins into $cache/m2"
  mkdir -p "$cache/m2"
  # test-compile resolves the dependencies; a test run with nothing to run pulls surefire's
  # JUnit provider, which it resolves only when it runs.
  mvn -B -ntp -q -f tests/jvm/pom.xml -Dmaven.repo.local="$cache/m2" test-compile dependency:resolve-plugins
  mvn -B -ntp -q -f tests/jvm/pom.xml -Dmaven.repo.local="$cache/m2" surefire:test \
    -Dtest=NoSuchTest -Dsurefire.failIfNoSpecifiedTests=false
  cp tests/jvm/pom.xml "$jvm_stamp"
fi
# Apache Kafka itself, for the loadgen's broker test (loadgen/tests/broker_process.rs): its jars
# are mostly tests/jvm's already, so this is a copy out of the same repository.
bash scripts/kafka-peer.sh fetch >/dev/null
if ! command -v go >/dev/null 2>&1; then
  echo "setup-test-deps: go is needed for tests/go (the machine image has it)" >&2
  exit 1
fi
go_stamp=$cache/go-mod/.ringtail-go.sum
if ! cmp -s tests/go/go.sum "$go_stamp"; then
  log "go mod download (tests/go) into $cache/go-mod"
  (cd tests/go && GOMODCACHE="$cache/go-mod" GOFLAGS=-mod=readonly go mod download)
  cp tests/go/go.sum "$go_stamp"
fi

# --- cargo-fuzz (scripts/fuzz.sh) ----------------------------------------------------------
# Installed into the cache (a fresh checkout reuses it) and linked into cargo's bin directory.
# libfuzzer-sys builds libFuzzer with the C++ compiler (g++ is in the image).
cargo_fuzz_version=0.13.2
cargo_fuzz_root=$cache/cargo-fuzz-$cargo_fuzz_version
if [ ! -x "$cargo_fuzz_root/bin/cargo-fuzz" ]; then
  log "cargo install cargo-fuzz $cargo_fuzz_version into $cargo_fuzz_root"
  cargo install --locked --quiet --version "$cargo_fuzz_version" --root "$cargo_fuzz_root" cargo-fuzz
fi
cargo_bin=${CARGO_HOME:-$HOME/.cargo}/bin
if ! cargo fuzz --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
  ln -sf "$cargo_fuzz_root/bin/cargo-fuzz" "$cargo_bin/cargo-fuzz"
fi

log "ready: $(kcat -V 2>&1 | grep -o 'librdkafka [0-9.]*' | head -1 | sed 's/^/kcat with /'), \
$(.venv/bin/python -c 'from importlib.metadata import version as v; import confluent_kafka as ck; print("confluent-kafka", v("confluent-kafka"), "with librdkafka", ck.libversion()[0] + ",", "kafka-python", v("kafka-python") + ",", "aiokafka", v("aiokafka"))'), \
kafkajs $(node -p 'require("./'"$node_dir"'/node_modules/kafkajs/package.json").version'), \
Kafka $(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' tests/jvm/pom.xml) (Java), $(go version | cut -d' ' -f3)"
