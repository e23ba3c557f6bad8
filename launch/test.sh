#!/usr/bin/env bash
# Set up if needed, then run the whole CTest suite (unit, multi-rank MPI, end to end, fuzz).
# Exits non-zero on any failure.
#
#   launch/test.sh                 the suite on the Release build in build/
#   launch/test.sh -L unit         any ctest arguments (here: the unit tests only)
#   launch/test.sh --sanitize      the unit and MPI tests built with AddressSanitizer and
#                                  UndefinedBehaviorSanitizer in build-asan/ (RelWithDebInfo
#                                  at -O1), run with the options and suppressions of
#                                  tests/sanitizers/ (each suppression says why)
#
#   DISTRNN_BUILD_DIR=build-x      another build directory (DISTRNN_ASAN_BUILD_DIR for --sanitize)
#   DISTRNN_SANITIZE_LABELS=unit   labels --sanitize runs (default 'unit|mpi')
set -euo pipefail
cd "$(dirname "$0")/.."

SANITIZE=0
if [ "${1:-}" = "--sanitize" ]; then
  SANITIZE=1
  shift
fi

BUILD_DIR="${DISTRNN_BUILD_DIR:-build}"
launch/setup.sh
# Multi-rank tests run as root in CI containers; Open MPI needs to be told that is fine.
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
if [ "$SANITIZE" -eq 0 ]; then
  exec ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" "$@"
fi

# --- sanitizer build ---------------------------------------------------------------------
ASAN_DIR="${DISTRNN_ASAN_BUILD_DIR:-build-asan}"
LABELS="${DISTRNN_SANITIZE_LABELS:-unit|mpi}"
SUPP_DIR="$PWD/tests/sanitizers"
say() { echo "[test --sanitize] $*"; }
start=$SECONDS

PYTHON="$(cat "$BUILD_DIR/python_path")"
TORCH_PREFIX="$("$PYTHON" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
# -O1: ASan's recommendation (usable speed, exact reports); -g1: line tables for the
# reports without the gigabytes of debug info torch's headers would add; no -DNDEBUG, so
# assertions stay on. libtorch, Open MPI and Abseil are not instrumented: their own bugs
# are out of reach, and what they allocate is seen only through malloc.
SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all"
if [ ! -f "$ASAN_DIR/CMakeCache.txt" ]; then
  say "configuring $ASAN_DIR (ASan + UBSan, RelWithDebInfo at -O1)"
  mkdir -p "$ASAN_DIR"
  cmake -S . -B "$ASAN_DIR" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" -DCMAKE_C_FLAGS_RELWITHDEBINFO="-O1 -g1" \
        -DCMAKE_CXX_FLAGS="$SAN" -DCMAKE_C_FLAGS="$SAN" \
        -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
        -DDISTRNN_BUILD_BENCH=OFF -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
        > "$ASAN_DIR/configure.log" 2>&1 || { cat "$ASAN_DIR/configure.log"; exit 1; }
fi
# Build only what the selected tests run: the executables under $ASAN_DIR that their
# commands name (ctest cannot list commands of executables not built yet, so read them
# from the CTestTestfile.cmake files).
TARGETS="$(ctest --test-dir "$ASAN_DIR" -N -L "$LABELS" | sed -n 's/^ *Test *#[0-9]*: //p' | python3 -c '
import glob, os, re, sys
build = os.path.abspath(sys.argv[1])
wanted = set(sys.stdin.read().split())
names = set()
for path in glob.glob(os.path.join(build, "**", "CTestTestfile.cmake"), recursive=True):
    for m in re.finditer(r"^add_test\(\[=\[(.+?)\]=\] (.*)\)$", open(path).read(), re.M):
        if m.group(1) not in wanted:
            continue
        for token in re.findall(r"\"([^\"]*)\"", m.group(2)):
            for part in re.split(r"[;=]", token):
                if part.startswith(build + os.sep):
                    names.add(os.path.basename(part))
print(" ".join(sorted(names)))' "$ASAN_DIR")"
[ -n "$TARGETS" ] || { echo "no tests labelled '$LABELS' in $ASAN_DIR" >&2; exit 1; }
say "building $TARGETS"
cmake --build "$ASAN_DIR" -j "$(nproc)" --target $TARGETS
say "built in $((SECONDS - start)) s"

# Options: tests/sanitizers/README.md says why each is set.
SAN_COMMON="halt_on_error=1:abort_on_error=0:allocator_may_return_null=1:suppressions=$SUPP_DIR/asan.supp"
export LSAN_OPTIONS="suppressions=$SUPP_DIR/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:suppressions=$SUPP_DIR/ubsan.supp"
# Open MPI unloads its components at MPI_Finalize; keeping them loaded lets reports name them.
export OMPI_MCA_mca_base_component_disable_dlclose=1
test_start=$SECONDS
status=0
# Single-process tests with leak detection; multi-rank tests without it (see the README).
ASAN_OPTIONS="detect_leaks=1:$SAN_COMMON" \
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j "$(nproc)" -L "$LABELS" -LE mpi "$@" || status=$?
ASAN_OPTIONS="detect_leaks=0:$SAN_COMMON" \
  ctest --test-dir "$ASAN_DIR" --output-on-failure -j "$(nproc)" -L "$LABELS" -L mpi "$@" || status=$?
say "tests ran in $((SECONDS - test_start)) s; total $((SECONDS - start)) s"
exit $status
