// Multi-rank tests of the communicator layer (mpiexec -n 2 and -n 3, see CMakeLists).
// Every test runs the same collectives on every rank, then checks (never asserts before
// a collective).
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>
#include <gtest/gtest.h>

#include <cmath>

#include "comm/conformance.h"
#include "comm/gradient_reducer.h"
#include "comm/parameter_sync.h"
#include "mpi/mpi_test_env.h"

namespace distrnn::testing {
namespace {

using comm::MpiCommunicator;

TEST(MpiCommunicator, Topology) {
  MpiCommunicator& comm = WorldComm();
  absl::StatusOr<std::vector<double>> ranks = comm.AllGather(comm.rank());
  absl::StatusOr<std::vector<double>> local_ranks = comm.AllGather(comm.local_rank());
  ASSERT_TRUE(ranks.ok() && local_ranks.ok());
  EXPECT_STREQ(comm.backend(), "mpi");
  EXPECT_FALSE(comm.host().empty());
  // CTest runs every rank on this machine: the node is the world.
  EXPECT_EQ(comm.local_size(), comm.world_size());
  EXPECT_EQ(comm.local_rank(), comm.rank());
  for (int r = 0; r < comm.world_size(); ++r) {
    EXPECT_EQ((*ranks)[r], r);
    EXPECT_EQ((*local_ranks)[r], r);
  }
}

TEST(MpiCommunicator, AllReduceConformance) { CheckAllReduce(WorldComm(), ConformanceSizes()); }
TEST(MpiCommunicator, BroadcastConformance) { CheckBroadcast(WorldComm(), ConformanceSizes()); }
TEST(MpiCommunicator, SmallCollectivesConformance) { CheckSmallCollectives(WorldComm()); }

TEST(MpiCommunicator, ChunkedTransfers) {
  // Chunks of 3 elements: 7 and 10 take several MPI calls, with a short last one.
  comm::MpiOptions tiny;
  tiny.chunk_elements = 3;
  auto comm = MpiCommunicator::Create(tiny);
  ASSERT_TRUE(comm.ok()) << comm.status();  // same outcome on every rank
  CheckAllReduce(**comm, {0, 1, 3, 7, 10});
  CheckBroadcast(**comm, {0, 1, 3, 7, 10});
  comm::MpiOptions medium;
  medium.chunk_elements = 100003;  // 1<<20 in 11 chunks, the last partial
  auto comm2 = MpiCommunicator::Create(medium);
  ASSERT_TRUE(comm2.ok()) << comm2.status();
  CheckAllReduce(**comm2, {int64_t{1} << 20});
  CheckBroadcast(**comm2, {int64_t{1} << 20});
}

TEST(MpiCommunicator, RefusesBadOptions) {
  comm::MpiOptions bad;
  bad.chunk_elements = 0;
  EXPECT_EQ(MpiCommunicator::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
  bad.chunk_elements = 1;
  bad.collective_timeout_s = -1;
  EXPECT_EQ(MpiCommunicator::Create(bad).status().code(), absl::StatusCode::kInvalidArgument);
}

// Rank r's parameters and gradients: shapes of a small RNN-like model, one double
// parameter, one gradient left undefined on rank 1 only.
std::vector<at::Tensor> ModelParams() {
  return {at::zeros({8, 4}), at::zeros({16, 4}), at::zeros({16}), at::zeros({3}, at::kDouble), at::zeros({4, 16}),
          at::zeros({7})};
}

at::Tensor RankGrad(int rank, size_t index, const at::Tensor& param) {
  at::Tensor i = at::arange(param.numel(), at::kDouble).view(param.sizes());
  return (at::sin(i * 0.37 + rank * 1.3 + index) * (rank + 1)).to(param.scalar_type());
}

bool GradDefined(int rank, size_t index) { return !(rank == 1 && index == 2); }

TEST(GradientReducer, AveragesGradientsOverRanks) {
  MpiCommunicator& comm = WorldComm();
  const int w = comm.world_size();
  for (int64_t cap : {int64_t{1}, int64_t{24}, int64_t{256}, int64_t{1000}, comm::GradientReducer::kDefaultBucketBytes}) {
    std::vector<at::Tensor> params = ModelParams();
    for (size_t k = 0; k < params.size(); ++k) {
      if (GradDefined(comm.rank(), k)) params[k].mutable_grad() = RankGrad(comm.rank(), k, params[k]);
    }
    comm::GradientReducer reducer(comm, params, cap);
    absl::Status status = reducer.AllReduceGradients();
    EXPECT_TRUE(status.ok()) << "cap " << cap << ": " << status;
    for (size_t k = 0; k < params.size(); ++k) {
      at::Tensor mean = at::zeros(params[k].sizes(), at::kDouble);
      for (int r = 0; r < w; ++r) {
        if (GradDefined(r, k)) mean += RankGrad(r, k, params[k]).to(at::kDouble);
      }
      mean /= w;
      ASSERT_TRUE(params[k].grad().defined()) << "cap " << cap << " param " << k;
      const double tol = params[k].scalar_type() == at::kDouble ? 1e-14 : 1e-6;
      EXPECT_TRUE(at::allclose(params[k].grad().to(at::kDouble), mean, tol, tol))
          << "cap " << cap << " param " << k << " max diff "
          << (params[k].grad().to(at::kDouble) - mean).abs().max().item<double>();
    }
  }
}

TEST(GradientReducer, ResultIsIdenticalOnEveryRank) {
  MpiCommunicator& comm = WorldComm();
  std::vector<at::Tensor> params = ModelParams();
  for (size_t k = 0; k < params.size(); ++k) params[k].mutable_grad() = RankGrad(comm.rank(), k, params[k]);
  comm::GradientReducer reducer(comm, params, 100);
  absl::Status status = reducer.AllReduceGradients();
  std::vector<at::Tensor> grads;
  for (const at::Tensor& p : params) grads.push_back(p.grad());
  absl::StatusOr<bool> agree = comm::ReplicasAgree(comm, grads);
  EXPECT_TRUE(status.ok()) << status;
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree);
}

std::vector<at::Tensor> RankParams(int rank) {
  at::manual_seed(100 + rank);
  std::vector<at::Tensor> params = {at::randn({5, 3}), at::randn({1000}), at::randn({2}, at::kDouble),
                                    at::randint(0, 100, {4}, at::kLong)};
  for (size_t k = 0; k < 3; ++k) params[k].requires_grad_(true);
  return params;
}

TEST(ParameterSync, BroadcastMakesEveryRankEqualToRoot) {
  MpiCommunicator& comm = WorldComm();
  for (int root : {0, comm.world_size() - 1}) {
    std::vector<at::Tensor> params = RankParams(comm.rank());
    std::vector<void*> storage;
    for (const at::Tensor& p : params) storage.push_back(p.data_ptr());
    absl::StatusOr<bool> before = comm::ReplicasAgree(comm, params);
    absl::Status status = comm::BroadcastParameters(comm, params, root);
    absl::StatusOr<bool> after = comm::ReplicasAgree(comm, params);
    EXPECT_TRUE(status.ok()) << status;
    ASSERT_TRUE(before.ok() && after.ok());
    EXPECT_FALSE(*before);
    EXPECT_TRUE(*after);
    std::vector<at::Tensor> expected = RankParams(root);
    for (size_t k = 0; k < params.size(); ++k) {
      EXPECT_TRUE(at::equal(params[k].detach(), expected[k].detach())) << "root " << root << " param " << k;
      EXPECT_EQ(params[k].data_ptr(), storage[k]) << "updated in place";
      EXPECT_EQ(params[k].requires_grad(), k < 3);
    }
  }
}

TEST(ParameterSync, ReplicasAgreeNamesThePerturbedRank) {
  MpiCommunicator& comm = WorldComm();
  const int bad = comm.world_size() - 1;
  std::vector<at::Tensor> params = RankParams(0);
  if (comm.rank() == bad) {
    c10::NoGradGuard no_grad;
    float* x = params[1].data_ptr<float>() + 321;
    *x = std::nextafter(*x, 1e9f);  // one ulp
  }
  std::string detail;
  absl::StatusOr<bool> agree = comm::ReplicasAgree(comm, params, &detail);
  absl::Status check = comm::CheckReplicasAgree(comm, params);
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_FALSE(*agree);
  EXPECT_NE(detail.find("rank " + std::to_string(bad) + " of"), std::string::npos) << detail;
  EXPECT_EQ(check.code(), absl::StatusCode::kInternal);
  EXPECT_NE(check.message().find("rank " + std::to_string(bad)), absl::string_view::npos) << check;
}

}  // namespace
}  // namespace distrnn::testing
