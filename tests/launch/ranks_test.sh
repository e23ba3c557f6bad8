#!/usr/bin/env bash
# launch/ranks.sh (the rank count launch/run.sh starts): the largest divisor of the global
# --batch_size that is <= the cores, the batch found through nested --flagfile includes and
# overridden by later flags; DISTRNN_RANKS overrides, a bad one is refused (exit 2).
set -euo pipefail
SOURCE_DIR="$1"
RANKS="$(cd "$SOURCE_DIR" && pwd)/launch/ranks.sh"
unset DISTRNN_RANKS DISTRNN_CORES
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
failures=0

# expect WANT CORES CONFIG [flags...]: ranks.sh prints WANT with DISTRNN_CORES=CORES.
expect() {
  local want="$1" cores="$2" got
  shift 2
  got="$(DISTRNN_CORES="$cores" "$RANKS" "$@" 2>&1)" || got="exit $?: $got"
  if [ "$got" != "$want" ]; then
    echo "FAIL: $cores cores, $*: got '$got', want '$want'"; failures=$((failures + 1))
  fi
}
# refused ENV_ASSIGNMENT: ranks.sh exits 2 with a message naming the variable.
refused() {
  local rc=0
  env DISTRNN_CORES=2 "$1" "$RANKS" "$tmp/b20.flags" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne 2 ] || [ -s "$tmp/out" ] || ! grep -q "${1%%=*}" "$tmp/err"; then
    echo "FAIL: $1: exit $rc, stdout '$(cat "$tmp/out")', stderr '$(cat "$tmp/err")'"; failures=$((failures + 1))
  fi
}

printf '# a comment\n--task=ptb_lm\n--batch_size=20\n--lr=1\n' >"$tmp/b20.flags"
printf -- '--batch_size=21\n' >"$tmp/b21.flags"
printf -- '--task=ptb_lm\n--lr=1\n' >"$tmp/none.flags"
# b20 -> mid (batch 21, then includes b20) -> top (includes mid, nothing after): batch 20.
printf -- '--batch_size=21\n  --flagfile=%s  \n' "$tmp/b20.flags" >"$tmp/mid.flags"
printf -- '--flagfile=%s\n--run_dir=x\n' "$tmp/mid.flags" >"$tmp/top.flags"
# The include after the config's own value loses to a later line.
printf -- '--flagfile=%s\n--batch_size=21\n' "$tmp/mid.flags" >"$tmp/top21.flags"

expect 2 2 "$tmp/b20.flags"
expect 1 2 "$tmp/b21.flags"
expect 3 3 "$tmp/b21.flags"
expect 5 8 "$tmp/b20.flags"
expect 20 64 "$tmp/b20.flags"
expect 1 1 "$tmp/b20.flags"
expect 1 2 "$tmp/b20.flags" --batch_size=7        # the extra flag wins
expect 2 2 "$tmp/b21.flags" --batch_size=7 --batch_size=20
expect 4 4 "$tmp/b21.flags" --batch_size 20       # absl's space-separated form
expect 2 2 "$tmp/top.flags"                       # nested includes
expect 1 2 "$tmp/top21.flags"
expect 3 3 "$tmp/b20.flags" --flagfile="$tmp/b21.flags"
# A relative include (configs/ptb_small.flags: batch 20) resolves from the repo root, the
# cwd of run.sh, not the caller's cwd.
printf -- '--flagfile=configs/ptb_small.flags\n' >"$tmp/rel.flags"
mkdir "$tmp/configs"; cp "$tmp/b21.flags" "$tmp/configs/ptb_small.flags"  # the wrong one: 3
cd "$tmp"; expect 5 6 "$tmp/rel.flags"; cd - >/dev/null
expect 2 2 "$tmp/b20.flags" --micro_batches=2 --batch_size=20
expect 1 2 "$tmp/b20.flags" --micro_batches=4     # ranks x 4 must divide 20: only 1 rank
expect 1 2 "$tmp/none.flags"                      # no batch size: one process
DISTRNN_RANKS=3 expect 3 2 "$tmp/b20.flags"
DISTRNN_RANKS=1 expect 1 8 "$tmp/b20.flags"
refused DISTRNN_RANKS=0
refused DISTRNN_RANKS=abc
refused DISTRNN_RANKS=-2
refused DISTRNN_CORES=zero
# A missing flagfile is an error, not a silent 1.
rc=0; DISTRNN_CORES=2 "$RANKS" "$tmp/missing.flags" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 2 ] || { echo "FAIL: a missing config gave exit $rc"; failures=$((failures + 1)); }
# --why appends the reason.
got="$(DISTRNN_CORES=2 "$RANKS" --why "$tmp/b20.flags")"
[ "$got" = "2 2 cores, global batch 20" ] || { echo "FAIL: --why gave '$got'"; failures=$((failures + 1)); }

((failures == 0)) || { echo "$failures check(s) failed"; exit 1; }
echo "checked: launch/ranks.sh picks the largest divisor of the global batch <= the cores"
