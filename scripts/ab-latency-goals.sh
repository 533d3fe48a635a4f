#!/usr/bin/env bash
# Issue 13's goals for two or more broker configurations, alternating: ROUNDS rounds (default 3),
# each a one-repetition goals run (scripts/bench-latency-goals.sh, REPS=1) of every variant, the
# order reversed every other round so no variant always runs first (with an odd ROUNDS the first
# variant leads once more). Each variant is judged against the disk probes of its own
# repetition, so a slow hour weighs on both sides alike.
# Usage: OUT=results/NAME bash scripts/ab-latency-goals.sh 'label=--flag value ...' 'label2=...'
#   A variant's flags go to every Ringtail broker (RINGTAIL_ARGS); give the default's flags
#   explicitly (e.g. 'shard=--fetch-cold-send-priority shard') so each run is named by its label.
#   A `--ringtail-bin=PATH` among a variant's flags runs that broker binary instead of this tree's
#   (bench-latency-goals.sh's RINGTAIL_BIN), e.g. an earlier commit's from scripts/ringtail-at.sh;
#   it may be the variant's only flag.
# Writes $OUT/<label>-round-<n>.md and .json (each one goals run), then the summary,
# $OUT/summary.md, made by scripts/ab_latency_goals.py from those JSON files. $OUT must hold no
# round files yet. A run that fails keeps its log ($OUT/<label>-round-<n>.log), the others go on,
# the summary shows the gap, and the script exits 1.
# DURATION_S, WARMUP_S and WORK_DIR go through to bench-latency-goals.sh (and into the summary's
# command line).
set -euo pipefail
started_in=$PWD
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
out=${OUT:?set OUT to a results directory, e.g. OUT=results/cold-send-default}
[ $# -ge 2 ] || { echo "usage: OUT=DIR $0 'label=flags' 'label=flags' ..." >&2; exit 2; }
# Splits a variant's flags into $binary (its --ringtail-bin=PATH made absolute, or empty) and
# $flags (the rest). Words split at spaces, as RINGTAIL_ARGS does; no glob is expanded.
split_binary() {
  binary=""
  flags=""
  local words word
  read -r -a words <<< "$1"
  for word in "${words[@]}"; do
    case $word in
      --ringtail-bin=*)
        [ -z "$binary" ] || { echo "'$1' gives --ringtail-bin twice" >&2; exit 2; }
        binary=${word#--ringtail-bin=}
        case $binary in /*) ;; *) binary=$started_in/$binary ;; esac
        ;;
      --ringtail-bin)
        echo "'$1': write --ringtail-bin=PATH (one word), not --ringtail-bin PATH" >&2
        exit 2
        ;;
      *) flags+="${flags:+ }$word" ;;
    esac
  done
}
labels=()
for variant in "$@"; do
  label=${variant%%=*}
  split_binary "${variant#*=}"
  case $label in ''|*[!A-Za-z0-9_-]*) echo "bad label in '$variant'" >&2; exit 2;; esac
  # With no flags bench-latency-goals.sh would write the default's results/latency-goals.md and
  # results/<scenario>/: name the default's flags instead.
  if [ "$variant" = "$label" ] || { [ -z "${flags// /}" ] && [ -z "$binary" ]; }; then
    echo "'$variant' gives no flags: write them out, e.g. 'shard=--fetch-cold-send-priority shard'" >&2
    exit 2
  fi
  if [ -n "$binary" ] && [ ! -x "$binary" ]; then
    echo "'$variant': $binary is not an executable" >&2
    exit 2
  fi
  for seen in "${labels[@]}"; do
    [ "$seen" != "$label" ] || { echo "label '$label' given twice" >&2; exit 2; }
  done
  labels+=("$label")
done
mkdir -p "$out"
if compgen -G "$out/*-round-*.json" >/dev/null; then
  echo "$out already holds round files: use a new OUT, or remove them" >&2
  exit 2
fi
settings=""
for var in DURATION_S WARMUP_S WORK_DIR; do
  if [ -n "${!var:-}" ]; then settings+="$var=${!var} "; fi
done
failed=0
started=$(date -u +%Y-%m-%dT%H:%MZ)
for round in $(seq 1 "$rounds"); do
  order=("$@")
  if [ $((round % 2)) -eq 0 ]; then
    order=()
    for ((i = $# - 1; i >= 0; i--)); do order+=("${@:i+1:1}"); done
  fi
  for variant in "${order[@]}"; do
    label=${variant%%=*}
    split_binary "${variant#*=}"
    name=ab-$label-round-$round
    echo "== round $round of $rounds: $label (${flags:-no flags}${binary:+, binary $binary})"
    log=$out/$label-round-$round.log
    if ! REPS=1 RINGTAIL_ARGS="$flags" RINGTAIL_BIN="$binary" GOALS_NAME=$name \
        bash scripts/bench-latency-goals.sh > "$log" 2>&1; then
      echo "   failed: see $log" >&2
      failed=1
      continue
    fi
    mv "results/latency-goals-$name.md" "$out/$label-round-$round.md"
    mv "results/latency-goals-$name.json" "$out/$label-round-$round.json"
    rm -f "$log"
  done
done
{
  echo "Made by \`${settings}ROUNDS=$rounds OUT=$out bash scripts/ab-latency-goals.sh$(printf " '%s'" "$@")\`" \
    "(from $started to $(date -u +%Y-%m-%dT%H:%MZ), commit $(git describe --always --dirty), $(nproc) cores)."
  echo
  python3 scripts/ab_latency_goals.py "$out" "${labels[@]}"
} > "$out/summary.md"
cat "$out/summary.md"
exit "$failed"
