#!/usr/bin/env bash
# One reported training run: results/<run>/ gets metrics.jsonl, train.log and the PNGs of
# launch/plot.py; checkpoints stay there too but are git-ignored. Re-running the same
# command after an interruption resumes from the last checkpoint (--resume=auto).
#
#   launch/reproduce.sh RUN CONFIG [extra distrnn flags...]
#   launch/reproduce.sh ptb_small_dropout ptb_small_dropout --threads=1
#   launch/reproduce.sh copy_lstm_s42 copy_lstm --seed=42 --threads=1
#
#   DISTRNN_BIN=path   the binary to run (default build/src/app/distrnn; long queues use a
#                      copy so that rebuilding the tree does not change a queued run)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ]; then
  echo "usage: launch/reproduce.sh RUN CONFIG [distrnn flags...]" >&2
  exit 2
fi
RUN="$1" CONFIG="$2"
shift 2
if [ ! -f "configs/$CONFIG.flags" ]; then
  echo "reproduce: error: no config configs/$CONFIG.flags" >&2
  exit 2
fi
BIN="${DISTRNN_BIN:-build/src/app/distrnn}"
[ -x "$BIN" ] || launch/setup.sh
DIR="results/$RUN"
mkdir -p "$DIR"
{
  echo "# $(date -u +%FT%TZ) $(hostname) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "# distrnn train --flagfile=configs/$CONFIG.flags --run_dir=$DIR --resume=auto $*"
} >> "$DIR/train.log"
start=$SECONDS
# The log is committed: no absolute paths of this machine in it.
set +e
"$BIN" train --flagfile="configs/$CONFIG.flags" --run_dir="$DIR" --resume=auto "$@" 2>&1 |
  sed -u -e "s#$PWD/##g" -e "s#$HOME#~#g" >> "$DIR/train.log"
status=${PIPESTATUS[0]}
set -e
echo "# exit $status after $((SECONDS - start)) s" >> "$DIR/train.log"
PYTHON="$(cat build/python_path 2>/dev/null || echo python3)"
"$PYTHON" launch/plot.py "$DIR" >> "$DIR/train.log" 2>&1 || true
exit $status
