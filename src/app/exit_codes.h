// Process exit codes of the distrnn binary.
#pragma once

#include "absl/status/status.h"
#include "train/agreed_stop.h"

namespace distrnn::app {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;   // a fault while running (I/O, internal)
inline constexpr int kExitBadInput = 2;  // flags, configs, data or checkpoints the user gave
inline constexpr int kExitDiverged = 3;  // a non-finite loss or gradient (--on_nonfinite): restarting won't help
// A stop signal (SIGTERM, SIGINT) after the checkpoint: 128 + the signal, as the shell
// reports a process the signal killed (143, 130).

// Bad input (the user can fix it) exits 2; agreed stops (train/agreed_stop.h) 128 + the
// signal or 3; anything else 1.
inline int ExitCodeFor(const absl::Status& status) {
  if (train::IsAgreedStop(status)) {
    const int signo = train::StopSignalOf(status);
    return signo > 0 ? 128 + signo : kExitDiverged;
  }
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
