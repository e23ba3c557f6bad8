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

// Note [row-sparse gradients]: a [200 x 7] table whose gradient on each rank is non-zero
// only in rows of its own (some shared with other ranks, some named twice, some named
// but zero), beside two dense parameters. The row exchange must give what the dense
// all-reduce gives: bit for bit on 2 ranks (a + b either way), to rounding on 3.
struct TableGrads {
  std::vector<at::Tensor> grads;  // table, dense, dense
  at::Tensor rows;                // this rank's named rows
};

TableGrads RankTableGrads(int rank) {
  at::manual_seed(40 + rank);
  TableGrads t;
  t.rows = at::cat({at::randint(0, 40, {12}, at::kLong), at::tensor({7, 7, 199}, at::kLong)});
  at::Tensor table = at::zeros({200, 7});
  table.index_copy_(0, at::tensor({7, 199}, at::kLong), at::randn({2, 7}));
  table.index_add_(0, t.rows, at::randn({15, 7}));
  table[199].zero_();  // named, but its gradient happens to be zero
  t.grads = {table, at::randn({9}), at::randn({4, 3})};
  return t;
}

struct Reduced {
  absl::Status status;
  std::vector<at::Tensor> grads;
  int64_t rows_sent = 0;
  int64_t whole_table_steps = 0;
};

Reduced ReduceTable(MpiCommunicator& comm, bool row_sparse, const TableGrads& mine) {
  std::vector<at::Tensor> params = {at::zeros(mine.grads[0].sizes()), at::zeros({9}), at::zeros({4, 3})};
  for (size_t k = 0; k < params.size(); ++k) params[k].mutable_grad() = mine.grads[k].clone();
  comm::GradientReducer reducer(comm, params, /*bucket_bytes=*/64, false, 64,
                                row_sparse ? std::vector<size_t>{0} : std::vector<size_t>{});
  if (row_sparse) {
    // Two micro-batches' worth, overlapping.
    const int64_t n = mine.rows.numel();
    reducer.AddTouchedRows(0, mine.rows.narrow(0, 0, n / 2 + 1));
    reducer.AddTouchedRows(0, mine.rows.narrow(0, n / 2, n - n / 2));
  }
  Reduced out;
  out.status = reducer.AllReduceGradients();
  out.rows_sent = reducer.rows_sent();
  out.whole_table_steps = reducer.whole_table_steps();
  for (const at::Tensor& p : params) out.grads.push_back(p.grad().clone());
  return out;
}

TEST(GradientReducer, RowSparseExchangeEqualsTheDenseAllReduce) {
  MpiCommunicator& comm = WorldComm();
  const TableGrads mine = RankTableGrads(comm.rank());
  const Reduced sparse = ReduceTable(comm, true, mine);
  const Reduced dense = ReduceTable(comm, false, mine);
  absl::StatusOr<bool> agree = comm::ReplicasAgree(comm, sparse.grads);
  ASSERT_TRUE(sparse.status.ok()) << sparse.status;
  ASSERT_TRUE(dense.status.ok()) << dense.status;
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "ranks hold different sums";
  EXPECT_EQ(sparse.whole_table_steps, 0);
  EXPECT_EQ(sparse.rows_sent, std::get<0>(at::_unique(mine.rows)).numel()) << "this rank's distinct rows";
  // Not vacuous: rows no rank touched stay zero, and some rows got several ranks' sums.
  at::Tensor expected = at::zeros({200, 7}, at::kDouble);
  for (int r = 0; r < comm.world_size(); ++r) expected += RankTableGrads(r).grads[0].to(at::kDouble);
  expected /= comm.world_size();
  EXPECT_TRUE(at::allclose(sparse.grads[0].to(at::kDouble), expected, 1e-6, 1e-7));
  EXPECT_GT((expected != 0).any(1).sum().item<int64_t>(), 12) << "rows from more than one rank";
  for (size_t k = 0; k < dense.grads.size(); ++k) {
    const at::Tensor& got = sparse.grads[k];
    const at::Tensor& want = dense.grads[k];
    if (comm.world_size() == 2) {
      EXPECT_TRUE(at::equal(got, want)) << "param " << k << " max diff " << (got - want).abs().max().item<double>();
    } else {
      EXPECT_TRUE(at::allclose(got, want, 1e-6, 1e-7)) << "param " << k;
    }
  }
}

// Ranks whose rows nearly cover a 16-row table: moving rows would cost more than the
// ring all-reduce, so the whole table is all-reduced, the same on every rank.
TEST(GradientReducer, RowSparseFallsBackToTheWholeTableWhenRowsCostMore) {
  MpiCommunicator& comm = WorldComm();
  TableGrads mine = RankTableGrads(comm.rank());
  mine.rows = at::arange(comm.rank(), comm.rank() + 10, at::kLong);
  mine.grads[0] = at::zeros({16, 7}).index_add_(0, mine.rows, at::randn({10, 7}));
  const Reduced sparse = ReduceTable(comm, true, mine);
  const Reduced dense = ReduceTable(comm, false, mine);
  ASSERT_TRUE(sparse.status.ok()) << sparse.status;
  ASSERT_TRUE(dense.status.ok()) << dense.status;
  EXPECT_EQ(sparse.whole_table_steps, 1);
  EXPECT_EQ(sparse.rows_sent, 0);
  for (size_t k = 0; k < dense.grads.size(); ++k) {
    EXPECT_TRUE(at::equal(sparse.grads[k], dense.grads[k])) << "param " << k;
  }
}

// A rank naming a row outside the table makes every rank fail (no rank left waiting).
TEST(GradientReducer, RowSparseOutOfRangeRowFailsOnEveryRank) {
  MpiCommunicator& comm = WorldComm();
  std::vector<at::Tensor> params = {at::zeros({10, 3}), at::zeros({4})};
  comm::GradientReducer reducer(comm, params, 1 << 20, false, 1 << 20, {0});
  reducer.AddTouchedRows(0, at::tensor({1, comm.rank() == comm.world_size() - 1 ? 10 : 2}, at::kLong));
  const absl::Status status = reducer.AllReduceGradients();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("rank " + std::to_string(comm.world_size() - 1)), std::string::npos) << status;
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
