// Pretrained word vectors in GloVe's text format, one word per line:
//   word v1 v2 ... vD
// fields separated by single spaces (a trailing "\r" is dropped). The file may be gzip
// compressed. A first line of exactly two integers ("count dim", word2vec's text header)
// is skipped. D is taken from the first vector line unless `expected_dim` > 0. Every line
// is checked: a different number of values or a value that is not a finite float is an
// InvalidArgument naming "<file>:<line>". Words with spaces (a few lines of GloVe 840B) are
// therefore not supported. Empty lines are skipped. If a word occurs twice, its first
// vector is used. The file must be UTF-8 (Note [text is UTF-8] in data/utf8.h): other
// bytes are an InvalidArgument naming "<file>:<line>", and so is a corrupt or truncated .gz.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/vocabulary.h"

namespace distrnn::data {

struct PretrainedEmbeddings {
  int64_t rows = 0;  // vocab.size()
  int64_t dim = 0;   // D
  std::vector<float> values;   // [rows, dim] row-major; rows not found are zero
  std::vector<uint8_t> found;  // [rows] 1 where the file had the word
  int64_t num_found = 0;
};

// Vectors of the words of `vocab` (exact, case-sensitive match; the IMDB tokenizer
// lower-cases, as GloVe's uncased files are).
absl::StatusOr<PretrainedEmbeddings> LoadGloveEmbeddings(const std::string& path, const Vocabulary& vocab,
                                                         int64_t expected_dim = 0);

}  // namespace distrnn::data
