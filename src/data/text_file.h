// Whole-file reads with errors that name the file.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace distrnn::data {

// OK when `path` exists and is not a directory; else NotFound / InvalidArgument naming it.
absl::Status CheckIsFile(const std::string& path);

// The bytes of `path`; NotFound / InvalidArgument (empty) / PermissionDenied with the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path, bool allow_empty = false);

}  // namespace distrnn::data
