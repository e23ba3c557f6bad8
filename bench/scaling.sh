#!/usr/bin/env bash
# Data-parallel scaling on this machine: PTB small throughput (tok/s after warm-up, summed
# over ranks) with 1..N ranks at the same global batch, each rank using cores/N threads.
#
#   bench/scaling.sh [MAX_RANKS] [STEPS]
# Writes bench/results/scaling.json.
set -euo pipefail
cd "$(dirname "$0")/.."
MAX="${1:-$(nproc)}"; STEPS="${2:-200}"
BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
mkdir -p bench/results
rows=()
for ((n = 1; n <= MAX; n *= 2)); do
  tok=$(mpirun --oversubscribe --bind-to none -np "$n" -x OMP_WAIT_POLICY "$BUILD_DIR/src/app/distrnn" train \
          --flagfile=configs/ptb_small.flags --run_dir= --max_steps="$STEPS" --comm=auto 2>&1 |
        awk -F'|' '/train ppl/ {for (i=1;i<=NF;i++) if ($i ~ /tok\/s/) {split($i,a," "); print a[2]}}')
  echo "ranks $n: $tok tok/s"
  rows+=("{\"ranks\": $n, \"tok_per_s\": $tok}")
done
(IFS=,; echo "{\"bench\": \"scaling_ptb_small\", \"steps\": $STEPS, \"git\": \"$(git rev-parse --short HEAD)\", \"rows\": [${rows[*]}]}") |
  tee bench/results/scaling.json
