#include "data/compressed_file.h"

#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "data/text_file.h"

namespace distrnn::data {

namespace {

// A gzip stream that is corrupt or cut short is bad input (the user's file); a failing read
// or allocation is a fault of the machine.
absl::Status GzipError(const std::string& path, int zlib_code, absl::string_view message) {
  absl::ConsumePrefix(&message, absl::StrCat(path, ": "));  // zlib's messages may start with the path
  const std::string text = absl::StrCat("cannot read ", path, ": ", message);
  switch (zlib_code) {
    case Z_ERRNO: return absl::DataLossError(absl::StrCat(text, " (", std::strerror(errno), ")"));
    case Z_MEM_ERROR: return absl::ResourceExhaustedError(text);
    default: return absl::InvalidArgumentError(absl::StrCat(text, ": the gzip file is corrupt or truncated"));
  }
}

}  // namespace

absl::StatusOr<std::string> ReadMaybeCompressedFile(const std::string& path, bool allow_empty) {
  if (absl::Status is_file = CheckIsFile(path); !is_file.ok()) return is_file;
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  gzbuffer(file, 1 << 17);
  std::string text;
  std::vector<char> buffer(size_t{1} << 16);
  while (true) {
    const int n = gzread(file, buffer.data(), static_cast<unsigned>(buffer.size()));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      return GzipError(path, code, message);
    }
    if (n == 0) break;
    text.append(buffer.data(), static_cast<size_t>(n));
  }
  // zlib reports a gzip stream cut short only at close (Z_BUF_ERROR) on some versions,
  // and at gzread on others: check both.
  const int close_code = gzclose(file);
  if (close_code != Z_OK) {
    return GzipError(path, close_code, absl::StrCat("the gzip stream ends early (zlib error ", close_code, ")"));
  }
  if (text.empty() && !allow_empty) return absl::InvalidArgumentError(absl::StrCat("empty file: ", path));
  return text;
}

}  // namespace distrnn::data
