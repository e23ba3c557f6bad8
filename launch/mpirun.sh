#!/usr/bin/env bash
# Data-parallel training on one machine with N MPI ranks.
#
#   launch/mpirun.sh N CONFIG [extra distrnn flags...]
#   launch/mpirun.sh 2 configs/ptb_small.flags --max_epochs=1
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
# Environment: DISTRNN_BUILD_DIR (default build), MPIRUN (default mpirun),
# MPIRUN_ARGS (extra mpirun options, e.g. "--hostfile launch/hostfile.example").
set -euo pipefail
cd "$(dirname "$0")/.."

if (($# < 2)); then
  echo "usage: $0 N CONFIG [extra distrnn flags...]" >&2
  exit 2
fi
N="$1"; CONFIG="$2"; shift 2
[[ "$N" =~ ^[1-9][0-9]*$ ]] || { echo "$0: N must be a positive integer, got '$N'" >&2; exit 2; }
[ -f "$CONFIG" ] || { echo "$0: config '$CONFIG' not found" >&2; exit 2; }

BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
BINARY="$BUILD_DIR/src/app/distrnn"
if [ ! -x "$BINARY" ]; then
  echo "[mpirun.sh] $BINARY missing: running launch/setup.sh" >&2
  DISTRNN_BUILD_DIR="$BUILD_DIR" launch/setup.sh
fi

CORES="$(nproc)"
MPI_OPTS=(-np "$N")
if ((N > CORES)); then
  MPI_OPTS+=(--oversubscribe --bind-to none)
elif ((N == CORES)); then
  MPI_OPTS+=(--bind-to core --map-by core)
else
  MPI_OPTS+=(--bind-to none)
fi
# Open MPI refuses to run as root unless told; only say so when we are root.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# OpenMP threads are set per rank by distrnn; keep OpenMP from spinning in between.
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

# shellcheck disable=SC2086
set -x
exec "${MPIRUN:-mpirun}" "${MPI_OPTS[@]}" ${MPIRUN_ARGS:-} -x OMP_WAIT_POLICY \
  "$BINARY" train --comm=mpi --flagfile="$CONFIG" "$@"
