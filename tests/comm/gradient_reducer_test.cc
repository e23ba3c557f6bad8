#include "comm/gradient_reducer.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include <algorithm>
#include <set>

#include "comm/local_communicator.h"

namespace distrnn::testing {
namespace {

using comm::GradientReducer;

// Pretends to be one of `world` ranks whose peers hold the same data: a sum multiplies
// by the world size. Enough to test the reducer's copying and scaling in one process.
class MirrorCommunicator final : public comm::Communicator {
 public:
  explicit MirrorCommunicator(int world) : world_(world) {}
  int rank() const override { return 0; }
  int world_size() const override { return world_; }
  int local_rank() const override { return 0; }
  int local_size() const override { return world_; }
  const char* backend() const override { return "mirror"; }
  absl::Status AllReduce(at::Tensor& t, comm::ReduceOp op) override {
    ++all_reduces;
    if (op == comm::ReduceOp::kSum) t.mul_(world_);
    return absl::OkStatus();
  }
  absl::Status Broadcast(at::Tensor&, int) override { return absl::OkStatus(); }
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<double>> AllGather(double v) override { return std::vector<double>(world_, v); }
  // Asynchronous: the sum happens only at Wait(), and every start and wait is logged,
  // so a reducer that reads a bucket before waiting for it sees the unreduced values.
  absl::StatusOr<std::unique_ptr<comm::Work>> AllReduceAsync(at::Tensor& t, comm::ReduceOp op) override {
    ++all_reduces;
    const int id = static_cast<int>(log.size());
    log.push_back("start " + std::to_string(id));
    return std::unique_ptr<comm::Work>(std::make_unique<DeferredWork>(*this, t, op, id));
  }
  absl::StatusOr<std::unique_ptr<comm::Work>> BroadcastAsync(at::Tensor&, int) override {
    return comm::MakeCompletedWork();
  }
  absl::StatusOr<std::unique_ptr<comm::Work>> AllGatherAsync(const at::Tensor&, at::Tensor&) override {
    return comm::MakeCompletedWork(absl::UnimplementedError("not used"));
  }
  [[noreturn]] void Abort(int code) override { std::exit(code); }
  int all_reduces = 0;
  std::vector<std::string> log;

 private:
  class DeferredWork final : public comm::Work {
   public:
    DeferredWork(MirrorCommunicator& comm, at::Tensor t, comm::ReduceOp op, int id)
        : comm_(comm), t_(std::move(t)), op_(op), id_(id) {}
    absl::Status Wait() override {
      if (!done_) {
        comm_.log.push_back("wait " + std::to_string(id_));
        if (op_ == comm::ReduceOp::kSum) t_.mul_(comm_.world_);
        done_ = true;
      }
      return absl::OkStatus();
    }
    bool IsCompleted() override { return done_; }
    absl::Status error() const override { return absl::OkStatus(); }

   private:
    MirrorCommunicator& comm_;
    at::Tensor t_;
    comm::ReduceOp op_;
    int id_;
    bool done_ = false;
  };
  int world_;
};

// Sizes 12, 5, 8, 1, 100, 30 floats: 48, 20, 32, 4, 400, 120 bytes.
std::vector<at::Tensor> MakeParams() {
  return {at::zeros({3, 4}), at::zeros({5}), at::zeros({2, 2, 2}), at::zeros({1}), at::zeros({100}),
          at::zeros({5, 6})};
}

int64_t Bytes(const at::Tensor& t) { return t.numel() * static_cast<int64_t>(t.element_size()); }

void ExpectValidPlan(const GradientReducer& reducer, const std::vector<at::Tensor>& params, int64_t cap) {
  std::multiset<size_t> seen;
  const auto& plan = reducer.bucket_param_indices();
  const std::vector<int64_t> sizes = reducer.bucket_sizes_bytes();
  ASSERT_EQ(plan.size(), sizes.size());
  size_t previous_first = params.size();
  for (size_t b = 0; b < plan.size(); ++b) {
    ASSERT_FALSE(plan[b].empty());
    int64_t bytes = 0;
    for (size_t k = 0; k < plan[b].size(); ++k) {
      seen.insert(plan[b][k]);
      bytes += Bytes(params[plan[b][k]]);
      EXPECT_EQ(params[plan[b][k]].scalar_type(), params[plan[b][0]].scalar_type()) << "bucket " << b;
      if (k > 0) EXPECT_LT(plan[b][k], plan[b][k - 1]) << "reverse order inside bucket " << b;
    }
    EXPECT_EQ(bytes, sizes[b]);
    EXPECT_TRUE(bytes <= cap || plan[b].size() == 1) << "bucket " << b << " has " << bytes << " > cap " << cap;
    EXPECT_LT(plan[b][0], previous_first) << "buckets ordered by their first (last-registered) parameter";
    previous_first = plan[b][0];
  }
  EXPECT_EQ(seen.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i) EXPECT_EQ(seen.count(i), 1u) << "param " << i;
}

TEST(GradientReducerPlan, OneBucketWhenAllFit) {
  comm::LocalCommunicator comm;
  auto params = MakeParams();
  GradientReducer reducer(comm, params, GradientReducer::kDefaultBucketBytes);
  ASSERT_EQ(reducer.num_buckets(), 1u);
  EXPECT_EQ(reducer.bucket_param_indices()[0], (std::vector<size_t>{5, 4, 3, 2, 1, 0}));
  EXPECT_EQ(reducer.bucket_sizes_bytes()[0], 624);
  ExpectValidPlan(reducer, params, GradientReducer::kDefaultBucketBytes);
}

TEST(GradientReducerPlan, BucketSmallerThanOneParamGivesOneParamPerBucket) {
  comm::LocalCommunicator comm;
  auto params = MakeParams();
  GradientReducer reducer(comm, params, 1);
  ASSERT_EQ(reducer.num_buckets(), params.size());
  for (size_t b = 0; b < params.size(); ++b) {
    EXPECT_EQ(reducer.bucket_param_indices()[b], std::vector<size_t>{params.size() - 1 - b});
  }
  ExpectValidPlan(reducer, params, 1);
}

TEST(GradientReducerPlan, CapClosesBuckets) {
  comm::LocalCommunicator comm;
  auto params = MakeParams();
  // Reverse order bytes: 120, 400, 4, 32, 20, 48. Cap 128: {120} {400} {4,32,20,48=104}.
  GradientReducer reducer(comm, params, 128);
  EXPECT_EQ(reducer.bucket_param_indices(),
            (std::vector<std::vector<size_t>>{{5}, {4}, {3, 2, 1, 0}}));
  for (int64_t cap : {1, 4, 20, 50, 100, 128, 400, 500, 624, 1 << 20}) {
    GradientReducer r(comm, params, cap);
    ExpectValidPlan(r, params, cap);
  }
}

TEST(GradientReducerPlan, FirstBucketHasItsOwnSmallerCap) {
  comm::LocalCommunicator comm;
  auto params = MakeParams();
  // Reverse order bytes: 120, 400, 4, 32, 20, 48. First cap 130, then 600:
  // {120} (120 + 400 > 130), then {400, 4, 32, 20, 48 = 504}.
  GradientReducer reducer(comm, params, 600, /*async_host_buckets=*/false, /*first_bucket_bytes=*/130);
  EXPECT_EQ(reducer.bucket_param_indices(), (std::vector<std::vector<size_t>>{{5}, {4, 3, 2, 1, 0}}));
  // First cap 600 as well: all but the last parameter fit (624 > 600).
  GradientReducer same_caps(comm, params, 600, false, 600);
  EXPECT_EQ(same_caps.bucket_param_indices(), (std::vector<std::vector<size_t>>{{5, 4, 3, 2, 1}, {0}}));
  // A first cap above bucket_bytes is clipped to it.
  GradientReducer clipped(comm, params, 128, false, 1 << 20);
  EXPECT_EQ(clipped.bucket_param_indices(), (std::vector<std::vector<size_t>>{{5}, {4}, {3, 2, 1, 0}}));
  // Each dtype's first bucket gets the small cap.
  // Floats of 16 bytes, doubles of 64.
  std::vector<at::Tensor> mixed = {at::zeros({4}, at::kFloat), at::zeros({8}, at::kDouble),
                                   at::zeros({4}, at::kFloat), at::zeros({8}, at::kDouble)};
  GradientReducer by_dtype(comm, mixed, 1 << 20, false, 40);
  EXPECT_EQ(by_dtype.bucket_param_indices(), (std::vector<std::vector<size_t>>{{3}, {2, 0}, {1}}));
}

TEST(GradientReducerPlan, GroupsByDtype) {
  comm::LocalCommunicator comm;
  std::vector<at::Tensor> params = {at::zeros({4}, at::kFloat), at::zeros({4}, at::kDouble),
                                    at::zeros({4}, at::kFloat), at::zeros({4}, at::kDouble)};
  GradientReducer reducer(comm, params, 1 << 20);
  // Reverse order: 3 (double) opens bucket 0, 2 (float) opens bucket 1.
  EXPECT_EQ(reducer.bucket_param_indices(), (std::vector<std::vector<size_t>>{{3, 1}, {2, 0}}));
  ExpectValidPlan(reducer, params, 1 << 20);
}

TEST(GradientReducerPlan, SamePlanForSameParams) {
  comm::LocalCommunicator comm;
  GradientReducer a(comm, MakeParams(), 100), b(comm, MakeParams(), 100);
  EXPECT_EQ(a.bucket_param_indices(), b.bucket_param_indices());
}

TEST(GradientReducer, WorldOfOneLeavesGradientsAlone) {
  comm::LocalCommunicator comm;
  auto params = MakeParams();
  params[0].mutable_grad() = at::full({3, 4}, 2.0);
  GradientReducer reducer(comm, params, 64);
  ASSERT_TRUE(reducer.AllReduceGradients().ok());
  EXPECT_TRUE(at::equal(params[0].grad(), at::full({3, 4}, 2.0)));
  EXPECT_TRUE(at::equal(params[1].grad(), at::zeros({5}))) << "an undefined gradient becomes its (zero) view";
}

// Whether `grad` lies inside one of the reducer's buckets (FlatGradients() when all are bound).
bool IsViewIntoBuckets(const GradientReducer& reducer, const at::Tensor& grad) {
  const auto* p = static_cast<const char*>(grad.data_ptr());
  for (const at::Tensor& flat : reducer.FlatGradients()) {
    const auto* begin = static_cast<const char*>(flat.data_ptr());
    if (p >= begin && p + grad.nbytes() <= begin + flat.nbytes()) return true;
  }
  return false;
}

// Note [gradients as bucket views]: gradients set before construction are copied in and
// become views; backward accumulates into the buckets; the average appears in place.
TEST(GradientReducer, GradientsAreViewsIntoTheBuckets) {
  for (int64_t cap : {1, 64, 1 << 20}) {
    MirrorCommunicator comm(4);
    std::vector<at::Tensor> params = MakeParams();
    at::manual_seed(3);
    for (auto& p : params) p = at::randn(p.sizes()).set_requires_grad(true);
    params[1].mutable_grad() = at::full({5}, 7.0);
    GradientReducer reducer(comm, params, cap);
    ASSERT_EQ(reducer.FlatGradients().size(), reducer.num_buckets()) << "every gradient is bound: the buckets";
    EXPECT_TRUE(at::equal(params[1].grad(), at::full({5}, 7.0))) << "an existing gradient is kept";
    std::vector<const void*> where;
    for (auto& p : params) {
      ASSERT_TRUE(IsViewIntoBuckets(reducer, p.grad())) << "cap " << cap;
      where.push_back(p.grad().data_ptr());
    }
    reducer.ZeroGradients();
    at::Tensor loss = at::zeros({});
    for (auto& p : params) loss = loss + (p * p).sum();
    loss.backward();
    ASSERT_TRUE(reducer.AllReduceGradients().ok());
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_EQ(params[i].grad().data_ptr(), where[i]) << "no copy out: the gradient is still its view";
      // Mirror: every rank holds the same gradient 2p, so the average is 2p.
      EXPECT_TRUE(at::allclose(params[i].grad(), 2 * params[i].detach(), 1e-6, 1e-6)) << "cap " << cap;
    }
  }
}

// A gradient replaced by a new tensor or by none is copied into its slot (zeros if
// none) and bound again: the result is right either way.
TEST(GradientReducer, ReplacedGradientsAreCopiedInAndBoundAgain) {
  MirrorCommunicator comm(2);
  std::vector<at::Tensor> params = MakeParams();
  GradientReducer reducer(comm, params, 64);
  params[0].mutable_grad() = at::full({3, 4}, 3.0);
  params[4].mutable_grad() = at::Tensor();
  params[5].mutable_grad() = at::arange(30, at::kFloat).reshape({6, 5}).t();  // non-contiguous
  EXPECT_EQ(reducer.FlatGradients().size(), 5u) << "not all bound: the five defined gradients";
  ASSERT_TRUE(reducer.AllReduceGradients().ok());
  EXPECT_TRUE(at::equal(params[0].grad(), at::full({3, 4}, 3.0)));
  EXPECT_TRUE(at::equal(params[4].grad(), at::zeros({100})));
  EXPECT_TRUE(at::equal(params[5].grad(), at::arange(30, at::kFloat).reshape({6, 5}).t()));
  for (auto& p : params) EXPECT_TRUE(IsViewIntoBuckets(reducer, p.grad()));
  EXPECT_EQ(reducer.FlatGradients().size(), reducer.num_buckets());
  params[2].mutable_grad() = at::ones({2, 2, 2});
  reducer.ZeroGradients();
  for (auto& p : params) {
    EXPECT_TRUE(IsViewIntoBuckets(reducer, p.grad()));
    EXPECT_EQ(p.grad().abs().sum().item<float>(), 0.0f);
  }
}

// Both host paths (Note [host buckets]): blocking all-reduces (the default), and the
// asynchronous interface with every bucket started before the first is waited for.
TEST(GradientReducer, AveragesAndCopiesBackThroughBuckets) {
  for (bool async : {false, true})
  for (int64_t cap : {1, 32, 128, 1 << 20}) {
    MirrorCommunicator comm(4);
    auto params = MakeParams();
    std::vector<at::Tensor> expected;
    for (size_t i = 0; i < params.size(); ++i) {
      if (i == 2) {
        expected.push_back(at::zeros_like(params[i]));  // undefined grad counts as zeros
        continue;
      }
      params[i].mutable_grad() = at::randn(params[i].sizes());
      expected.push_back(params[i].grad().clone());
    }
    // A non-contiguous gradient is copied correctly too.
    params[5].mutable_grad() = at::randn({6, 5}).t();
    expected[5] = params[5].grad().clone();
    GradientReducer reducer(comm, params, cap, async);
    absl::Status status = reducer.AllReduceGradients();
    ASSERT_TRUE(status.ok()) << status;
    EXPECT_EQ(comm.all_reduces, static_cast<int>(reducer.num_buckets())) << "one all-reduce per bucket";
    const int n = static_cast<int>(reducer.num_buckets());
    if (async) {
      // Every bucket is started before the first is waited for, and waited for in order.
      ASSERT_EQ(comm.log.size(), static_cast<size_t>(2 * n));
      for (int b = 0; b < n; ++b) {
        EXPECT_EQ(comm.log[b], "start " + std::to_string(b));
        EXPECT_EQ(comm.log[n + b], "wait " + std::to_string(b));
      }
    } else {
      EXPECT_TRUE(comm.log.empty()) << "host buckets use the blocking all-reduce by default";
    }
    for (size_t i = 0; i < params.size(); ++i) {
      ASSERT_TRUE(params[i].grad().defined()) << "cap " << cap << " param " << i;
      EXPECT_TRUE(at::allclose(params[i].grad(), expected[i], 1e-6, 1e-7)) << "cap " << cap << " param " << i;
    }
  }
}

// Note [overlap with backward]: leaves with requires_grad, a loss using all but one
// (parameter 2 gets no gradient), two micro-batches. Armed before the second backward
// only, the hooks start buckets during that backward (none during the first), and the
// gradients afterwards are bit-identical to those of the same reducer without overlap.
std::vector<at::Tensor> Grads(bool overlap, int64_t cap, std::vector<std::string>* log_after_first,
                              std::vector<std::string>* log_after_second, size_t* started_in_backward) {
  MirrorCommunicator comm(3);
  std::vector<at::Tensor> params = MakeParams();
  at::manual_seed(11);
  for (auto& p : params) p = at::randn(p.sizes()).set_requires_grad(true);
  GradientReducer reducer(comm, params, cap, /*async_host_buckets=*/true);
  if (overlap) reducer.EnableOverlap();
  for (int micro = 0; micro < 2; ++micro) {
    if (micro == 1) reducer.ArmForBackward();
    at::Tensor loss = at::zeros({});
    for (size_t i = 0; i < params.size(); ++i) {
      if (i != 2) loss = loss + (params[i] * params[i]).sum() * static_cast<double>(micro + i + 1);
    }
    loss.backward();
    if (micro == 0 && log_after_first) *log_after_first = comm.log;
  }
  if (log_after_second) *log_after_second = comm.log;
  if (started_in_backward) *started_in_backward = reducer.buckets_started_in_backward();
  EXPECT_TRUE(reducer.AllReduceGradients().ok());
  EXPECT_EQ(comm.all_reduces, static_cast<int>(reducer.num_buckets()));
  std::vector<at::Tensor> grads;
  for (auto& p : params) grads.push_back(p.grad().clone());
  return grads;
}

TEST(GradientReducer, OverlapStartsBucketsDuringBackwardWithIdenticalResults) {
  for (int64_t cap : {1, 64, 1 << 20}) {
    std::vector<std::string> first, second;
    size_t started = 0;
    const std::vector<at::Tensor> overlapped = Grads(true, cap, &first, &second, &started);
    const std::vector<at::Tensor> plain = Grads(false, cap, nullptr, nullptr, nullptr);
    EXPECT_TRUE(first.empty()) << "not armed: the first micro-batch's hooks do nothing";
    if (cap < (1 << 20)) {
      EXPECT_FALSE(second.empty()) << "cap " << cap << ": no bucket started during backward";
    } else {
      // One bucket, holding the parameter without a gradient: it can only start once
      // AllReduceGradients() fills that slot (c10d's unused-parameter case).
      EXPECT_TRUE(second.empty());
    }
    EXPECT_EQ(second.size(), started);
    for (const std::string& entry : second) EXPECT_EQ(entry.rfind("start", 0), 0u) << entry;
    ASSERT_EQ(overlapped.size(), plain.size());
    for (size_t i = 0; i < plain.size(); ++i) {
      EXPECT_TRUE(at::equal(overlapped[i], plain[i])) << "cap " << cap << " param " << i;
    }
    EXPECT_TRUE(at::equal(overlapped[2], at::zeros_like(overlapped[2]))) << "the unused parameter averages zeros";
  }
}

// Buckets start in plan order whatever order backward produces gradients in: with the
// first-registered parameter's gradient last, nothing can start until it is ready.
TEST(GradientReducer, OverlapKeepsThePlanOrder) {
  MirrorCommunicator comm(2);
  at::Tensor a = at::ones({4}).set_requires_grad(true), b = at::ones({4}).set_requires_grad(true);
  GradientReducer reducer(comm, {a, b}, /*bucket_bytes=*/16, true);  // one parameter per bucket
  ASSERT_EQ(reducer.bucket_param_indices().front().front(), 1u) << "b (registered last) is reduced first";
  reducer.EnableOverlap();
  reducer.ArmForBackward();
  // a's gradient is computed before b's: b's bucket must start first anyway.
  at::Tensor loss = (a * 2).sum();
  loss = loss + (b * loss.detach() * 3).sum();
  loss.backward();
  ASSERT_TRUE(reducer.AllReduceGradients().ok());
  ASSERT_GE(comm.log.size(), 2u);
  EXPECT_EQ(comm.log[0], "start 0");
  EXPECT_TRUE(at::equal(a.grad(), at::full({4}, 2.0)));
}

// Note [row-sparse gradients], what one process can check: the table stays out of the
// buckets with a dense gradient of its own, clipping sees it, zeroing clears it, and a
// step that names no rows fails instead of dropping the gradient. The exchange itself is
// tested on 2 and 3 ranks (tests/mpi/comm_mpi_test.cc).
TEST(GradientReducer, RowSparseParameterKeepsItsOwnGradientOutsideTheBuckets) {
  MirrorCommunicator comm(2);
  std::vector<at::Tensor> params = MakeParams();
  GradientReducer reducer(comm, params, 64, /*async_host_buckets=*/false, 64, /*row_sparse=*/{5});
  EXPECT_TRUE(reducer.is_row_sparse(5));
  EXPECT_FALSE(reducer.is_row_sparse(0));
  for (const auto& bucket : reducer.bucket_param_indices()) {
    for (size_t index : bucket) EXPECT_NE(index, 5u) << "the table is not in a bucket";
  }
  ASSERT_TRUE(params[5].grad().defined());
  const std::vector<at::Tensor> flat = reducer.FlatGradients();
  ASSERT_EQ(flat.size(), reducer.num_buckets() + 1) << "clipping sees the buckets and the table";
  EXPECT_EQ(flat.back().data_ptr(), params[5].grad().data_ptr());

  // No rows named: an error on every rank (the missing count travels as -1), nothing summed.
  params[5].mutable_grad().fill_(1.0);
  absl::Status status = reducer.AllReduceGradients();
  EXPECT_EQ(status.code(), absl::StatusCode::kFailedPrecondition) << status;
  EXPECT_NE(status.message().find("named no touched rows"), std::string::npos) << status;
  EXPECT_EQ(reducer.rows_sent(), 0);
  // Rows named, then ZeroGradients(): the table is zeroed and the rows forgotten.
  reducer.AddTouchedRows(5, at::tensor({1, 1, 4}, at::kLong));
  reducer.ZeroGradients();
  EXPECT_EQ(params[5].grad().abs().sum().item<float>(), 0.0f);
  EXPECT_FALSE(reducer.AllReduceGradients().ok()) << "ZeroGradients() forgot the named rows";
  EXPECT_THROW(reducer.AddTouchedRows(0, at::tensor({0}, at::kLong)), c10::Error) << "param 0 is not row-sparse";
}

TEST(GradientReducer, RowSparseInAWorldOfOneIsLeftAlone) {
  comm::LocalCommunicator comm;
  std::vector<at::Tensor> params = MakeParams();
  GradientReducer reducer(comm, params, 64, false, 64, {0});
  params[0].mutable_grad().fill_(2.0);
  ASSERT_TRUE(reducer.AllReduceGradients().ok()) << "one process: no rows needed, nothing exchanged";
  EXPECT_TRUE(at::equal(params[0].grad(), at::full({3, 4}, 2.0)));
}

}  // namespace
}  // namespace distrnn::testing
