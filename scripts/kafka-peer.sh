#!/usr/bin/env bash
# Apache Kafka as a peer of Ringtail, from Maven Central only (no tarball, no other download).
#
#   scripts/kafka-peer.sh fetch                  resolve Kafka and its tools into the cache (once)
#   scripts/kafka-peer.sh version                print the pinned version
#   scripts/kafka-peer.sh classpath              print the classpath (fetching first if needed)
#   scripts/kafka-peer.sh check                  exit 0 when fetched, else say how to fetch
#   scripts/kafka-peer.sh run --listen 127.0.0.1:PORT --data-dir DIR [--flush-messages N]
#                                                format DIR as a single-node KRaft log dir (broker
#                                                and controller in one process), then exec kafka.Kafka
#                                                in the foreground with config/kafka/server.properties
#                                                plus the per-run lines; SIGTERM stops it cleanly
#   scripts/kafka-peer.sh tool MAIN_CLASS ARGS…  run one of Kafka's tools by its main class, e.g.
#                                                org.apache.kafka.tools.ProducerPerformance
#
# The version is pinned in one place: <kafka.version> in tests/jvm/pom.xml (the Java tests use
# the same clients, Streams and tools). The jars land in ~/.cache/ringtail/kafka-<version>/libs,
# Maven's own repository in ~/.cache/ringtail/m2 (shared with tests/jvm). The JVM gets a 1 GiB
# heap and the G1 flags of Kafka's kafka-server-start.sh / kafka-run-class.sh; KAFKA_HEAP_OPTS
# and KAFKA_JVM_PERFORMANCE_OPTS override them as they do for Kafka's scripts.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$repo/tests/jvm/pom.xml" | head -1)
[ -n "$version" ] || { echo "kafka-peer: no <kafka.version> in tests/jvm/pom.xml" >&2; exit 1; }
cache=${RINGTAIL_CACHE:-$HOME/.cache/ringtail}
home=$cache/kafka-$version
m2=$cache/m2
java_bin=${JAVA_HOME:+$JAVA_HOME/bin/}java
heap_opts=${KAFKA_HEAP_OPTS:--Xms1g -Xmx1g}
jvm_opts=${KAFKA_JVM_PERFORMANCE_OPTS:--server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true}

fetch() {
  [ -f "$home/.fetched" ] && return 0
  mkdir -p "$home"
  # A throwaway pom whose dependencies are what Kafka's distribution ships in libs/: the broker
  # (kafka_2.13 pulls kafka-server, raft, metadata, storage, the coordinators), the tools, and
  # the log4j2 binding for slf4j 1.7 that the distribution ships.
  cat > "$home/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>ringtail</groupId><artifactId>kafka-peer</artifactId><version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-server</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$version</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.24.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.24.3</version></dependency>
  </dependencies>
</project>
POM
  echo "kafka-peer: resolving Apache Kafka $version from Maven Central into $home/libs" >&2
  rm -rf "$home/libs"
  mvn -q -B -f "$home/pom.xml" -Dmaven.repo.local="$m2" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$home/libs" >&2
  touch "$home/.fetched"
}

classpath() {
  local jars=("$home"/libs/*.jar)
  local IFS=:
  echo "${jars[*]}"
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

run_broker() {
  local listen="" data_dir="" flush_messages=""
  while [ $# -gt 0 ]; do
    case $1 in
      --listen) listen=$2; shift 2 ;;
      --data-dir) data_dir=$2; shift 2 ;;
      --flush-messages) flush_messages=$2; shift 2 ;;
      *) echo "kafka-peer run: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  [ -n "$listen" ] && [ -n "$data_dir" ] || { echo "kafka-peer run: --listen and --data-dir are required" >&2; exit 2; }
  fetch
  local controller_port
  controller_port=$(free_port)
  local log_dir=$data_dir/kafka-logs
  mkdir -p "$log_dir"
  local props=$data_dir/server.properties
  {
    cat "$repo/config/kafka/server.properties"
    echo "# --- per run (scripts/kafka-peer.sh) ---"
    echo "listeners=PLAINTEXT://$listen,CONTROLLER://127.0.0.1:$controller_port"
    echo "advertised.listeners=PLAINTEXT://$listen"
    echo "controller.quorum.voters=1@127.0.0.1:$controller_port"
    echo "log.dirs=$log_dir"
    if [ -n "$flush_messages" ]; then echo "log.flush.interval.messages=$flush_messages"; fi
    echo "# JVM ($java_bin, $("$java_bin" -version 2>&1 | head -1)): $heap_opts $jvm_opts"
  } > "$props"
  echo "== kafka-peer: Apache Kafka $version, $props:" && sed 's/^/   /' "$props"
  local cp
  cp=$(classpath)
  local log4j=(-Dlog4j2.configurationFile="$repo/config/kafka/log4j2.properties")
  if [ ! -f "$log_dir/meta.properties" ]; then
    # kafka-storage.sh format: a cluster id (a random base64url UUID, as `random-uuid` prints)
    # and the KRaft metadata the controller needs before it starts.
    local cluster_id
    # Like Kafka's Uuid.randomUuid, never one that starts with '-': the argument parser would
    # take it for an option.
    cluster_id=-
    while [ "${cluster_id:0:1}" = - ]; do
      cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    # shellcheck disable=SC2086
    "$java_bin" -Xmx256m "${log4j[@]}" -cp "$cp" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$props" --ignore-formatted
  fi
  # exec: the broker is this process, so its pid is the one the caller measures and signals.
  # shellcheck disable=SC2086
  exec "$java_bin" $heap_opts $jvm_opts "${log4j[@]}" -cp "$cp" kafka.Kafka "$props"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case $cmd in
  fetch) fetch; echo "$home/libs" ;;
  version) echo "$version" ;;
  classpath) fetch; classpath ;;
  check)
    [ -f "$home/.fetched" ] || { echo "Apache Kafka $version not fetched into $home; run: bash scripts/kafka-peer.sh fetch" >&2; exit 1; } ;;
  run) run_broker "$@" ;;
  tool)
    fetch
    main=${1:?kafka-peer tool: a main class}; shift
    # shellcheck disable=SC2086
    exec "$java_bin" -Xmx512m -Dlog4j2.configurationFile="$repo/config/kafka/log4j2-tools.properties" -cp "$(classpath)" "$main" "$@" ;;
  *) sed -n '2,20p' "$0" >&2; exit 2 ;;
esac
