// Statuses of a run that every rank ended at the same step by agreement, so no rank has
// to abort its peers (MPI_Abort) and each process can exit with its own code:
//
//   StoppedBySignal(SIGTERM, ...)  a stop signal reached some rank; every rank finished the
//                                  step and the checkpoint was written (kCancelled; the
//                                  process exits 128 + the signal: 143, 130)
//   Diverged(...)                  a non-finite loss or gradient (kAborted); resuming from
//                                  the last checkpoint would diverge the same way
//
// The flags behind both travel in the step's one all-reduce (trainer.cc), so every rank
// returns the same status at the same step. Header-only, no torch: src/app reads it to
// pick the exit code.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/string_view.h"

namespace distrnn::train {

// Payload marking a status as an agreed stop; its value is the signal number ("0" when
// the stop was not caused by a signal).
inline constexpr char kAgreedStopPayload[] = "distrnn/agreed-stop";

inline absl::Status StoppedBySignal(int signo, absl::string_view message) {
  absl::Status status = absl::CancelledError(message);
  status.SetPayload(kAgreedStopPayload, absl::Cord(std::to_string(signo)));
  return status;
}

inline absl::Status Diverged(absl::string_view message) {
  absl::Status status = absl::AbortedError(message);
  status.SetPayload(kAgreedStopPayload, absl::Cord("0"));
  return status;
}

// Whether every rank returns this status at the same point (so none must abort the others).
inline bool IsAgreedStop(const absl::Status& status) {
  return !status.ok() && status.GetPayload(kAgreedStopPayload).has_value();
}

// The signal that stopped the run, or 0.
inline int StopSignalOf(const absl::Status& status) {
  if (!IsAgreedStop(status)) return 0;
  int signo = 0;
  return absl::SimpleAtoi(std::string(*status.GetPayload(kAgreedStopPayload)), &signo) ? signo : 0;
}

}  // namespace distrnn::train
