// The frame every `distrnn` command runs in: process settings (allocator, threads), the
// communicator picked by --comm, the device picked by --device, rank-tagged logging,
// and the rule that an error on any rank of a multi-rank job ends the whole job
// (MPI_Abort) instead of leaving peers waiting in a collective.
//
// Start-up order: communicator (host side: MPI when --comm=mpi|nccl or under a
// launcher) -> this rank's device from its node-local rank (common/device.h), made
// current before any CUDA allocation; the ranks agree that every one of them has its
// device, else each ends with exit 2 and its own one-line reason ("no CUDA device
// visible to rank r on host h") -> the NCCL communicator on top of MPI (--comm=nccl,
// or auto with CUDA and more than one rank) -> one line per rank: host, local rank,
// device, NCCL version.
#pragma once

#include <functional>

#include <c10/core/Device.h>

#include "absl/status/status.h"
#include "app/common_flags.h"
#include "comm/communicator.h"

namespace distrnn::app {

// Runs body(comm, device) on a communicator and device made from `run`; on a
// multi-rank job an error is logged with this rank's tag and aborts every rank with
// the error's exit code.
absl::Status RunWithCommunicator(const RunOptions& run,
                                 const std::function<absl::Status(comm::Communicator&, c10::Device)>& body);

// Start-up table rows every task shows (comm, device, precision, threads, memory).
std::string DescribeProcess(const RunOptions& run, const comm::Communicator& comm);

}  // namespace distrnn::app
