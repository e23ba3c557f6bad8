// Whole-file reads with errors that name the file.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace distrnn::data {

// The bytes of `path`; NotFound / InvalidArgument (empty) / PermissionDenied with the path.
absl::StatusOr<std::string> ReadFileToString(const std::string& path, bool allow_empty = false);

}  // namespace distrnn::data
