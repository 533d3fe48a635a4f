#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for SECONDS each (default 20) and fails if any crashed,
# printing the crashing input's path. `scripts/fuzz.sh 600` is the long form; scripts/test.sh runs
# a short one. Targets can be named after SECONDS to run only those.
#
# Seeds are in fuzz/corpus/<target>/ (committed; regenerate them with
# `cargo test -p ringtail-server --lib fuzzing_corpus -- --ignored`); what a run discovers grows in
# fuzz/work/<target>/ (not committed), and crashing inputs land in fuzz/artifacts/<target>/.
# Reproduce one: RUSTC_BOOTSTRAP=1 cargo fuzz run -s none -a <target> fuzz/artifacts/<target>/<file>
# `scripts/fuzz.sh --build-only` builds the targets and runs none (scripts/test.sh builds them
# beside the client suites, then runs them with the build a no-op).
# Needs cargo-fuzz (scripts/setup-test-deps.sh installs it); stable Rust with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
build_only=false
if [ "${1:-}" = "--build-only" ]; then
  build_only=true
  shift
fi
seconds=${1:-20}
shift || true
export RUSTC_BOOTSTRAP=1
# No sanitizer: the decoders under test are safe Rust, and ASan would double the build time
# CI pays; debug assertions (-a) stay on, so an arithmetic overflow is a crash.
flags=(-s none -a)
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: cargo-fuzz missing (bash scripts/setup-test-deps.sh installs it)" >&2
  exit 1
fi
targets=("$@")
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
echo "== fuzz: building ${targets[*]}"
nice cargo fuzz build "${flags[@]}"
if "$build_only"; then
  echo "== fuzz: built"
  exit 0
fi
failed=()
for target in "${targets[@]}"; do
  work=fuzz/work/$target
  mkdir -p "$work" "fuzz/artifacts/$target" "fuzz/corpus/$target"
  log=fuzz/work/$target.log
  echo "== fuzz: $target for ${seconds}s"
  status=0
  # The first corpus directory receives new inputs; the seeds are only read.
  nice cargo fuzz run "${flags[@]}" "$target" "$work" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    >"$log" 2>&1 || status=$?
  executions=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  echo "   executions: ${executions:-?}, exit status $status"
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$log" >&2
    crash=$(grep -o 'Test unit written to [^ ]*' "$log" | tail -1 | sed 's/Test unit written to //')
    echo "scripts/fuzz.sh: $target crashed; input: ${crash:-see $log}" >&2
    failed+=("$target")
  fi
done
if [ "${#failed[@]}" -gt 0 ]; then
  echo "scripts/fuzz.sh: crashed: ${failed[*]}" >&2
  exit 1
fi
echo "== fuzz: ${#targets[@]} targets ran ${seconds}s each without a crash"
