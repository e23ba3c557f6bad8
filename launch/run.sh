#!/usr/bin/env bash
# The main job: set up (packages, libtorch, build, data) if needed, then train Zaremba's
# PTB small LSTM in one process and print the test perplexity.
#
#   launch/run.sh                      # configs/ptb_small.flags, all 13 epochs
#   launch/run.sh --max_epochs=1       # extra flags override the config
#   CONFIG=configs/ptb_medium.flags launch/run.sh
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
launch/setup.sh
if [ -z "${DISTRNN_DATA:-}" ] && [ ! -d ../shared/data ]; then
  launch/get_data.sh
fi
# One rank, every allowed core; OpenMP threads sleep instead of spinning between ops
# (measured faster here; see README "Performance settings").
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
exec "$BUILD_DIR/src/app/distrnn" train --flagfile="${CONFIG:-configs/ptb_small.flags}" "$@"
