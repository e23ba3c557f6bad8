// IMDB movie reviews (Maas et al. 2011): readers for both layouts, the tokenizer, the
// vocabulary and the encoder. Labels: 0 = negative, 1 = positive.
//
// TSV layout ({train,test}.tsv.gz, or the same uncompressed): one review per line,
//   label<TAB>text
// split at the FIRST tab only (27 reviews contain tabs). A trailing "\r" is dropped
// (CRLF files work). Empty lines (also "\r" or whitespace only) are SKIPPED; a line with
// no tab, a label other than "0"/"1", or a text that is empty or whitespace only is an
// InvalidArgument naming "<file>:<line>".
//
// Original layout (aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt): one review per
// file, neg first then pos; inside each folder files are ordered by the numeric <id>
// prefix (then by name for names without one), which is the row order of the TSV files.
// An empty review file, or a *.txt entry that cannot be read (a dangling link), is an
// error naming the file; other entries (folders, other names) are skipped.
//
// Both layouts must be UTF-8 (after decompression): other bytes are an InvalidArgument
// naming "<file>:<line>" (Note [text is UTF-8] in data/utf8.h); so is a corrupt or
// truncated .gz.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "data/vocabulary.h"

namespace distrnn::data {

inline constexpr char kPad[] = "<pad>";
inline constexpr int64_t kPadId = 0;
inline constexpr int64_t kImdbUnkId = 1;  // "<unk>" (kUnk of word_corpus.h)

struct LabeledText {
  int64_t label = 0;
  std::string text;
};

absl::StatusOr<std::vector<LabeledText>> ReadLabeledTsv(const std::string& path);
// `split_dir` is e.g. aclImdb/train (holding pos/ and neg/).
absl::StatusOr<std::vector<LabeledText>> ReadAclImdbSplit(const std::string& split_dir);

// Train and test reviews from `dir`: dir/{train,test}.tsv.gz, else dir/{train,test}.tsv,
// else dir/aclImdb/{train,test}/, else dir/{train,test}/{pos,neg}/. NotFound lists what
// was tried.
struct ImdbSplits {
  std::vector<LabeledText> train, test;
};
absl::StatusOr<ImdbSplits> LoadImdb(const std::string& dir);

// Tokenizer:
//  - ASCII letters are lower-cased; other bytes (UTF-8) are kept as they are;
//  - "<br />", "<br/>", "<br>" (any case) become a space;
//  - whitespace separates tokens;
//  - each ASCII punctuation character is a token of its own, except an apostrophe
//    between two word characters, which stays inside the word: "don't" is one token,
//    "'quoted'" is "'", "quoted", "'"; "well-known" is "well", "-", "known";
//  - word characters are everything else (ASCII letters and digits, bytes >= 0x80).
std::vector<std::string> TokenizeReview(absl::string_view text);

// "<pad>" (id 0), "<unk>" (id 1), then the `vocab_size` most frequent tokens of
// `tokenized` by descending count, ties by token (fewer if there are fewer distinct
// tokens). InvalidArgument if vocab_size < 1.
absl::StatusOr<Vocabulary> BuildImdbVocabulary(const std::vector<std::vector<std::string>>& tokenized,
                                               int64_t vocab_size);

// Ids of the first `max_len` tokens (max_len <= 0: all); unknown tokens -> kImdbUnkId.
// The vocabulary must come from BuildImdbVocabulary. Can be empty for an empty text.
std::vector<int64_t> EncodeTokens(const std::vector<std::string>& tokens, const Vocabulary& vocab, int64_t max_len);

}  // namespace distrnn::data
