#!/usr/bin/env bash
# The main job: set up (packages, libtorch, build, data) if needed, then train Zaremba's
# PTB small LSTM and print the test perplexity.
#
#   launch/run.sh                      # configs/ptb_small.flags, all 13 epochs
#   launch/run.sh --max_epochs=1       # extra flags override the config
#   CONFIG=configs/ptb_medium.flags launch/run.sh
#   DISTRNN_RANKS=1 launch/run.sh      # one process on all cores, whatever the rule below says
#
# Layout: with GPUs (nvidia-smi -L lists one), one process. Without, launch/ranks.sh picks
# the rank count: the most ranks, at most one per core, that divide the global --batch_size
# (2 ranks x 1 thread with PTB small on 2 cores, measured 1.06-1.39x faster than 1 process
# x 2 threads: README "Thread layout on these 2 cores"); 2 or more go through
# launch/mpirun.sh, 1 is one process with every allowed core. DISTRNN_RANKS=k forces k.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
CONFIG="${CONFIG:-configs/ptb_small.flags}"
launch/setup.sh
if [ -z "${DISTRNN_DATA:-}" ] && [ ! -d ../shared/data ]; then
  launch/get_data.sh
fi
say() { echo "[run.sh] $*" >&2; }
if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
  say "1 process (this node has GPUs: nvidia-smi -L)"
else
  OUT="$(launch/ranks.sh --why "$CONFIG" "$@")"
  N="${OUT%% *}"; WHY="${OUT#* }"
  if ((N >= 2)); then
    # mpirun.sh: binding, --comm=mpi, threads per rank = cores / ranks, OMP_WAIT_POLICY.
    THREADS=$(($(nproc) / N)); ((THREADS >= 1)) || THREADS=1
    S=s; ((THREADS > 1)) || S=""
    say "$N ranks x $THREADS thread$S ($WHY; DISTRNN_RANKS=1 for one process)"
    exec launch/mpirun.sh "$N" "$CONFIG" "$@"
  fi
  say "1 process x $(nproc) threads ($WHY)"
fi
# One rank, every allowed core; OpenMP threads sleep instead of spinning between ops
# (measured faster here; see README "Performance settings").
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$BUILD_DIR/src/app/distrnn" train --flagfile="$CONFIG" "$@"
