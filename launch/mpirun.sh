#!/usr/bin/env bash
# Data-parallel training on one machine with N MPI ranks.
#
#   launch/mpirun.sh [--max_restarts=R] N CONFIG [extra distrnn flags...]
#   launch/mpirun.sh 2 configs/ptb_small.flags --max_epochs=1
#   launch/mpirun.sh --max_restarts=3 4 configs/ptb_small.flags --checkpoint_every_steps=200
#
# --max_restarts=R (the torchrun habit): when the job fails (a rank killed, a stalled
# rank caught by the watchdog, exit 1), relaunch it with --resume=auto, up to R times,
# logging each restart; it continues from the run dir's latest checkpoint. Not relaunched:
# success, bad input (2), a non-finite loss (3: it would diverge again) and a stop
# signal (130, 143: you asked it to stop).
#
# Signals: SIGTERM/SIGINT (Ctrl-C) to this script go to the local ranks, which finish
# their step, write a checkpoint and exit 143/130; a second one goes to mpirun, which
# ends the job at once. (Signalled itself, Open MPI's mpirun gives its ranks SIGTERM and
# SIGKILL one second later -- too soon for a checkpoint -- so mpirun runs in a session
# of its own, away from the terminal's Ctrl-C.)
#
# Binding: `--bind-to none`, and each rank sets its intra-op threads to
# (cores it may use) / (ranks on this node) (DefaultThreadsPerRank in
# src/comm/communicator_factory.h) unless --threads is given. Pinning ranks to cores
# (`--bind-to core`) would give each rank exactly one core, so a rank could not use
# more than one thread even when N < cores; with `--bind-to none` the threads-per-rank
# division keeps the total at the core count. When N >= cores each rank gets one thread
# either way; there we bind to cores (N == cores: no migration, steadier step times)
# and add --oversubscribe when N > cores (binding then would stack ranks, so none).
#
# GPUs: when this node has GPUs (nvidia-smi -L, restricted by CUDA_VISIBLE_DEVICES;
# DISTRNN_GPUS=k overrides the count), each rank trains on cuda:(local rank % k) with
# --comm=nccl --device=cuda, ranks are bound per GPU (each to an equal share of the
# cores, --threads set to that share), and more ranks than GPUs per node is refused by
# distrnn unless --allow_shared_gpu is given. Without GPUs: CPU ranks over MPI, as above.
# Every NCCL_* variable and CUDA_VISIBLE_DEVICES of this shell reach every rank (-x).
#
# Environment: DISTRNN_BUILD_DIR (default build), DISTRNN_BIN (the binary; default
# $DISTRNN_BUILD_DIR/src/app/distrnn), MPIRUN (default mpirun),
# MPIRUN_ARGS (extra mpirun options, e.g. "--hostfile launch/hostfile.example"),
# DISTRNN_GPUS (GPUs per node; default: detected).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_RESTARTS=0
if [[ "${1:-}" == --max_restarts=* ]]; then
  MAX_RESTARTS="${1#--max_restarts=}"
  shift
  [[ "$MAX_RESTARTS" =~ ^[0-9]+$ ]] || { echo "$0: --max_restarts must be a non-negative integer, got '$MAX_RESTARTS'" >&2; exit 2; }
fi
if (($# < 2)); then
  echo "usage: $0 [--max_restarts=R] N CONFIG [extra distrnn flags...]" >&2
  exit 2
fi
N="$1"; CONFIG="$2"; shift 2
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "$0: N must be a positive integer, got '$N'" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "$0: config '$CONFIG' not found" >&2; exit 2; }

BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
BINARY="${DISTRNN_BIN:-$BUILD_DIR/src/app/distrnn}"
if [ ! -x "$BINARY" ]; then
  echo "[mpirun.sh] $BINARY missing: running launch/setup.sh" >&2
  DISTRNN_BUILD_DIR="$BUILD_DIR" launch/setup.sh
fi

CORES="$(nproc)"
# GPUs this node exposes to the ranks.
GPUS="${DISTRNN_GPUS:-}"
if [ -z "$GPUS" ]; then
  GPUS=0
  if command -v nvidia-smi >/dev/null 2>&1; then
    GPUS="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
  fi
  if [ -n "${CUDA_VISIBLE_DEVICES:-}" ] && ((GPUS > 0)); then
    VISIBLE="$(tr ',' '\n' <<<"$CUDA_VISIBLE_DEVICES" | grep -c . || true)"
    ((VISIBLE < GPUS)) && GPUS="$VISIBLE"
  fi
fi
[[ "$GPUS" =~ ^[0-9]+$ ]] || { echo "$0: DISTRNN_GPUS must be a count, got '$GPUS'" >&2; exit 2; }

MPI_OPTS=(-np "$N")
DISTRNN_OPTS=()
if ((GPUS > 0)); then
  # One rank per GPU, each bound to its share of the cores (threads = that share).
  PER_NODE=$((N < GPUS ? N : GPUS))
  PE=$((CORES / PER_NODE))
  if ((PE >= 1 && N <= GPUS)); then
    MPI_OPTS+=(--map-by "slot:PE=$PE" --bind-to core)
    DISTRNN_OPTS+=(--threads="$PE")
  else
    MPI_OPTS+=(--bind-to none)
  fi
  DISTRNN_OPTS+=(--comm=nccl --device=cuda)
else
  if ((N > CORES)); then
    MPI_OPTS+=(--oversubscribe --bind-to none)
  elif ((N == CORES)); then
    MPI_OPTS+=(--bind-to core --map-by core)
  else
    MPI_OPTS+=(--bind-to none)
  fi
  DISTRNN_OPTS+=(--comm=mpi)
fi
# Open MPI refuses to run as root unless told; only say so when we are root.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# OpenMP threads are set per rank by distrnn; keep OpenMP from spinning in between.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

# Forward NCCL's settings and the GPU selection to every rank.
FORWARD=(-x OMP_WAIT_POLICY)
while IFS='=' read -r name _; do
  if [[ "$name" == NCCL_* ]]; then FORWARD+=(-x "$name"); fi
done < <(env)
if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then FORWARD+=(-x CUDA_VISIBLE_DEVICES); fi

# shellcheck disable=SC2086
COMMAND=("${MPIRUN:-mpirun}" "${MPI_OPTS[@]}" ${MPIRUN_ARGS:-} "${FORWARD[@]}"
         "$BINARY" train "${DISTRNN_OPTS[@]}" --flagfile="$CONFIG" "$@")

say() { echo "[mpirun.sh] $(date '+%F %T') $*" >&2; }

# First SIGTERM/SIGINT: to the ranks on this host (every rank learns of it in the next
# step's all-reduce); a second one, or no local rank: to mpirun.
JOB=""; STOP=""; INTERRUPTED=0
on_signal() {
  INTERRUPTED=1
  [ -n "$JOB" ] || exit $((128 + $2))
  local ranks
  ranks="$(pgrep -P "$JOB" || true)"
  if [ -z "$STOP" ] && [ -n "$ranks" ]; then
    say "SIG$1: asking the ranks to checkpoint and stop (again to end the job at once)"
    # shellcheck disable=SC2086
    kill -s "$1" $ranks 2>/dev/null || true
  else
    kill -s "$1" "$JOB" 2>/dev/null || true
  fi
  STOP="$1"
}
trap 'on_signal TERM 15' TERM
trap 'on_signal INT 2' INT

RESTARTS=0
while :; do
  if ((RESTARTS == 0)); then set -x; fi
  setsid "${COMMAND[@]}" &
  JOB=$!
  { set +x; } 2>/dev/null
  while :; do
    INTERRUPTED=0
    RC=0
    wait "$JOB" || RC=$?
    ((INTERRUPTED)) || break  # else the wait was cut short by a signal: the job still runs
  done
  JOB=""
  if ((RC == 0)) || [ -n "$STOP" ]; then exit "$RC"; fi
  case "$RC" in
    2|3|130|143) say "the job exited with code $RC: not relaunched"; exit "$RC" ;;
  esac
  if ((RESTARTS >= MAX_RESTARTS)); then
    ((MAX_RESTARTS == 0)) || say "the job failed with code $RC after $RESTARTS restarts (--max_restarts=$MAX_RESTARTS)"
    exit "$RC"
  fi
  RESTARTS=$((RESTARTS + 1))
  say "restart $RESTARTS/$MAX_RESTARTS: the job failed with code $RC; relaunching with --resume=auto"
  ((RESTARTS > 1)) || COMMAND+=(--resume=auto)  # the last --resume wins
done
