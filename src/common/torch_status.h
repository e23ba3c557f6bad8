// Turns libtorch exceptions into absl::Status at module boundaries.
#pragma once

#include <exception>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace distrnn::common {

// Call from a catch block: the in-flight exception as an Internal status whose
// message starts with `context` and keeps only the first line of c10's message.
absl::Status StatusFromCurrentException(absl::string_view context);

// Runs fn(); any exception becomes a status (see above).
template <typename Fn>
absl::Status GuardTorch(absl::string_view context, Fn&& fn) {
  try {
    return fn();
  } catch (...) {
    return StatusFromCurrentException(context);
  }
}

}  // namespace distrnn::common
