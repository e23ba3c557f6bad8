#!/usr/bin/env bash
# One command for the benchmarks (builds if needed). Each writes bench/results/<name>.json,
# a PNG where a picture helps, and a Markdown table (bench/results/<name>.md) for the README.
#
#   launch/bench.sh compare [STEPS] [REPEATS]  distrnn vs the script a user would run instead:
#                                              PyTorch's word_language_model recipe set to
#                                              Zaremba's small model (bench/reference/), on 1
#                                              process x 1 and x 2 threads, and 2 ranks x 1
#                                              thread against DDP (gloo) under torchrun; tok/s
#                                              of each, the ratios, the best layout of each
#                                              side, and both losses over the last 20 steps
#                                              (they must agree, or the comparison is void)
#   launch/bench.sh flops [STEPS]              achieved training FLOP/s of PTB small (15.84
#                                              MFLOP per token) against the sgemm peak of
#                                              the same cores measured just before each run
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

REFERENCE=bench/reference/word_language_model.py
TORCHRUN="$(dirname "$PYTHON")/torchrun"
DATA="${DISTRNN_DATA:-../shared/data}"

# Each layout runs both sides in turn REPEATS times (A B A B ...): this VM's speed drifts by
# a quarter over minutes, so only pairs measured back to back are compared (median ratio).
compare() {
  local steps="${1:-300}" repeats="${2:-3}" runs=()
  for layout in 1x1 1x2 2x1; do
    local ours=() refs=()
    for r in $(seq "$repeats"); do
      say "compare: PTB small, $steps steps, $layout (processes x threads), pair $r of $repeats"
      if [ "$layout" = 2x1 ]; then
        train "ours_${layout}_$r" mpirun --oversubscribe --bind-to none -np 2 -x OMP_WAIT_POLICY "$BIN" train \
          --flagfile=configs/ptb_small.flags --max_steps="$steps" --threads=1
        OMP_NUM_THREADS=1 "$TORCHRUN" --standalone --nproc_per_node=2 "$REFERENCE" --data "$DATA/ptb" \
          --steps "$steps" --threads 1 > "$WORK/ref_${layout}_$r.json" 2> "$WORK/ref_$layout.log" ||
          { tail -20 "$WORK/ref_$layout.log"; return 1; }
      else
        local threads="${layout#1x}"
        train "ours_${layout}_$r" "$BIN" train --flagfile=configs/ptb_small.flags --max_steps="$steps" \
          --threads="$threads"
        "$PYTHON" "$REFERENCE" --data "$DATA/ptb" --steps "$steps" --threads "$threads" > "$WORK/ref_${layout}_$r.json"
      fi
      ours+=("$WORK/ours_${layout}_$r/metrics.jsonl")
      refs+=("$WORK/ref_${layout}_$r.json")
    done
    runs+=("$layout:$(IFS=,; echo "${ours[*]}"):$(IFS=,; echo "${refs[*]}")")
  done
  summarise compare "$OUT" "${runs[@]}"
}

flops() {
  local steps="${1:-200}" runs=()
  say "flops: sgemm peak of 1 and 2 threads, then PTB small training, $steps steps"
  # The peak drifts with this VM's speed: measured again just before each training run.
  "$PYTHON" bench/sgemm_peak.py > "$WORK/sgemm_1x2.json"
  train flops_1x2 "$BIN" train --flagfile=configs/ptb_small.flags --max_steps="$steps" --threads=2
  "$PYTHON" bench/sgemm_peak.py > "$WORK/sgemm_2x1.json"
  train flops_2x1 mpirun --oversubscribe --bind-to none -np 2 -x OMP_WAIT_POLICY "$BIN" train \
    --flagfile=configs/ptb_small.flags --max_steps="$steps" --threads=1
  summarise flops "$OUT" "1x2:$WORK/flops_1x2/metrics.jsonl:$WORK/sgemm_1x2.json" \
    "2x1:$WORK/flops_2x1/metrics.jsonl:$WORK/sgemm_2x1.json"
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
  flops) shift; flops "$@" ;;
  scaling) shift; scaling "$@" ;;
  allreduce) allreduce ;;
  memory) shift; memory "$@" ;;
  all) compare; flops; scaling; allreduce; memory ;;
  *) sed -n '2,25p' "$0"; exit 2 ;;
esac
