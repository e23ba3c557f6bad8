#!/usr/bin/env bash
# How many CPU ranks launch/run.sh starts. On this 2-core machine 2 ranks x 1 thread train
# PTB small faster than 1 process x 2 threads (README "Thread layout on these 2 cores"), but
# distrnn splits the global --batch_size evenly over ranks x --micro_batches, so the rank
# count must divide it: this prints the largest count <= the cores that does (1 when the
# flags set no --batch_size).
#
#   launch/ranks.sh [--why] CONFIG [extra distrnn flags...]   # e.g. configs/ptb_small.flags -> 2
#
# The flags are read in absl's order: CONFIG with its --flagfile= lines expanded in place
# (recursively; relative paths from the repo root, the cwd of run.sh and mpirun.sh), then
# the extra flags; the last value wins. --why adds the reason after the count on its line.
# Environment: DISTRNN_RANKS (a positive integer, printed as is: overrides everything),
# DISTRNN_CORES (default: nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "$0: $*" >&2; exit 2; }
WHY=0
if [ "${1:-}" = --why ]; then WHY=1; shift; fi
(($# >= 1)) || die "usage: $0 [--why] CONFIG [extra distrnn flags...]"
answer() { if ((WHY)); then echo "$1 $2"; else echo "$1"; fi; exit 0; }
positive() { [[ "$1" =~ ^[1-9][0-9]*$ ]]; }

if [ -n "${DISTRNN_RANKS:-}" ]; then
  positive "$DISTRNN_RANKS" || die "DISTRNN_RANKS must be a positive integer, got '$DISTRNN_RANKS'"
  answer "$DISTRNN_RANKS" "DISTRNN_RANKS=$DISTRNN_RANKS"
fi
CORES="${DISTRNN_CORES:-$(nproc)}"
positive "$CORES" || die "DISTRNN_CORES must be a positive integer, got '$CORES'"

BATCH=""; MICRO=1
scan() {  # $1: include depth; the rest: arguments, as absl sees them
  local depth="$1" arg name value file line prev="" files lines
  shift
  ((depth <= 20)) || die "--flagfile includes nested more than 20 deep"
  for arg in "$@"; do
    if [ -n "$prev" ]; then name="$prev"; value="$arg"; prev=""  # --flag value
    elif [[ "$arg" =~ ^--?(batch_size|micro_batches|flagfile)=(.*)$ ]]; then
      name="${BASH_REMATCH[1]}"; value="${BASH_REMATCH[2]}"
    elif [[ "$arg" =~ ^--?(batch_size|micro_batches|flagfile)$ ]]; then
      prev="${BASH_REMATCH[1]}"; continue
    else continue
    fi
    case "$name" in
      batch_size) BATCH="$value" ;;
      micro_batches) MICRO="$value" ;;
      flagfile)
        IFS=, read -ra files <<<"$value"
        for file in "${files[@]}"; do
          [ -r "$file" ] || die "flagfile '$file' not found (relative paths are from $PWD)"
          lines=()
          while IFS= read -r line || [ -n "$line" ]; do
            line="${line#"${line%%[![:space:]]*}"}"; line="${line%"${line##*[![:space:]]}"}"
            [[ -z "$line" || "$line" == \#* ]] || lines+=("$line")
          done <"$file"
          scan $((depth + 1)) ${lines[@]+"${lines[@]}"}
        done ;;
    esac
  done
}
scan 0 --flagfile="$1" "${@:2}"

positive "$BATCH" || answer 1 "$CORES cores, no --batch_size in the flags"
WHY_TEXT="$CORES cores, global batch $BATCH"
# Each rank runs --micro_batches slices of its share, so ranks x micro-batches must divide it.
if positive "$MICRO" && ((MICRO > 1)); then
  WHY_TEXT+=" in $MICRO micro-batches"
  ((BATCH % MICRO == 0)) || answer 1 "$WHY_TEXT"
  BATCH=$((BATCH / MICRO))
fi
N=$((CORES < BATCH ? CORES : BATCH))
while ((BATCH % N != 0)); do N=$((N - 1)); done
answer "$N" "$WHY_TEXT"
