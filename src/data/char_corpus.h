// Character-level corpora: any UTF-8 text, one token per Unicode code point.
//
// Tokens are stored in the Vocabulary as their UTF-8 strings ("a", "\n", "é"), and the
// vocabulary of a text is sorted by code point, so the same set of characters always
// gets the same ids. Texts are validated as UTF-8 (no overlong forms, no surrogates,
// nothing above U+10FFFF); the bytes are used as they are (no BOM stripping, no newline
// normalisation: "\r" is a character like any other).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/vocabulary.h"

namespace distrnn::data {

// The code points of `text` as UTF-8 strings. On invalid UTF-8: InvalidArgument
// "<source>:<line>: invalid UTF-8 at byte offset <n> (...)" where the line is 1-based and
// the byte offset is 0-based from the start of `text`.
absl::StatusOr<std::vector<std::string>> SplitUtf8(absl::string_view text, absl::string_view source);

// The vocabulary of the distinct characters of `chars`, sorted by code point.
Vocabulary BuildCharVocabulary(const std::vector<std::string>& chars);

// OK if every character of `text` is in `vocab`; else InvalidArgument naming `source`,
// the number of missing characters and each of them in code point order with the line
// of its first occurrence, e.g.
//   prompt: 2 characters are not in the vocabulary: '\t' (U+0009) first on line 2,
//   'é' (U+00E9) first on line 1
absl::Status CheckCharsInVocabulary(absl::string_view text, const Vocabulary& vocab, absl::string_view source);

// Ids of the characters of `text`; errors as SplitUtf8 and CheckCharsInVocabulary.
absl::StatusOr<std::vector<int64_t>> EncodeChars(absl::string_view text, const Vocabulary& vocab,
                                                 absl::string_view source);
// The text of `ids`; OutOfRange if an id is not in [0, vocab.size()).
absl::StatusOr<std::string> DecodeChars(const std::vector<int64_t>& ids, const Vocabulary& vocab);

// A character corpus split by position: train is the first n - n_valid characters,
// valid the last n_valid = floor(n * valid_fraction).
struct CharCorpus {
  Vocabulary vocab;
  std::vector<int64_t> train, valid;
};

// The smallest split LoadCharCorpus accepts (an LM needs an input and a target).
inline constexpr int64_t kMinCharSplit = 2;

// Reads `path` (UTF-8), builds the vocabulary from the whole file, splits it.
// `valid_fraction` must be in (0, 1) and both parts at least `min_split` characters.
absl::StatusOr<CharCorpus> LoadCharCorpus(const std::string& path, double valid_fraction,
                                          int64_t min_split = kMinCharSplit);

// The same starting from a pretrained vocabulary (fine-tuning with --init_from): `base`'s
// ids unchanged, then the file's characters `base` lacks, in BuildCharVocabulary's order.
absl::StatusOr<CharCorpus> LoadCharCorpusGrowingVocabulary(const std::string& path, double valid_fraction,
                                                            const Vocabulary& base, int64_t min_split = kMinCharSplit);

}  // namespace distrnn::data
