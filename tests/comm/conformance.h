// Communicator conformance checks with closed-form answers, written for any world size
// and device, and run on LocalCommunicator (tests/comm), MpiCommunicator under mpiexec
// -n 2, 3 (tests/mpi), and NcclCommunicator on CUDA (tests/comm, skipped without a
// GPU). Every rank runs the same collectives in the same order; expectations are
// checked after the collectives (EXPECT, never ASSERT before one), so a failing rank
// cannot leave its peers waiting.
#pragma once

#include <cstdint>
#include <vector>

#include <c10/core/Device.h>

#include "comm/communicator.h"

namespace distrnn::testing {

// Sum, average, max of rank-dependent data for float, double, int32, int64 (and
// float16/bfloat16 on NCCL) and each size, the tensors on `device`; integer average
// refused; errors for bad arguments.
void CheckAllReduce(comm::Communicator& comm, const std::vector<int64_t>& sizes,
                    c10::Device device = c10::Device(c10::kCPU));
// Broadcast from every root of float, double, int64, uint8 data of each size.
void CheckBroadcast(comm::Communicator& comm, const std::vector<int64_t>& sizes,
                    c10::Device device = c10::Device(c10::kCPU));
// Barrier, AllGather, AllGatherInt64, AllReduceScalar, BroadcastValues, BroadcastString.
void CheckSmallCollectives(comm::Communicator& comm);
// The asynchronous interface: several all-reduces in flight at once and waited for in
// order, an average, a broadcast and an all-gather started before any wait; Wait,
// IsCompleted and error(); argument errors returned before anything starts.
void CheckAsyncCollectives(comm::Communicator& comm, c10::Device device = c10::Device(c10::kCPU));

inline const std::vector<int64_t>& ConformanceSizes() {
  static const std::vector<int64_t> sizes = {0, 1, 7, int64_t{1} << 20};
  return sizes;
}

}  // namespace distrnn::testing
