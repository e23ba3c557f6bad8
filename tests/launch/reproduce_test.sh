#!/usr/bin/env bash
# launch/reproduce.sh, the command behind every results/<run>/ of the README: it records
# the command and the exit in train.log with no path of this machine in it, resumes when
# run again, starts N ranks through launch/mpirun.sh for DISTRNN_RANKS=N, and refuses a
# missing config or a bad rank count with exit 2 and one line.
# argv: source dir, distrnn binary.
set -euo pipefail
SOURCE_DIR="$(cd "$1" && pwd)"
export DISTRNN_BIN="$2"
REPRODUCE="$SOURCE_DIR/launch/reproduce.sh"
unset DISTRNN_RANKS
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
export DISTRNN_RESULTS="$tmp"
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }

# A copy task small enough for a few seconds: 4 steps, one epoch.
TINY=(--hidden_size=16 --embedding_size=8 --copy_train_samples=64 --copy_test_samples=16 --batch_size=8
      --eval_batch_size=16 --steps_per_epoch=4 --max_epochs=1 --log_every=2 --threads=1)

rc=0; "$REPRODUCE" one copy_lstm_tiny "${TINY[@]}" >"$tmp/out" 2>&1 || rc=$?
log="$tmp/one/train.log"
[ "$rc" -eq 0 ] || fail "one process: exit $rc: $(cat "$tmp/out")"
grep -q "^# distrnn train --flagfile=configs/copy_lstm_tiny.flags --run_dir=$tmp/one --resume=auto --hidden_size=16" "$log" ||
  fail "the command is not recorded: $(head -3 "$log")"
grep -q "fresh start (no checkpoint in the run dir)" "$log" || fail "the first run does not start fresh"
grep -q "^# exit 0 after [0-9]* s$" "$log" || fail "the exit is not recorded"
[ -s "$tmp/one/metrics.jsonl" ] || fail "no metrics.jsonl"
if grep -q "$SOURCE_DIR/\|$HOME/" "$log"; then fail "a path of this machine in train.log: $(grep "$SOURCE_DIR/\|$HOME/" "$log" | head -2)"; fi

# Again: the same run dir, resumed from its checkpoint, appended to the same log.
rc=0; "$REPRODUCE" one copy_lstm_tiny "${TINY[@]}" >"$tmp/out" 2>&1 || rc=$?
[ "$rc" -eq 0 ] || fail "the second run: exit $rc"
grep -q "resume .*| from $tmp/one/" "$log" || fail "the second run does not resume: $(grep "resume" "$log")"
[ "$(grep -c "^# exit 0 after" "$log")" -eq 2 ] || fail "both runs' exits are not in the log"

# Two ranks through launch/mpirun.sh, on a frozen copy of the binary outside the tree (as
# long queues run): its directory must not reach the log either.
mkdir "$tmp/frozen" && cp "$DISTRNN_BIN" "$tmp/frozen/distrnn"
rc=0; DISTRNN_BIN="$tmp/frozen/distrnn" DISTRNN_RANKS=2 "$REPRODUCE" two copy_lstm_tiny "${TINY[@]}" >"$tmp/out" 2>&1 || rc=$?
log="$tmp/two/train.log"
if grep -q "$tmp/frozen/" "$log"; then fail "the frozen binary's path in train.log: $(grep "$tmp/frozen/" "$log" | head -2)"; fi
[ "$rc" -eq 0 ] || fail "two ranks: exit $rc: $(tail -5 "$log")"
grep -q "^# DISTRNN_RANKS=2 launch/mpirun.sh 2 configs/copy_lstm_tiny.flags --run_dir=$tmp/two" "$log" ||
  fail "the two-rank command is not recorded: $(head -3 "$log")"
grep -q "process .*| mpi / 2 ranks" "$log" || fail "the run did not have 2 ranks: $(grep "process" "$log")"

# Bad input: exit 2, one line on stderr, no run dir made.
refused() {
  local want="$1" rc=0
  shift
  env "$@" >"$tmp/out" 2>"$tmp/err" || rc=$?
  if [ "$rc" -ne 2 ] || [ "$(wc -l <"$tmp/err")" -ne 1 ] || ! grep -q "$want" "$tmp/err"; then
    fail "$*: exit $rc, stderr '$(cat "$tmp/err")'"
  fi
}
refused "no config configs/no_such.flags" "$REPRODUCE" bad no_such
refused "DISTRNN_RANKS must be a positive integer" DISTRNN_RANKS=0 "$REPRODUCE" bad copy_lstm_tiny
refused "usage" "$REPRODUCE" onlyarun
[ ! -e "$tmp/bad" ] || fail "a refused run left $tmp/bad"

if ((failures)); then exit 1; fi
echo "reproduce.sh: all checks passed"
