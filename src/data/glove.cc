#include "data/glove.h"

#include <charconv>
#include <cmath>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/status_macros.h"
#include "data/compressed_file.h"
#include "data/utf8.h"

namespace distrnn::data {
namespace {

bool IsHeader(const std::vector<absl::string_view>& fields) {
  int64_t a, b;
  return fields.size() == 2 && absl::SimpleAtoi(fields[0], &a) && absl::SimpleAtoi(fields[1], &b);
}

bool ParseFloat(absl::string_view s, float* out) {
  const char* end = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(s.data(), end, *out);
  return ec == std::errc() && ptr == end && std::isfinite(*out);
}

}  // namespace

absl::StatusOr<PretrainedEmbeddings> LoadGloveEmbeddings(const std::string& path, const Vocabulary& vocab,
                                                         int64_t expected_dim) {
  ASSIGN_OR_RETURN(std::string contents, ReadMaybeCompressedFile(path));
  RETURN_IF_ERROR(CheckUtf8(contents, path));
  PretrainedEmbeddings e;
  e.rows = vocab.size();
  e.dim = expected_dim > 0 ? expected_dim : 0;
  e.found.assign(e.rows, 0);
  int64_t line_number = 0;
  int64_t vector_lines = 0;
  std::vector<absl::string_view> fields;
  for (absl::string_view line : absl::StrSplit(contents, '\n')) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    fields = absl::StrSplit(line, ' ');
    if (line_number == 1 && IsHeader(fields)) continue;
    const std::string where = absl::StrCat(path, ":", line_number, ": ");
    if (e.dim == 0) {
      if (fields.size() < 2) return absl::InvalidArgumentError(absl::StrCat(where, "expected 'word v1 ... vD'"));
      e.dim = static_cast<int64_t>(fields.size()) - 1;
    }
    if (static_cast<int64_t>(fields.size()) != e.dim + 1) {
      return absl::InvalidArgumentError(absl::StrCat(where, "expected a word and ", e.dim, " values, found ",
                                                     static_cast<int64_t>(fields.size()) - 1, " values"));
    }
    ++vector_lines;
    const std::optional<int64_t> row = vocab.Find(fields[0]);
    const bool take = row.has_value() && !e.found[*row];
    if (take && e.values.empty()) e.values.assign(e.rows * e.dim, 0.0f);
    for (int64_t k = 0; k < e.dim; ++k) {
      float v;
      if (!ParseFloat(fields[k + 1], &v)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, "value ", k + 1, " '", fields[k + 1].substr(0, 30), "' is not a finite number"));
      }
      if (take) e.values[*row * e.dim + k] = v;
    }
    if (take) {
      e.found[*row] = 1;
      ++e.num_found;
    }
  }
  if (vector_lines == 0) return absl::InvalidArgumentError(absl::StrCat(path, ": no word vectors"));
  e.values.resize(e.rows * e.dim, 0.0f);
  return e;
}

}  // namespace distrnn::data
