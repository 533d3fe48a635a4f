#!/usr/bin/env bash
# Profiles the broker (`ringtail`) under the load generator and renders flamegraphs.
#
# Usage: scripts/profile-broker.sh
# Environment (all optional):
#   OUT_DIR          where produce.svg, consume.svg and summary.md go (default: results/profile)
#   PORT             the broker's Kafka port (default: 29311)
#   DURATION_S       measured seconds of the produce-only run (default: 10)
#   PARTITIONS       partitions of the topic (default: 4)
#   PRODUCERS        producers of the produce-only run (default: 2)
#   DATA_PARENT      where the temporary data directory goes (default: target/tmp; tmpfs refused)
#   BROKER_FLAGS     extra flags for the broker (e.g. "--retention-bytes 268435456")
#   MINWIDTH         inferno --minwidth in pixels: frames narrower than this are left out (0.5)
#   WARM_FRAMES_MB   write and delete a file of this many MiB just before the produce phase, so
#                    the broker's page cache gets recently freed page frames (default 0: off)
#
# What it does:
#   1. builds release binaries of ringtail and ringtail-loadgen;
#   2. starts the broker on a fresh data directory;
#   3. produce: `ringtail-loadgen run` produce-only (1 KB messages, acks=1, flush none) while
#      `perf record -e cpu-clock -g` samples the broker process;
#   4. consume: a consumer reads everything step 3 wrote from the log start (catch-up reads from
#      the page cache; a producer trickles 100 msgs/s beside it) while perf samples again;
#   5. renders produce.svg and consume.svg with inferno (installed into ~/.cache/ringtail/inferno
#      if absent; never a dependency of the repository) and writes summary.md: broker CPU seconds
#      per GB from /proc/<pid>/stat before and after each phase, top functions by self time,
#      CPU by thread kind, the exact commands, commit and date.
#
# Needs `perf` allowed to sample the broker (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

out_dir=${OUT_DIR:-results/profile}
port=${PORT:-29311}
duration_s=${DURATION_S:-10}
partitions=${PARTITIONS:-4}
producers=${PRODUCERS:-2}
data_parent=${DATA_PARENT:-$repo_root/target/tmp}
minwidth=${MINWIDTH:-0.5}
read -r -a broker_flags <<<"${BROKER_FLAGS:-}"
topic=profile
inferno_root=$HOME/.cache/ringtail/inferno

mkdir -p "$out_dir" "$data_parent"
if [[ $(stat -f -c %T "$data_parent") == tmpfs ]]; then
    echo "refusing tmpfs for the data directory ($data_parent): it has no disk under it" >&2
    exit 1
fi
command -v perf >/dev/null || { echo "perf not found" >&2; exit 1; }
if [[ ! -x $inferno_root/bin/inferno-flamegraph ]]; then
    echo "+ cargo install inferno --root $inferno_root" >&2
    cargo install --locked inferno --root "$inferno_root"
fi

echo "+ cargo build --release -p ringtail-server -p ringtail-loadgen" >&2
cargo build --release -p ringtail-server -p ringtail-loadgen
broker_bin=target/release/ringtail
loadgen_bin=target/release/ringtail-loadgen

work=$(mktemp -d "$data_parent/profile.XXXXXX")
broker_pid=""
perf_pid=""
cleanup() {
    if [[ -n $perf_pid ]] && kill -0 "$perf_pid" 2>/dev/null; then kill -INT "$perf_pid" || true; fi
    if [[ -n $broker_pid ]] && kill -0 "$broker_pid" 2>/dev/null; then
        kill "$broker_pid" || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    if [[ -z ${KEEP_WORK:-} ]]; then rm -rf "$work"; else echo "kept $work" >&2; fi
}
trap cleanup EXIT

broker_cmd=("$broker_bin" --data-dir "$work/data" --listen "127.0.0.1:$port" "${broker_flags[@]}")
echo "+ ${broker_cmd[*]}" >&2
"${broker_cmd[@]}" >"$work/broker.log" 2>&1 &
broker_pid=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
    sleep 0.1
done
if ! kill -0 "$broker_pid" 2>/dev/null; then
    echo "the broker did not start:" >&2
    head -n 5 "$work/broker.log" >&2
    exit 1
fi

ticks_per_s=$(getconf CLK_TCK)
# utime + stime of the whole broker process (all threads, io-wq workers included), in ticks.
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$broker_pid/stat"; }

# One phase: perf samples the broker while the loadgen runs. Args: name, loadgen args...
declare -A phase_cpu_s phase_bytes phase_mbps phase_cmd
run_phase() {
    local name=$1
    shift
    local loadgen_cmd=("$loadgen_bin" run --bootstrap "127.0.0.1:$port" --topic "$topic"
        --partitions "$partitions" --message-bytes 1024 --quiet --json "$work/$name.json" "$@")
    phase_cmd[$name]="${loadgen_cmd[*]}"
    echo "+ perf record -e cpu-clock -g -p $broker_pid  &&  ${loadgen_cmd[*]}" >&2
    perf record -e cpu-clock -g -p "$broker_pid" -o "$work/$name.perf.data" 2>"$work/$name.perf.log" &
    perf_pid=$!
    sleep 0.5
    local before after
    before=$(cpu_ticks)
    local wall_start wall_end
    wall_start=$(date +%s.%N)
    "${loadgen_cmd[@]}" >"$work/$name.out" 2>&1
    wall_end=$(date +%s.%N)
    after=$(cpu_ticks)
    kill -INT "$perf_pid"
    wait "$perf_pid" || true
    perf_pid=""
    phase_cpu_s[$name]=$(awk -v t=$((after - before)) -v hz="$ticks_per_s" 'BEGIN { printf "%.2f", t / hz }')
    # produce: the loadgen's measured MB/s; consume: every byte the consumer read (the whole
    # backlog) over the loadgen's wall time, start-up included, so a lower bound.
    local wall_s
    wall_s=$(awk -v a="$wall_start" -v b="$wall_end" 'BEGIN { print b - a }')
    read -r phase_bytes[$name] phase_mbps[$name] < <(python3 - "$work/$name.json" "$name" "$wall_s" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
if sys.argv[2] == "produce":
    print(report["produce"]["bytes"], round(report["produce"]["mb_per_s"], 1))
else:
    consumed = report["consume"]["bytes"]
    print(consumed, round(consumed / 1e6 / float(sys.argv[3]), 1))
EOF
)
    perf script -i "$work/$name.perf.data" 2>/dev/null \
        | "$inferno_root/bin/inferno-collapse-perf" >"$work/$name.folded"
    "$inferno_root/bin/inferno-flamegraph" --minwidth "$minwidth" \
        --title "ringtail broker, $name ($(date -u +%F), commit $(git rev-parse --short HEAD))" \
        <"$work/$name.folded" >"$out_dir/$name.svg"
}

if [[ ${WARM_FRAMES_MB:-0} -gt 0 ]]; then
    # Page frames freed just now are cheap to reuse on this VM; long-free ones are not (README).
    dd if=/dev/zero of="$work/warm" bs=1M count="$WARM_FRAMES_MB" status=none
    rm "$work/warm"
fi
run_phase produce --duration-s "$duration_s" --producers "$producers" --consumers 0 --acks 1
# Catch-up: one consumer reads the produce phase's data from the log start; a token producer is
# required by the loadgen (at least one), at 100 msgs/s it adds nothing measurable.
run_phase consume --duration-s 2 --producers 1 --rate 100 --consumers 1 --start-from earliest

# Top functions by self time, and CPU by thread kind (shard threads vs io-wq workers).
top_functions() {
    perf report -i "$work/$1.perf.data" --no-children -g none --sort sym --stdio 2>/dev/null \
        | awk '/^ +[0-9.]+%/ && shown < 15 {
                 pct = $1; $1 = ""; sub(/^ +\[.\] /, ""); printf "| %s | `%s` |\n", pct, $0; shown++ }'
}
thread_kinds() {
    perf report -i "$work/$1.perf.data" --no-children -g none --sort comm --stdio 2>/dev/null \
        | awk '/^ +[0-9.]+%/ { name=$2; sub(/-[0-9]+$/, "", name); share[name] += $1 }
               END { for (n in share) printf "| %s | %.1f%% |\n", n, share[n] }' | sort
}

commit=$(git rev-parse --short HEAD)
dirty=$(git status --porcelain --untracked-files=no | grep -q . && echo " (with uncommitted changes)" || true)
{
    echo "# Broker profile summary (written by scripts/profile-broker.sh)"
    echo
    echo "- date: $(date -u +%Y-%m-%dT%H:%M:%SZ); commit: $commit$dirty; kernel $(uname -r); $(nproc) CPUs"
    echo "- broker: \`${broker_cmd[*]}\`"
    echo "- load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine shares the CPUs)"
    echo
    echo "| phase | MB/s (loadgen) | GB moved | broker CPU s | broker CPU s per GB |"
    echo "|---|---:|---:|---:|---:|"
    for name in produce consume; do
        awk -v n="$name" -v b="${phase_bytes[$name]}" -v m="${phase_mbps[$name]}" -v c="${phase_cpu_s[$name]}" \
            'BEGIN { printf "| %s | %s | %.2f | %s | %.2f |\n", n, m, b / 1e9, c, c / (b / 1e9) }'
    done
    for name in produce consume; do
        echo
        echo "## $name"
        echo
        echo "\`${phase_cmd[$name]}\` (perf: \`perf record -e cpu-clock -g -p <broker pid>\`)"
        echo
        echo "Flamegraph: [$name.svg]($name.svg). Samples by thread:"
        echo
        echo "| thread | share |"
        echo "|---|---:|"
        thread_kinds "$name"
        echo
        echo "Top functions by self time (share of the broker's samples):"
        echo
        echo "| self | function |"
        echo "|---:|---|"
        top_functions "$name"
    done
} >"$out_dir/summary.md"
cat "$out_dir/summary.md"
