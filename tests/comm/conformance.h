// Communicator conformance checks with closed-form answers, written for any world size
// and run on LocalCommunicator (tests/comm) and MpiCommunicator under mpiexec -n 2, 3
// (tests/mpi). Every rank runs the same collectives in the same order; expectations
// are checked after the collectives (EXPECT, never ASSERT before one), so a failing
// rank cannot leave its peers waiting.
#pragma once

#include <cstdint>
#include <vector>

#include "comm/communicator.h"

namespace distrnn::testing {

// Sum, average, max of rank-dependent data for float, double, int32, int64 and each
// size; integer average refused; errors for bad arguments.
void CheckAllReduce(comm::Communicator& comm, const std::vector<int64_t>& sizes);
// Broadcast from every root of float, double, int64, uint8 data of each size.
void CheckBroadcast(comm::Communicator& comm, const std::vector<int64_t>& sizes);
// Barrier, AllGather, AllGatherInt64, AllReduceScalar, BroadcastValues, BroadcastString.
void CheckSmallCollectives(comm::Communicator& comm);

inline const std::vector<int64_t>& ConformanceSizes() {
  static const std::vector<int64_t> sizes = {0, 1, 7, int64_t{1} << 20};
  return sizes;
}

}  // namespace distrnn::testing
