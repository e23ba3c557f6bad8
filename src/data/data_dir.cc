#include "data/data_dir.h"

#include <cstdlib>
#include <filesystem>

#include "absl/strings/str_cat.h"

namespace distrnn::data {

absl::StatusOr<std::string> ResolveDataDir(const std::string& flag_value) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!flag_value.empty()) {
    if (!fs::is_directory(flag_value, ec)) {
      return absl::NotFoundError(absl::StrCat("--data_dir ", flag_value, " is not a directory"));
    }
    return flag_value;
  }
  if (const char* env = std::getenv("DISTRNN_DATA"); env != nullptr && *env != '\0') {
    if (!fs::is_directory(env, ec)) {
      return absl::NotFoundError(absl::StrCat("DISTRNN_DATA=", env, " is not a directory"));
    }
    return std::string(env);
  }
  for (const char* candidate : {"../shared/data", "data"}) {
    if (fs::is_directory(candidate, ec)) return std::string(candidate);
  }
  return absl::NotFoundError(
      "no data directory: pass --data_dir, set DISTRNN_DATA, or run launch/get_data.sh");
}

}  // namespace distrnn::data
