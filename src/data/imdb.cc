#include "data/imdb.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <unordered_map>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "data/compressed_file.h"
#include "data/text_file.h"
#include "data/utf8.h"
#include "data/word_corpus.h"

namespace distrnn::data {
namespace {

namespace fs = std::filesystem;

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

// Files of `dir` ending in .txt, ordered by numeric id prefix, then by name.
absl::StatusOr<std::vector<fs::path>> ReviewFiles(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return absl::NotFoundError(absl::StrCat("no such directory: ", dir.string()));
  struct Entry {
    int64_t id;
    std::string name;
    fs::path path;
  };
  std::vector<Entry> entries;
  // error_code overloads throughout: a hostile tree (a link to itself) must give a status,
  // not a filesystem_error.
  fs::directory_iterator it(dir, ec);
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const fs::directory_entry& e = *it;
    if (e.path().extension() != ".txt") continue;
    std::error_code file_ec;
    const bool regular = e.is_regular_file(file_ec);
    if (file_ec) {  // a dangling link, a link to itself
      return absl::InvalidArgumentError(absl::StrCat(e.path().string(), ": not a readable review (", file_ec.message(), ")"));
    }
    if (!regular) continue;
    const std::string name = e.path().filename().string();
    int64_t id = INT64_MAX;
    const absl::string_view prefix = absl::string_view(name).substr(0, name.find_first_of("_."));
    if (!absl::SimpleAtoi(prefix, &id)) id = INT64_MAX;
    entries.push_back({id, name, e.path()});
  }
  if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot list ", dir.string(), ": ", ec.message()));
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return a.id != b.id ? a.id < b.id : a.name < b.name; });
  std::vector<fs::path> paths;
  paths.reserve(entries.size());
  for (Entry& e : entries) paths.push_back(std::move(e.path));
  return paths;
}

bool IsWordByte(unsigned char c) { return c >= 0x80 || std::isalnum(c); }

// Length of the line-break tag ("<br />", "<br/>", "<br>", any case) at text[i], or 0.
size_t BreakTagLength(absl::string_view text, size_t i) {
  if (text[i] != '<') return 0;
  for (absl::string_view tag : {"<br />", "<br/>", "<br>"}) {
    if (text.size() - i >= tag.size() && absl::EqualsIgnoreCase(text.substr(i, tag.size()), tag)) return tag.size();
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::vector<LabeledText>> ReadLabeledTsv(const std::string& path) {
  ASSIGN_OR_RETURN(std::string contents, ReadMaybeCompressedFile(path));
  RETURN_IF_ERROR(CheckUtf8(contents, path));
  std::vector<LabeledText> out;
  int64_t line_number = 0;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (IsBlank(line)) continue;
    const size_t tab = line.find('\t');
    const std::string where = absl::StrCat(path, ":", line_number, ": ");
    if (tab == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat(where, "expected 'label<TAB>text', found no tab"));
    }
    const absl::string_view label = line.substr(0, tab);
    if (label != "0" && label != "1") {
      return absl::InvalidArgumentError(
          absl::StrCat(where, "label must be 0 or 1, found '", label.substr(0, 20), "'"));
    }
    const absl::string_view text = line.substr(tab + 1);
    if (IsBlank(text)) return absl::InvalidArgumentError(absl::StrCat(where, "empty review text"));
    out.push_back({label == "1" ? 1 : 0, std::string(text)});
  }
  if (out.empty()) return absl::InvalidArgumentError(absl::StrCat(path, ": no reviews (only empty lines)"));
  return out;
}

absl::StatusOr<std::vector<LabeledText>> ReadAclImdbSplit(const std::string& split_dir) {
  std::vector<LabeledText> out;
  for (const auto& [folder, label] : {std::pair<const char*, int64_t>{"neg", 0}, {"pos", 1}}) {
    ASSIGN_OR_RETURN(std::vector<fs::path> files, ReviewFiles(fs::path(split_dir) / folder));
    if (files.empty()) {
      return absl::NotFoundError(absl::StrCat("no *.txt reviews in ", (fs::path(split_dir) / folder).string()));
    }
    for (const fs::path& file : files) {
      ASSIGN_OR_RETURN(std::string text, ReadFileToString(file.string()));
      RETURN_IF_ERROR(CheckUtf8(text, file.string()));
      if (IsBlank(text)) return absl::InvalidArgumentError(absl::StrCat(file.string(), ": empty review text"));
      while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
      out.push_back({label, std::move(text)});
    }
  }
  return out;
}

absl::StatusOr<ImdbSplits> LoadImdb(const std::string& dir) {
  std::error_code ec;
  const fs::path root(dir);
  ImdbSplits splits;
  for (const char* ext : {".tsv.gz", ".tsv"}) {
    const fs::path train = root / absl::StrCat("train", ext);
    const fs::path test = root / absl::StrCat("test", ext);
    if (fs::exists(train, ec) && fs::exists(test, ec)) {
      ASSIGN_OR_RETURN(splits.train, ReadLabeledTsv(train.string()));
      ASSIGN_OR_RETURN(splits.test, ReadLabeledTsv(test.string()));
      return splits;
    }
  }
  for (const fs::path& base : {root / "aclImdb", root}) {
    if (fs::is_directory(base / "train" / "pos", ec) && fs::is_directory(base / "test" / "pos", ec)) {
      ASSIGN_OR_RETURN(splits.train, ReadAclImdbSplit((base / "train").string()));
      ASSIGN_OR_RETURN(splits.test, ReadAclImdbSplit((base / "test").string()));
      return splits;
    }
  }
  return absl::NotFoundError(absl::StrCat("no IMDB data in ", dir,
                                          ": looked for {train,test}.tsv.gz, {train,test}.tsv, "
                                          "aclImdb/{train,test}/{pos,neg}/ and {train,test}/{pos,neg}/"));
}

std::vector<std::string> TokenizeReview(absl::string_view text) {
  std::vector<std::string> tokens;
  std::string word;
  const auto flush = [&] {
    if (!word.empty()) tokens.push_back(std::move(word));
    word.clear();
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    if (const size_t tag = BreakTagLength(text, i); tag > 0) {
      flush();
      i += tag - 1;
    } else if (IsWordByte(c)) {
      word.push_back(static_cast<char>(absl::ascii_tolower(c)));
    } else if (c == '\'' && !word.empty() && i + 1 < text.size() &&
               IsWordByte(static_cast<unsigned char>(text[i + 1]))) {
      word.push_back('\'');
    } else if (std::ispunct(c)) {
      flush();
      tokens.emplace_back(1, static_cast<char>(c));
    } else {
      flush();  // whitespace and control characters
    }
  }
  flush();
  return tokens;
}

absl::StatusOr<Vocabulary> BuildImdbVocabulary(const std::vector<std::vector<std::string>>& tokenized,
                                               int64_t vocab_size) {
  if (vocab_size < 1) return absl::InvalidArgumentError(absl::StrCat("vocab size must be >= 1, got ", vocab_size));
  std::unordered_map<std::string, int64_t> counts;
  for (const auto& tokens : tokenized) {
    for (const std::string& t : tokens) ++counts[t];
  }
  counts.erase(kPad);
  counts.erase(kUnk);
  std::vector<std::string> words = Vocabulary::FromCounts(counts).tokens();
  if (static_cast<int64_t>(words.size()) > vocab_size) words.resize(vocab_size);
  words.insert(words.begin(), {kPad, kUnk});
  return Vocabulary(words);
}

std::vector<int64_t> EncodeTokens(const std::vector<std::string>& tokens, const Vocabulary& vocab, int64_t max_len) {
  const size_t n = max_len > 0 ? std::min(tokens.size(), static_cast<size_t>(max_len)) : tokens.size();
  std::vector<int64_t> ids;
  ids.reserve(n);
  for (size_t i = 0; i < n; ++i) ids.push_back(vocab.Find(tokens[i]).value_or(kImdbUnkId));
  return ids;
}

}  // namespace distrnn::data
