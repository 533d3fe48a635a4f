#!/usr/bin/env bash
# The ringtail broker of an earlier commit, to measure beside today's in the same run (issue 13:
# "show each beside the same run of the previous commit").
#   scripts/ringtail-at.sh COMMIT            builds COMMIT's broker (release) in a worktree under
#                                           $WORK (default /var/tmp/ringtail-at) and prints the
#                                           path of a wrapper that runs it
#   scripts/ringtail-at.sh --wrap BIN OUT    only writes the wrapper OUT for the binary BIN
# The wrapper drops every flag the old binary does not list in its --help (and the flag's value),
# saying so on stderr, so today's matrix scenarios can start it: a scenario that sets
# `--fetch-residency-check on` runs a broker from before that flag as it was, unchecked. Each flag
# of the old broker is expected to take a value (`--flag value` or `--flag=value`), as all of
# Ringtail's do.
# Example: OUT=results/NAME bash scripts/ab-latency-goals.sh \
#   "before=--ringtail-bin=$(bash scripts/ringtail-at.sh ab0234d^)" \
#   'now=--fetch-cold-send-priority 10'
set -euo pipefail
# Paths given relative to where the script was started, made absolute before it moves to the repo
# root: the wrapper runs from wherever the loadgen starts its broker.
absolute() { case $1 in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
work=$(absolute "${WORK:-/var/tmp/ringtail-at}")
if [ "${1:-}" = --wrap ] && [ $# -eq 3 ]; then
  set -- --wrap "$(absolute "$2")" "$(absolute "$3")"
fi
cd "$(dirname "$0")/.."

write_wrapper() {
  local binary=$1 out=$2 label=$3 known
  # Long flags as clap lists them: "  -d, --data-dir <DIR>" or "      --listen <ADDR>".
  known=$("$binary" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z0-9-]+' | sed -E 's/.*(--[a-z0-9-]+)$/\1/' | tr '\n' ' ' || true)
  [ -n "$known" ] || { echo "ringtail-at: $binary --help lists no flags" >&2; exit 1; }
  local quoted_binary quoted_label
  quoted_binary=$(printf %q "$binary")
  quoted_label=$(printf %q "$label")
  cat > "$out" <<EOF
#!/usr/bin/env bash
# Written by scripts/ringtail-at.sh: runs the ringtail broker of $label ($binary),
# dropping the flags it does not have.
known=" $known"
label=$quoted_label
args=()
while [ \$# -gt 0 ]; do
  flag=\${1%%=*}
  if [[ \$1 == --* ]] && [[ \$known != *" \$flag "* ]]; then
    if [[ \$1 != *=* ]] && [ \$# -gt 1 ] && [[ \$2 != --* ]]; then
      echo "ringtail-at \$label: dropped \$1 \$2 (not a flag of \$label)" >&2
      shift
    else
      echo "ringtail-at \$label: dropped \$1 (not a flag of \$label)" >&2
    fi
    shift
    continue
  fi
  args+=("\$1")
  shift
done
exec $quoted_binary "\${args[@]}"
EOF
  chmod +x "$out"
}

if [ "${1:-}" = --wrap ]; then
  [ $# -eq 3 ] || { echo "usage: $0 --wrap BIN OUT" >&2; exit 2; }
  write_wrapper "$2" "$3" "$(basename "$2")"
  exit 0
fi
[ $# -eq 1 ] || { echo "usage: $0 COMMIT | --wrap BIN OUT" >&2; exit 2; }
commit=$(git rev-parse --short "$1^{commit}")
full_commit=$(git rev-parse "$1^{commit}")
src=$work/src-$commit
mkdir -p "$work"
# A worktree whose directory was deleted (say by a /var/tmp clean-up) is still registered.
git worktree prune
if [ ! -d "$src" ]; then
  git worktree add --detach "$src" "$commit" >&2
fi
# A directory left from before is built only if it is that commit, unchanged.
if [ "$(git -C "$src" rev-parse HEAD 2>/dev/null)" != "$full_commit" ] \
    || [ -n "$(git -C "$src" status --porcelain 2>/dev/null || echo unreadable)" ]; then
  echo "ringtail-at: $src is not a clean checkout of $commit; remove it (git worktree remove --force $src)" >&2
  exit 1
fi
(cd "$src" && CARGO_TARGET_DIR="$work/target-$commit" cargo build --release --locked -p ringtail-server >&2)
write_wrapper "$work/target-$commit/release/ringtail" "$work/ringtail-$commit" "$commit"
echo "$work/ringtail-$commit"
