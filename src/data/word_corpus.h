// Word-level corpora in the PTB format: whitespace-separated tokens, one sentence per
// line, "<eos>" appended at each line end (Mikolov / Zaremba preprocessing). Files must be
// UTF-8: anything else is an InvalidArgument naming file, line and byte offset (Note [text
// is UTF-8] in data/utf8.h).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "data/vocabulary.h"

namespace distrnn::data {

inline constexpr char kEos[] = "<eos>";
inline constexpr char kUnk[] = "<unk>";

// Vocabulary of every token of `path` plus <eos>. Error if the file is missing or empty.
absl::StatusOr<Vocabulary> BuildWordVocabulary(const std::string& path);

// Token ids of `path`, <eos> after each line. A token outside `vocab` maps to <unk>
// when the vocabulary has it, else is an error naming the file, line and token.
absl::StatusOr<std::vector<int64_t>> EncodeWordFile(const std::string& path, const Vocabulary& vocab);

// The three splits of a PTB-style directory: ptb.{train,valid,test}.txt.
struct WordCorpus {
  Vocabulary vocab;
  std::vector<int64_t> train, valid, test;
};
absl::StatusOr<WordCorpus> LoadPtbCorpus(const std::string& ptb_dir);

}  // namespace distrnn::data
