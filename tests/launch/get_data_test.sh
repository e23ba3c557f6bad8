#!/usr/bin/env bash
# launch/get_data.sh keeps only files whose sha256 matches SOURCE.md: a corrupted source
# is refused (non-zero, no file left behind); a good one (../shared/data as a local
# mirror, when present) is accepted.
set -euo pipefail
SOURCE_DIR="$1"
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT

mkdir -p "$tmp/bad/ptb"
for f in train valid test; do echo "not ptb" > "$tmp/bad/ptb/ptb.$f.txt"; done
if DISTRNN_DATA_SOURCE="$tmp/bad" "$SOURCE_DIR/launch/get_data.sh" "$tmp/out" > "$tmp/log" 2>&1; then
  echo "FAIL: a corrupted source was accepted"; cat "$tmp/log"; exit 1
fi
grep -q "checksum mismatch for $tmp/out/ptb/ptb.train.txt.part" "$tmp/log" || { echo "FAIL: no checksum message"; cat "$tmp/log"; exit 1; }
[ ! -e "$tmp/out/ptb/ptb.train.txt" ] && [ ! -e "$tmp/out/ptb/ptb.train.txt.part" ] ||
  { echo "FAIL: a file was left behind"; ls -R "$tmp/out"; exit 1; }

shared="$SOURCE_DIR/../shared/data"
if [ -d "$shared/ptb" ]; then
  DISTRNN_DATA_SOURCE="$shared" "$SOURCE_DIR/launch/get_data.sh" "$tmp/good" > "$tmp/log" 2>&1 ||
    { echo "FAIL: the shared data was refused"; cat "$tmp/log"; exit 1; }
  cmp -s "$tmp/good/ptb/ptb.valid.txt" "$shared/ptb/ptb.valid.txt" || { echo "FAIL: copy differs"; exit 1; }
  echo "checked: corrupted source refused, shared data accepted"
else
  echo "checked: corrupted source refused (no ../shared/data to check the accepting path)"
fi
