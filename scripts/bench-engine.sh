#!/usr/bin/env bash
# Runs the engine's criterion benchmarks (benches/) and summarises them.
#
# Usage: scripts/bench-engine.sh [cargo bench args...]
#   e.g. scripts/bench-engine.sh -- append_none      (criterion filter after `--`)
# Environment:
#   RESULTS_DIR             where summary.md, summary.csv and cargo-bench.log go
#                           (default: results/engine-criterion)
#   RINGTAIL_BENCH_PIN_CPU  CPU the benchmark thread (and its io-wq workers) is pinned to, as a
#                           broker shard is (default 0; "none" leaves it unpinned)
#   RINGTAIL_BENCH_DIR      scratch directory for the logs and files (default: target/tmp;
#                           tmpfs is refused)
#
# Only results written by this run are summarised (criterion keeps older ones in target/).
set -euo pipefail

repo_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo_root"

out_dir=${RESULTS_DIR:-results/engine-criterion}
mkdir -p "$out_dir"

cmd=(cargo bench -p ringtail-benches "$@")
# The command as typed, including the environment knobs that change what is measured.
command_line=""
for knob in RINGTAIL_BENCH_PIN_CPU RINGTAIL_BENCH_DIR; do
    if [[ -n ${!knob:-} ]]; then
        command_line+="$knob=$(printf '%q' "${!knob}") "
    fi
done
command_line+=$(printf '%q ' "${cmd[@]}")
command_line=${command_line% }

started=$(date +%s)
started_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)
echo "+ $command_line" | tee "$out_dir/cargo-bench.log"
"${cmd[@]}" 2>&1 | tee -a "$out_dir/cargo-bench.log"
finished_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)

target_dir=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
scratch_dir=${RINGTAIL_BENCH_DIR:-$target_dir/tmp}

commit=$(git rev-parse --short HEAD)
changed=$(git status --porcelain | wc -l)
if [[ $changed -gt 0 ]]; then
    commit+=" (working tree has $changed uncommitted changes)"
fi
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)

python3 scripts/criterion_summary.py \
    --criterion-dir "$target_dir/criterion" \
    --since "$started" \
    --out-dir "$out_dir" \
    --meta "command=$command_line" \
    --meta "commit=$commit" \
    --meta "date=$started_utc – $finished_utc" \
    --meta "nproc=$(nproc)" \
    --meta "kernel=$(uname -sr)" \
    --meta "cpu=${cpu_model:-unknown}" \
    --meta "rustc=$(rustc --version)" \
    --meta "scratch filesystem=$(findmnt -n -o FSTYPE -T "$scratch_dir" 2>/dev/null || echo unknown) ($scratch_dir)" \
    --meta "pinned CPU=${RINGTAIL_BENCH_PIN_CPU:-0}"
