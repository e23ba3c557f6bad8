#!/usr/bin/env bash
# Set up if needed, then run the whole CTest suite (unit, multi-rank MPI, end to end).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
launch/setup.sh
# Multi-rank tests run as root in CI containers; Open MPI needs to be told that is fine.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
