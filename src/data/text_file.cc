#include "data/text_file.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace distrnn::data {

absl::Status CheckIsFile(const std::string& path) {
  std::error_code ec;
  const bool exists = std::filesystem::exists(path, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot read ", path, ": ", ec.message()));  // e.g. a link loop
  if (!exists) return absl::NotFoundError(absl::StrCat("no such file: ", path));
  if (std::filesystem::is_directory(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat("expected a file, found a directory: ", path));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadFileToString(const std::string& path, bool allow_empty) {
  if (absl::Status is_file = CheckIsFile(path); !is_file.ok()) return is_file;
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::PermissionDeniedError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  std::string text = buffer.str();
  if (text.empty() && !allow_empty) return absl::InvalidArgumentError(absl::StrCat("empty file: ", path));
  return text;
}

}  // namespace distrnn::data
