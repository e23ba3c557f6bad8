#include "data/compressed_file.h"

#include <zlib.h>

#include <filesystem>

#include "absl/strings/str_cat.h"

namespace distrnn::data {

absl::StatusOr<std::string> ReadMaybeCompressedFile(const std::string& path, bool allow_empty) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return absl::NotFoundError(absl::StrCat("no such file: ", path));
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("expected a file, found a directory: ", path));
  }
  gzFile file = gzopen(path.c_str(), "rb");
  if (file == nullptr) return absl::PermissionDeniedError(absl::StrCat("cannot open ", path));
  gzbuffer(file, 1 << 17);
  std::string text;
  char buffer[1 << 16];
  while (true) {
    const int n = gzread(file, buffer, sizeof(buffer));
    if (n < 0) {
      int code = 0;
      const std::string message = gzerror(file, &code);
      gzclose(file);
      return absl::DataLossError(absl::StrCat("cannot read ", path, ": ", message));
    }
    if (n == 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  // zlib reports a gzip stream cut short only at close (Z_BUF_ERROR) on some versions,
  // and at gzread on others: check both.
  const int close_code = gzclose(file);
  if (close_code != Z_OK) {
    return absl::DataLossError(absl::StrCat("cannot read ", path, ": gzip stream is truncated or corrupt (zlib error ",
                                            close_code, ")"));
  }
  if (text.empty() && !allow_empty) return absl::InvalidArgumentError(absl::StrCat("empty file: ", path));
  return text;
}

}  // namespace distrnn::data
