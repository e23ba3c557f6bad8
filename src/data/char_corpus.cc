#include "data/char_corpus.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "data/text_file.h"
#include "data/utf8.h"

namespace distrnn::data {
namespace {

char32_t CodePointOf(absl::string_view utf8) {
  char32_t cp = 0;
  DecodeUtf8(utf8, 0, &cp);
  return cp;
}

// 'é' (U+00E9); control characters escaped or shown by code point only.
std::string Describe(const std::string& ch) {
  const char32_t cp = CodePointOf(ch);
  std::string shown;
  switch (cp) {
    case '\n': shown = "'\\n' "; break;
    case '\r': shown = "'\\r' "; break;
    case '\t': shown = "'\\t' "; break;
    default: shown = (cp < 0x20 || cp == 0x7F) ? "" : absl::StrCat("'", ch, "' ");
  }
  return absl::StrCat(shown, absl::StrFormat("(U+%04X)", static_cast<uint32_t>(cp)));
}

absl::StatusOr<CharCorpus> Split(const std::string& path, std::vector<int64_t> ids, double valid_fraction,
                                 int64_t min_split, Vocabulary vocab) {
  const int64_t n = static_cast<int64_t>(ids.size());
  const int64_t n_valid = static_cast<int64_t>(std::floor(static_cast<double>(n) * valid_fraction));
  const int64_t n_train = n - n_valid;
  if (n_train < min_split || n_valid < min_split) {
    return absl::InvalidArgumentError(absl::StrCat(
        path, ": ", n, " characters split with valid fraction ", valid_fraction, " give ", n_train, " train and ",
        n_valid, " valid characters; each part needs at least ", min_split));
  }
  CharCorpus corpus;
  corpus.vocab = std::move(vocab);
  corpus.valid.assign(ids.begin() + n_train, ids.end());
  ids.resize(n_train);
  corpus.train = std::move(ids);
  return corpus;
}

absl::Status CheckFraction(double valid_fraction) {
  if (!(valid_fraction > 0.0 && valid_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("valid fraction must be in (0, 1), got ", valid_fraction));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<std::string>> SplitUtf8(absl::string_view text, absl::string_view source) {
  RETURN_IF_ERROR(CheckUtf8(text, source));
  std::vector<std::string> chars;
  chars.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    char32_t cp;
    const int length = DecodeUtf8(text, i, &cp);
    chars.emplace_back(text.substr(i, length));
    i += length;
  }
  return chars;
}

Vocabulary BuildCharVocabulary(const std::vector<std::string>& chars) {
  std::set<std::string> distinct(chars.begin(), chars.end());
  std::vector<std::string> sorted(distinct.begin(), distinct.end());
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const std::string& a, const std::string& b) { return CodePointOf(a) < CodePointOf(b); });
  return Vocabulary(sorted);
}

absl::Status CheckCharsInVocabulary(absl::string_view text, const Vocabulary& vocab, absl::string_view source) {
  ASSIGN_OR_RETURN(std::vector<std::string> chars, SplitUtf8(text, source));
  std::map<char32_t, std::pair<std::string, int64_t>> missing;  // code point -> (char, first line)
  int64_t line = 1;
  for (const std::string& ch : chars) {
    if (!vocab.Contains(ch)) missing.try_emplace(CodePointOf(ch), ch, line);
    if (ch == "\n") ++line;
  }
  if (missing.empty()) return absl::OkStatus();
  std::vector<std::string> described;
  for (const auto& [cp, entry] : missing) {
    described.push_back(absl::StrCat(Describe(entry.first), " first on line ", entry.second));
  }
  return absl::InvalidArgumentError(absl::StrCat(source, ": ", missing.size(),
                                                 missing.size() == 1 ? " character is" : " characters are",
                                                 " not in the vocabulary: ", absl::StrJoin(described, ", ")));
}

absl::StatusOr<std::vector<int64_t>> EncodeChars(absl::string_view text, const Vocabulary& vocab,
                                                 absl::string_view source) {
  ASSIGN_OR_RETURN(std::vector<std::string> chars, SplitUtf8(text, source));
  std::vector<int64_t> ids;
  ids.reserve(chars.size());
  for (const std::string& ch : chars) {
    const std::optional<int64_t> id = vocab.Find(ch);
    if (!id) return CheckCharsInVocabulary(text, vocab, source);  // lists every missing character
    ids.push_back(*id);
  }
  return ids;
}

absl::StatusOr<std::string> DecodeChars(const std::vector<int64_t>& ids, const Vocabulary& vocab) {
  std::string text;
  text.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab.size()) {
      return absl::OutOfRangeError(absl::StrCat("character id ", id, " is outside the vocabulary of ", vocab.size()));
    }
    text += vocab.Token(id);
  }
  return text;
}

absl::StatusOr<CharCorpus> LoadCharCorpus(const std::string& path, double valid_fraction, int64_t min_split) {
  RETURN_IF_ERROR(CheckFraction(valid_fraction));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  ASSIGN_OR_RETURN(std::vector<std::string> chars, SplitUtf8(text, path));
  Vocabulary vocab = BuildCharVocabulary(chars);
  std::vector<int64_t> ids;
  ids.reserve(chars.size());
  for (const std::string& ch : chars) ids.push_back(*vocab.Find(ch));
  return Split(path, std::move(ids), valid_fraction, min_split, std::move(vocab));
}

absl::StatusOr<CharCorpus> LoadCharCorpusGrowingVocabulary(const std::string& path, double valid_fraction,
                                                            const Vocabulary& base, int64_t min_split) {
  RETURN_IF_ERROR(CheckFraction(valid_fraction));
  ASSIGN_OR_RETURN(std::string text, ReadFileToString(path));
  ASSIGN_OR_RETURN(std::vector<std::string> chars, SplitUtf8(text, path));
  // Vocabulary keeps the first id of a repeated token: base's ids, then the new ones.
  std::vector<std::string> tokens = base.tokens();
  const Vocabulary own = BuildCharVocabulary(chars);
  tokens.insert(tokens.end(), own.tokens().begin(), own.tokens().end());
  Vocabulary vocab(tokens);
  std::vector<int64_t> ids;
  ids.reserve(chars.size());
  for (const std::string& ch : chars) ids.push_back(*vocab.Find(ch));
  return Split(path, std::move(ids), valid_fraction, min_split, std::move(vocab));
}

}  // namespace distrnn::data
