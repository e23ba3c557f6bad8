// Process exit codes of the distrnn binary.
#pragma once

#include "absl/status/status.h"

namespace distrnn::app {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // a fault while running (I/O, internal)
inline constexpr int kExitBadInput = 2;  // flags, configs, data or checkpoints the user gave

// Bad input (the user can fix it) exits 2; anything else 1.
inline int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk: return kExitOk;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kPermissionDenied:
    case absl::StatusCode::kOutOfRange:
    case absl::StatusCode::kAlreadyExists:
      return kExitBadInput;
    default:
      return kExitFailure;
  }
}

}  // namespace distrnn::app
