#!/usr/bin/env bash
# Builds the libFuzzer harnesses of the data readers with Debian's clang (optional, not in
# CI): clang++ -fsanitize=fuzzer,address,undefined over src/data and Abseil, no libtorch.
#
#   tests/fuzz/libfuzzer/build.sh [out_dir]      # default build-libfuzzer/
#   build-libfuzzer/data_readers_fuzzer -max_total_time=600 build-libfuzzer/corpus
set -euo pipefail
cd "$(dirname "$0")/../../.."
OUT="${1:-build-libfuzzer}"
CXX="${CXX_FUZZ:-clang++}"
command -v "$CXX" >/dev/null || { echo "no $CXX: apt-get install clang" >&2; exit 1; }
mkdir -p "$OUT/corpus"
SOURCES=(src/data/utf8.cc src/data/text_file.cc src/data/compressed_file.cc src/data/vocabulary.cc
         src/data/word_corpus.cc src/data/char_corpus.cc src/data/imdb.cc src/data/glove.cc)
"$CXX" -std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -Isrc tests/fuzz/libfuzzer/data_readers_fuzzer.cc "${SOURCES[@]}" \
  $(pkg-config --libs absl_status absl_statusor absl_strings absl_str_format) -lz \
  -o "$OUT/data_readers_fuzzer"
# Seeds: one small valid input per reader (the first byte picks it).
printf '\x00caf\xc3\xa9 na\xc3\xafve\n' > "$OUT/corpus/utf8"
printf '\x01 the cat sat on the mat \n a dog <unk> ran \n' > "$OUT/corpus/ptb"
printf '\x02ROMEO:\nO Romeo, Romeo! wherefore art thou Romeo?\n' > "$OUT/corpus/char"
printf '\x031\ta fine film<br />truly\n0\ta dull mess\n' > "$OUT/corpus/tsv"
printf '\x04the 0.1 0.2 0.3\nfilm 1 2 3\n' > "$OUT/corpus/glove"
{ printf '\x05'; printf 'label\ttext\n' | gzip -n; } > "$OUT/corpus/gz"
echo "built $OUT/data_readers_fuzzer; run: $OUT/data_readers_fuzzer -max_total_time=600 $OUT/corpus"
