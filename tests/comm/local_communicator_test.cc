// The conformance suite on LocalCommunicator (a world of one); the same suite runs
// under mpiexec in tests/mpi.
#include <gtest/gtest.h>

#include "comm/conformance.h"
#include "comm/local_communicator.h"

namespace distrnn::testing {
namespace {

TEST(LocalCommunicator, Identity) {
  comm::LocalCommunicator comm;
  EXPECT_EQ(comm.rank(), 0);
  EXPECT_EQ(comm.world_size(), 1);
  EXPECT_EQ(comm.local_rank(), 0);
  EXPECT_EQ(comm.local_size(), 1);
  EXPECT_STREQ(comm.backend(), "local");
  EXPECT_TRUE(comm.is_root());
}

TEST(LocalCommunicator, AllReduceConformance) {
  comm::LocalCommunicator comm;
  CheckAllReduce(comm, ConformanceSizes());
}

TEST(LocalCommunicator, BroadcastConformance) {
  comm::LocalCommunicator comm;
  CheckBroadcast(comm, ConformanceSizes());
}

TEST(LocalCommunicator, SmallCollectivesConformance) {
  comm::LocalCommunicator comm;
  CheckSmallCollectives(comm);
}

}  // namespace
}  // namespace distrnn::testing
