#!/usr/bin/env bash
# Throughput of distrnn against the PyTorch (Python) reference on PTB small, same model,
# batching, loss and optimizer, same thread count, measured back to back in one run.
#
#   bench/compare_ptb.sh [STEPS] [THREADS]
# Prints both ms/step and the ratio; writes bench/results/compare_ptb.json.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${1:-300}"; THREADS="${2:-$(nproc)}"
BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
PYTHON="$(cat "$BUILD_DIR/python_path")"
DATA="${DISTRNN_DATA:-../shared/data}"
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"

ours=$("$BUILD_DIR/src/app/distrnn" train --flagfile=configs/ptb_small.flags --data_dir="$DATA" --run_dir= \
       --max_steps="$STEPS" --log_every=20 --threads="$THREADS" --eval_batch_size=20 2>&1 |
       awk -F'|' '/batches/ {for (i=1;i<=NF;i++) if ($i ~ /ms\/batch/) {split($i,a," "); print a[2]}}' |
       tail -n +2 | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')
ref=$("$PYTHON" bench/ptb_reference.py --data_dir "$DATA" --steps "$STEPS" --threads "$THREADS")
ref_ms=$(echo "$ref" | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)["ms_per_step"])')
ratio=$("$PYTHON" -c "print(round($ref_ms / $ours, 3))")
mkdir -p bench/results
printf '{"bench": "compare_ptb", "steps": %s, "threads": %s, "distrnn_ms_per_step": %s, "reference": %s, "speedup": %s, "git": "%s", "host": "%s"}\n' \
  "$STEPS" "$THREADS" "$ours" "$ref" "$ratio" "$(git rev-parse --short HEAD)" "$(hostname)" | tee bench/results/compare_ptb.json
echo "distrnn ${ours} ms/step, PyTorch Python ${ref_ms} ms/step: distrnn is ${ratio}x the reference's speed"
