#!/usr/bin/env bash
# One reported training run: results/<run>/ gets metrics.jsonl, train.log and the PNGs of
# launch/plot.py; checkpoints stay there too but are git-ignored. Re-running the same
# command after an interruption resumes from the last checkpoint (--resume=auto).
#
#   launch/reproduce.sh RUN CONFIG [extra distrnn flags...]
#   launch/reproduce.sh ptb_small_dropout ptb_small_dropout --threads=1
#   launch/reproduce.sh copy_lstm_s42 copy_lstm --seed=42 --threads=1
#
#   DISTRNN_RANKS=2 launch/reproduce.sh ptb_small_gru ptb_small_gru --threads=1
#
#   DISTRNN_BIN=path   the binary to run (default build/src/app/distrnn; long queues use a
#                      copy so that rebuilding the tree does not change a queued run; the
#                      same goes for this script, which bash reads as it runs: editing it
#                      under a running job breaks the job's epilogue)
#   DISTRNN_RANKS=N    N > 1 ranks through launch/mpirun.sh (default 1: one process)
#   DISTRNN_RESULTS=d  the directory that holds the runs (default results)
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
RANKS="${DISTRNN_RANKS:-1}"
if ! [[ "$RANKS" =~ ^[1-9][0-9]*$ ]]; then
  echo "reproduce: error: DISTRNN_RANKS must be a positive integer, got '$RANKS'" >&2
  exit 2
fi
export DISTRNN_BIN="${DISTRNN_BIN:-build/src/app/distrnn}"
[ -x "$DISTRNN_BIN" ] || launch/setup.sh
# The log is committed: no absolute paths of this machine in it. A frozen copy of the binary
# lives outside the tree, so its directory is one of them too.
BIN_DIR="$(cd "$(dirname "$DISTRNN_BIN")" && pwd)"
scrub() { sed -u -e "s#$BIN_DIR/##g" -e "s#$PWD/##g" -e "s#$HOME#~#g"; }
DIR="${DISTRNN_RESULTS:-results}/$RUN"
mkdir -p "$DIR"
TRAIN=(train --flagfile="configs/$CONFIG.flags" --run_dir="$DIR" --resume=auto "$@")
if ((RANKS > 1)); then
  LAUNCH=(launch/mpirun.sh "$RANKS" "configs/$CONFIG.flags" "${TRAIN[@]:2}")
  SHOWN="DISTRNN_RANKS=$RANKS launch/mpirun.sh $RANKS configs/$CONFIG.flags"
else
  LAUNCH=("$DISTRNN_BIN" "${TRAIN[@]}")
  SHOWN="distrnn train --flagfile=configs/$CONFIG.flags"
fi
{
  echo "# $(date -u +%FT%TZ) $(hostname) $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "# $SHOWN ${TRAIN[*]:2}"
} | scrub >> "$DIR/train.log"
start=$SECONDS
set +e
"${LAUNCH[@]}" 2>&1 | scrub >> "$DIR/train.log"
status=${PIPESTATUS[0]}
set -e
echo "# exit $status after $((SECONDS - start)) s" >> "$DIR/train.log"
PYTHON="$(cat build/python_path 2>/dev/null || echo python3)"
"$PYTHON" launch/plot.py "$DIR" 2>&1 | scrub >> "$DIR/train.log" || true
exit $status
