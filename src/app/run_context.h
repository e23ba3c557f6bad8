// The frame every `distrnn` command runs in: process settings (allocator, threads), the
// communicator picked by --comm, rank-tagged logging, and the rule that an error on any
// rank of a multi-rank job ends the whole job (MPI_Abort) instead of leaving peers
// waiting in a collective.
#pragma once

#include <functional>

#include "absl/status/status.h"
#include "app/common_flags.h"
#include "comm/communicator.h"

namespace distrnn::app {

// Runs body(comm) on a communicator made from `run`; on a multi-rank job an error is
// logged with this rank's tag and aborts every rank with the error's exit code.
absl::Status RunWithCommunicator(const RunOptions& run, const std::function<absl::Status(comm::Communicator&)>& body);

// Start-up table rows every task shows (comm, threads, memory, seed, run dir).
std::string DescribeProcess(const RunOptions& run, const comm::Communicator& comm);

}  // namespace distrnn::app
