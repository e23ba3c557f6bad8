#include "data/word_corpus.h"

#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "data/text_file.h"
#include "data/utf8.h"

namespace distrnn::data {
namespace {

// Calls fn(line_number, token) for each token, and fn(line_number, kEos) at each line end.
template <typename Fn>
absl::Status ForEachToken(const std::string& text, Fn&& fn) {
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    if (line.empty() && line_number > 1 && line.data() == text.data() + text.size()) break;  // final '\n'
    for (absl::string_view token : absl::StrSplit(line, absl::ByAnyChar(" \t\r"), absl::SkipEmpty())) {
      RETURN_IF_ERROR(fn(line_number, token));
    }
    RETURN_IF_ERROR(fn(line_number, kEos));
  }
  return absl::OkStatus();
}

// The text of `path`, which must be UTF-8 (Note [text is UTF-8] in data/utf8.h).
absl::StatusOr<std::string> ReadWordFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  RETURN_IF_ERROR(CheckUtf8(text, path));
  return text;
}

}  // namespace

absl::StatusOr<Vocabulary> BuildWordVocabulary(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadWordFile(path));
  std::unordered_map<std::string, int64_t> counts;
  RETURN_IF_ERROR(ForEachToken(text, [&](int64_t, absl::string_view token) {
    ++counts[std::string(token)];
    return absl::OkStatus();
  }));
  return Vocabulary::FromCounts(counts);
}

absl::StatusOr<std::vector<int64_t>> EncodeWordFile(const std::string& path, const Vocabulary& vocab) {
  ASSIGN_OR_RETURN(std::string text, ReadWordFile(path));
  const std::optional<int64_t> unk = vocab.Find(kUnk);
  std::vector<int64_t> ids;
  ids.reserve(text.size() / 5);
  RETURN_IF_ERROR(ForEachToken(text, [&](int64_t line_number, absl::string_view token) {
    std::optional<int64_t> id = vocab.Find(token);
    if (!id) {
      if (!unk) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", line_number, ": word '", token,
                                                       "' is not in the vocabulary, which has no <unk>"));
      }
      id = unk;
    }
    ids.push_back(*id);
    return absl::OkStatus();
  }));
  return ids;
}

absl::StatusOr<WordCorpus> LoadPtbCorpus(const std::string& ptb_dir) {
  WordCorpus corpus;
  const std::string train = absl::StrCat(ptb_dir, "/ptb.train.txt");
  ASSIGN_OR_RETURN(corpus.vocab, BuildWordVocabulary(train));
  ASSIGN_OR_RETURN(corpus.train, EncodeWordFile(train, corpus.vocab));
  ASSIGN_OR_RETURN(corpus.valid, EncodeWordFile(absl::StrCat(ptb_dir, "/ptb.valid.txt"), corpus.vocab));
  ASSIGN_OR_RETURN(corpus.test, EncodeWordFile(absl::StrCat(ptb_dir, "/ptb.test.txt"), corpus.vocab));
  return corpus;
}

}  // namespace distrnn::data
