#!/usr/bin/env bash
# Idempotent set-up: system packages, the pinned libtorch (PyPI torch wheel) in a
# virtual environment, and a Release build in build/. Installs nothing that is present.
#
#   launch/setup.sh            # everything
#   DISTRNN_VENV=/path ...     # use/create the virtual environment there
#   DISTRNN_BUILD_DIR=build-x  # another build directory
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION="2.15.0"
PY_TAG="$(python3 -c 'import sys; print(f"cp{sys.version_info[0]}{sys.version_info[1]}")')"
# The wheel and its CUDA libraries are several GB: keep them in a per-user cache keyed by
# the pinned version so every clone of the project reuses one copy.
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/distrnn"
VENV="${DISTRNN_VENV:-$CACHE_ROOT/torch-$TORCH_VERSION-$PY_TAG}"
BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"

say() { echo "[setup] $*"; }

# --- system packages -------------------------------------------------------------
APT_PACKAGES=(g++ cmake make python3 python3-venv libopenmpi-dev openmpi-bin libabsl-dev
              nlohmann-json3-dev libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev ca-certificates curl)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  say "installing with apt: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# --- libtorch from the pinned wheel ----------------------------------------------
if ! "$VENV/bin/python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$TORCH_VERSION' else 1)" 2>/dev/null; then
  say "installing torch==$TORCH_VERSION into $VENV (several GB, once per machine)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "torch==$TORCH_VERSION"
fi
# matplotlib for launch/plot.py (training curves), pinned like torch.
MATPLOTLIB_VERSION="3.10.8"
if ! "$VENV/bin/python" -c "import matplotlib, sys; sys.exit(0 if matplotlib.__version__ == '$MATPLOTLIB_VERSION' else 1)" 2>/dev/null; then
  say "installing matplotlib==$MATPLOTLIB_VERSION into $VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check "matplotlib==$MATPLOTLIB_VERSION"
fi
TORCH_PREFIX="$("$VENV/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null)"
say "$("$VENV/bin/python" - <<'PY' 2>/dev/null
import torch
cpu = "MKL" if torch.backends.mkl.is_available() else "OpenBLAS/other"
print(f"libtorch {torch.__version__}, CUDA in build: {torch.version.cuda or 'no'}, "
      f"CUDA device present: {torch.cuda.is_available()}, CPU math: {cpu}, "
      f"OpenMP: {torch.backends.openmp.is_available()}")
PY
)"

# --- build -----------------------------------------------------------------------
mkdir -p "$BUILD_DIR"
# The Python with torch and matplotlib: bench/ scripts (the Python reference), launch/plot.py
# and its test (read when configuring).
echo "$VENV/bin/python" > "$BUILD_DIR/python_path"
if [ ! -f "$BUILD_DIR/CMakeCache.txt" ]; then
  say "configuring $BUILD_DIR (Release)"
  cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
        > "$BUILD_DIR/configure.log" 2>&1 || { cat "$BUILD_DIR/configure.log"; exit 1; }
fi
say "building with $(nproc) jobs"
cmake --build "$BUILD_DIR" -j "$(nproc)"
say "ready: $BUILD_DIR/src/app/distrnn"
