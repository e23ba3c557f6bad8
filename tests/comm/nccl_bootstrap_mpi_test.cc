// NcclCommunicator's set-up over real MPI ranks (mpiexec -n 2 and -n 3) with NCCL and
// the CUDA runtime faked (nccl_fakes.h): Note [NCCL bootstrap] in nccl_communicator.h.
//  - rank 0 alone makes the unique id; every rank initialises with its bytes, its own
//    rank and the world size, non-blocking;
//  - a failure on one rank (id, init, version) ends every rank's set-up with an error,
//    no rank waiting for another, communicators that were made aborted, not destroyed;
//  - host tensors under the NCCL communicator travel over MPI (conformance suite).
// Every rank creates its communicator (a collective) before any assertion.
#include <ATen/ATen.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "comm/conformance.h"
#include "comm/nccl_communicator.h"
#include "comm/nccl_fakes.h"
#include "mpi/mpi_test_env.h"

namespace distrnn::testing {
namespace {

using comm::NcclResult;
using comm::NcclUniqueId;
using ::testing::_;
using ::testing::DoAll;
using ::testing::HasSubstr;
using ::testing::Invoke;
using ::testing::NiceMock;
using ::testing::Return;
using ::testing::SetArgPointee;

struct Fakes {
  Fakes() {
    nccl->SetUpDefaults();
    cuda->SetUpDefaults();
  }
  std::shared_ptr<NiceMock<MockNcclApi>> nccl = std::make_shared<NiceMock<MockNcclApi>>();
  std::shared_ptr<NiceMock<MockCudaApi>> cuda = std::make_shared<NiceMock<MockCudaApi>>();
};

comm::NcclOptions Quiet() {
  comm::NcclOptions o;
  o.collective_timeout_s = 60;
  o.poll_interval_s = 1000;
  o.on_fatal = [](const absl::Status& s) { ADD_FAILURE() << "unexpected fatal error: " << s; };
  return o;
}

absl::StatusOr<std::unique_ptr<comm::NcclCommunicator>> Create(Fakes& f, c10::Device device = c10::Device(c10::kCPU)) {
  auto host = comm::MpiCommunicator::Create({});
  if (!host.ok()) return host.status();
  return comm::NcclCommunicator::Create(std::move(host).value(), device, Quiet(), f.nccl, f.cuda);
}

TEST(NcclBootstrap, EveryRankInitialisesWithRankZerosIdBytes) {
  comm::MpiCommunicator& world = WorldComm();
  const int r = world.rank(), w = world.world_size();
  Fakes f;
  // Bytes no other process would make (pid, clock): a missed broadcast cannot match.
  NcclUniqueId made;
  const uint64_t salt = static_cast<uint64_t>(getpid()) * 1000003u +
                        static_cast<uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (size_t i = 0; i < NcclUniqueId::kBytes; ++i) made.internal[i] = static_cast<char>((salt >> (i % 8 * 8)) + i);
  EXPECT_CALL(*f.nccl, GetUniqueId(_)).Times(r == 0 ? 1 : 0).WillRepeatedly(
      DoAll(SetArgPointee<0>(made), Return(NcclResult::kSuccess)));
  NcclUniqueId seen;
  int seen_nranks = -1, seen_rank = -1;
  bool seen_blocking = true;
  EXPECT_CALL(*f.nccl, CommInitRankConfig(_, _, _, _, _))
      .WillOnce(Invoke([&](comm::NcclComm* c, int nranks, const NcclUniqueId& id, int rank,
                           const comm::NcclConfig& config) {
        seen = id;
        seen_nranks = nranks;
        seen_rank = rank;
        seen_blocking = config.blocking;
        *c = MockNcclApi::kComm;
        return NcclResult::kSuccess;
      }));
  auto comm = Create(f);
  // Every rank's bytes, gathered over the world communicator.
  at::Tensor mine = at::from_blob(seen.internal, {static_cast<int64_t>(NcclUniqueId::kBytes)}, at::kByte).clone();
  at::Tensor all = at::zeros({w * static_cast<int64_t>(NcclUniqueId::kBytes)}, at::kByte);
  absl::Status gathered = world.AllGatherTensor(mine, all);

  ASSERT_TRUE(comm.ok()) << comm.status();
  ASSERT_TRUE(gathered.ok()) << gathered;
  EXPECT_EQ(seen_nranks, w);
  EXPECT_EQ(seen_rank, r);
  EXPECT_FALSE(seen_blocking);
  const at::Tensor rank0 = all.narrow(0, 0, NcclUniqueId::kBytes);
  for (int q = 1; q < w; ++q) {
    EXPECT_TRUE(at::equal(all.narrow(0, q * NcclUniqueId::kBytes, NcclUniqueId::kBytes), rank0)) << "rank " << q;
  }
  if (r == 0) EXPECT_EQ(std::memcmp(seen.internal, made.internal, NcclUniqueId::kBytes), 0);
  EXPECT_EQ((*comm)->rank(), r);
  EXPECT_EQ((*comm)->world_size(), w);
}

TEST(NcclBootstrap, RankZeroIdFailureEndsEveryRank) {
  const int r = WorldComm().rank();
  Fakes f;
  if (r == 0) EXPECT_CALL(*f.nccl, GetUniqueId(_)).WillOnce(Return(NcclResult::kSystemError));
  EXPECT_CALL(*f.nccl, CommInitRankConfig(_, _, _, _, _)).Times(0);
  auto comm = Create(f);
  ASSERT_FALSE(comm.ok());
  if (r == 0) {
    EXPECT_THAT(std::string(comm.status().message()), HasSubstr("ncclGetUniqueId failed on rank 0/"));
  } else {
    EXPECT_THAT(std::string(comm.status().message()),
                HasSubstr("ncclGetUniqueId failed on rank 0 (unhandled system error); rank " + std::to_string(r)));
  }
}

TEST(NcclBootstrap, InitFailureOnOneRankEndsEveryRank) {
  const int r = WorldComm().rank(), w = WorldComm().world_size();
  const int bad = w - 1;
  Fakes f;
  if (r == bad) {
    EXPECT_CALL(*f.nccl, CommInitRankConfig(_, _, _, _, _)).WillOnce(Return(NcclResult::kSystemError));
    EXPECT_CALL(*f.nccl, CommAbort(_)).Times(0);  // nothing to abort
  } else {
    EXPECT_CALL(*f.nccl, CommAbort(MockNcclApi::kComm)).Times(1);
  }
  EXPECT_CALL(*f.nccl, CommDestroy(_)).Times(0);
  EXPECT_CALL(*f.nccl, CommFinalize(_)).Times(0);
  auto comm = Create(f);
  ASSERT_FALSE(comm.ok());
  const std::string message(comm.status().message());
  if (r == bad) {
    EXPECT_THAT(message, HasSubstr("ncclCommInitRankConfig failed on rank " + std::to_string(bad) + "/"));
  } else {
    EXPECT_THAT(message,
                HasSubstr("ncclCommInitRankConfig failed on rank " + std::to_string(bad) + " (see its message)"));
  }
}

TEST(NcclBootstrap, VersionMismatchOnOneRankStopsEveryRankBeforeNccl) {
  const int r = WorldComm().rank();
  Fakes f;
  if (r == 1) {
    EXPECT_CALL(*f.nccl, GetVersion(_)).WillRepeatedly(DoAll(SetArgPointee<0>(22809), Return(NcclResult::kSuccess)));
  }
  EXPECT_CALL(*f.nccl, GetUniqueId(_)).Times(0);
  EXPECT_CALL(*f.nccl, CommInitRankConfig(_, _, _, _, _)).Times(0);
  auto comm = Create(f);
  ASSERT_FALSE(comm.ok());
  EXPECT_EQ(comm.status().code(), absl::StatusCode::kFailedPrecondition);
  if (r == 1) {
    EXPECT_THAT(std::string(comm.status().message()), HasSubstr("the loaded libnccl is 2.28.9"));
  } else {
    EXPECT_THAT(std::string(comm.status().message()), HasSubstr("the NCCL version check failed on rank 1"));
  }
}

// With the device on CUDA, host tensors never reach the (fake) NCCL: they travel over
// the owned MPI communicator, and the conformance suite holds for them.
TEST(NcclBootstrap, HostTensorsTravelOverMpi) {
  Fakes f;
  EXPECT_CALL(*f.nccl, AllReduce(_, _, _, _, _, _, _)).Times(0);
  EXPECT_CALL(*f.nccl, Broadcast(_, _, _, _, _, _, _)).Times(0);
  EXPECT_CALL(*f.nccl, AllGather(_, _, _, _, _, _)).Times(0);
  auto comm = Create(f, c10::Device(c10::kCUDA, 0));
  ASSERT_TRUE(comm.ok()) << comm.status();
  CheckAllReduce(**comm, {0, 1, 7, 1000});
  CheckBroadcast(**comm, {0, 1, 7, 1000});
  CheckSmallCollectives(**comm);
  CheckAsyncCollectives(**comm);
}

}  // namespace
}  // namespace distrnn::testing
