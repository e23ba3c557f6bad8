// One-line InvalidArgument errors for config checks, named after the flag.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace distrnn::common {

// "--<flag> must be positive, got <value>" unless value > 0.
inline absl::Status RequirePositive(int64_t value, absl::string_view flag) {
  if (value > 0) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("--", flag, " must be positive, got ", value));
}

}  // namespace distrnn::common
