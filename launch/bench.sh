#!/usr/bin/env bash
# One command for the benchmarks (builds if needed). Each writes bench/results/<name>.json,
# a PNG where a picture helps, and a Markdown table (bench/results/<name>.md) for the README.
#
#   launch/bench.sh compare [STEPS] [THREADS]  distrnn vs the PyTorch (Python) reference on
#                                              PTB small: same data, model, loss scale, clip,
#                                              optimizer, threads and steps; tok/s of each, the
#                                              ratio, and both losses over the last 20 steps
#                                              (they must agree, or the comparison is void)
#   launch/bench.sh scaling [STEPS]            PTB small, 1, 2 and 3 ranks (3 oversubscribed
#                                              on 2 cores: marked), global batch 24 on any
#                                              number of ranks (strong) and 20 per rank (weak)
#   launch/bench.sh allreduce                  4 KiB..64 MiB, algbw/busbw, against raw MPI
#   launch/bench.sh memory [STEPS]             peak RSS of ptb_small/medium/large training,
#                                              with the fused decoder + loss and without
#   launch/bench.sh all                        all of the above
#
# Never run it while other work loads the machine: the figures are only comparable within
# one quiet run. OMP_WAIT_POLICY=PASSIVE for every process (the launch scripts' setting).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
[ -x "$BUILD_DIR/src/app/distrnn" ] && [ -x "$BUILD_DIR/bench/allreduce_bench" ] || launch/setup.sh
BIN="$BUILD_DIR/src/app/distrnn"
PYTHON="$(cat "$BUILD_DIR/python_path")"
OUT=bench/results
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
export OMP_WAIT_POLICY=PASSIVE
[ "$(id -u)" -eq 0 ] && export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
say() { echo "[bench] $*"; }
summarise() { "$PYTHON" bench/summarise.py "$@"; }

# distrnn training, metrics in $WORK/$1; the rest are distrnn flags.
train() {
  local name="$1"; shift
  rm -rf "${WORK:?}/$name"
  "$@" --run_dir="$WORK/$name" --log_every=20 --test_each_epoch=false > "$WORK/$name.log" 2>&1 ||
    { tail -5 "$WORK/$name.log"; return 1; }
}

compare() {
  local steps="${1:-300}" threads="${2:-$(nproc)}"
  say "compare: PTB small, $steps steps, 1 process x $threads threads"
  train ours "$BIN" train --flagfile=configs/ptb_small.flags --max_steps="$steps" --threads="$threads"
  "$PYTHON" bench/ptb_reference.py --steps "$steps" --threads "$threads" > "$WORK/reference.json"
  summarise compare "$WORK/ours/metrics.jsonl" "$WORK/reference.json" "$OUT"
}

scaling() {
  local steps="${1:-200}"
  say "scaling: PTB small, $steps steps, 1-3 ranks"
  local runs=()
  for n in 1 2 3; do
    for kind in strong weak; do
      # Strong: global batch 24 (divisible by 1, 2 and 3 ranks); weak: 20 per rank.
      local batch=24
      [ "$kind" = weak ] && batch=$((20 * n))
      train "scaling_${kind}_$n" mpirun --oversubscribe --bind-to none -np "$n" -x OMP_WAIT_POLICY "$BIN" train \
        --flagfile=configs/ptb_small.flags --max_steps="$steps" --batch_size="$batch"
      runs+=("$kind:$n:$WORK/scaling_${kind}_$n/metrics.jsonl")
    done
  done
  summarise scaling "$OUT" "$(nproc)" "${runs[@]}"
}

allreduce() {
  say "allreduce: 2 ranks, 4 KiB to 64 MiB"
  mpirun --oversubscribe -np 2 "$BUILD_DIR/bench/allreduce_bench" --out="$WORK" > "$WORK/allreduce.log" 2>&1 ||
    { cat "$WORK/allreduce.log"; return 1; }
  summarise allreduce "$WORK"/allreduce_mpi_2.json "$OUT"
}

memory() {
  local steps="${1:-20}"
  say "memory: peak RSS over $steps steps of each PTB config, fused loss on and off"
  local runs=()
  for cfg in ptb_small ptb_medium ptb_large; do
    for fused in true false; do
      /usr/bin/time -v "$BIN" train --flagfile="configs/$cfg.flags" --max_steps="$steps" --fused_loss="$fused" \
        --run_dir="$WORK/mem_${cfg}_$fused" --log_every=10 > "$WORK/mem_${cfg}_$fused.log" 2>&1 ||
        { tail -5 "$WORK/mem_${cfg}_$fused.log"; return 1; }
      runs+=("$cfg:$fused:$WORK/mem_${cfg}_$fused.log")
    done
  done
  summarise memory "$OUT" "${runs[@]}"
}

case "${1:-}" in
  compare) shift; compare "$@" ;;
  scaling) shift; scaling "$@" ;;
  allreduce) allreduce ;;
  memory) shift; memory "$@" ;;
  all) compare; scaling; allreduce; memory ;;
  *) sed -n '2,18p' "$0"; exit 2 ;;
esac
