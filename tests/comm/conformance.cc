#include "comm/conformance.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <string>

#include "absl/status/status.h"

namespace distrnn::testing {
namespace {

using comm::Communicator;
using comm::ReduceOp;

// Rank r's element i: small integers, exact in every dtype, so sums are exact too.
at::Tensor RankData(int rank, int64_t n, at::ScalarType dtype) {
  at::Tensor i = at::arange(n, at::kLong);
  return ((i % 13) + 1).mul(rank + 1).add((i * 7 + rank * 3) % 5).to(dtype);
}

std::string Where(const Communicator& comm, at::ScalarType t, int64_t n) {
  return std::string("rank ") + std::to_string(comm.rank()) + "/" + std::to_string(comm.world_size()) + " dtype " +
         c10::toString(t) + " n=" + std::to_string(n);
}

// NCCL reduces 16-bit floats; the CPU backends refuse them.
bool HalfPrecision(const Communicator& comm, c10::Device device) {
  return device.is_cuda() && std::string(comm.backend()) == "nccl";
}

}  // namespace

void CheckAllReduce(Communicator& comm, const std::vector<int64_t>& sizes, c10::Device device) {
  const int w = comm.world_size();
  for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong, at::kInt}) {
    for (int64_t n : sizes) {
      // Expected values: the same formula evaluated for every rank, combined here.
      at::Tensor sum = at::zeros({n}, at::kDouble), max = at::full({n}, -1e300, at::kDouble);
      for (int r = 0; r < w; ++r) {
        at::Tensor x = RankData(r, n, at::kDouble);
        sum += x;
        max = at::maximum(max, x);
      }
      at::Tensor s = RankData(comm.rank(), n, dtype).to(device);
      absl::Status sum_status = comm.AllReduce(s, ReduceOp::kSum);
      at::Tensor m = RankData(comm.rank(), n, dtype).to(device);
      absl::Status max_status = comm.AllReduce(m, ReduceOp::kMax);
      s = s.cpu();
      m = m.cpu();
      EXPECT_TRUE(sum_status.ok()) << Where(comm, dtype, n) << ": " << sum_status;
      EXPECT_TRUE(max_status.ok()) << Where(comm, dtype, n) << ": " << max_status;
      EXPECT_TRUE(at::equal(s.to(at::kDouble), sum)) << Where(comm, dtype, n) << " sum";
      EXPECT_TRUE(at::equal(m.to(at::kDouble), max)) << Where(comm, dtype, n) << " max";
      EXPECT_EQ(s.scalar_type(), dtype);

      at::Tensor a = RankData(comm.rank(), n, dtype).to(device);
      absl::Status avg_status = comm.AllReduce(a, ReduceOp::kAverage);
      a = a.cpu();
      if (dtype == at::kFloat || dtype == at::kDouble) {
        EXPECT_TRUE(avg_status.ok()) << Where(comm, dtype, n) << ": " << avg_status;
        EXPECT_TRUE(at::allclose(a.to(at::kDouble), sum / w, 1e-7, 0)) << Where(comm, dtype, n) << " average";
      } else {
        // Refused on every rank before any communication.
        EXPECT_EQ(avg_status.code(), absl::StatusCode::kInvalidArgument) << Where(comm, dtype, n);
      }
    }
  }
  // Arguments every backend refuses (before communicating, so on every rank alike).
  at::Tensor undefined;
  EXPECT_EQ(comm.AllReduce(undefined, ReduceOp::kSum).code(), absl::StatusCode::kInvalidArgument);
  at::Tensor strided = at::ones({4, 4}, at::kFloat).to(device).t();
  EXPECT_EQ(comm.AllReduce(strided, ReduceOp::kSum).code(), absl::StatusCode::kInvalidArgument);
  for (at::ScalarType dtype : {at::kHalf, at::kBFloat16}) {
    at::Tensor half = RankData(comm.rank(), 64, dtype).to(device);
    absl::Status status = comm.AllReduce(half, ReduceOp::kSum);
    if (HalfPrecision(comm, device)) {
      at::Tensor sum = at::zeros({64}, at::kDouble);
      for (int r = 0; r < w; ++r) sum += RankData(r, 64, at::kDouble);
      EXPECT_TRUE(status.ok()) << status;
      EXPECT_TRUE(at::equal(half.cpu().to(at::kDouble), sum)) << c10::toString(dtype);  // small integers: exact
    } else {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << c10::toString(dtype);
    }
  }
}

void CheckBroadcast(Communicator& comm, const std::vector<int64_t>& sizes, c10::Device device) {
  for (int root = 0; root < comm.world_size(); ++root) {
    for (at::ScalarType dtype : {at::kFloat, at::kDouble, at::kLong, at::kByte}) {
      for (int64_t n : sizes) {
        at::Tensor t = RankData(comm.rank(), n, dtype).to(device);
        absl::Status status = comm.Broadcast(t, root);
        EXPECT_TRUE(status.ok()) << Where(comm, dtype, n) << " root " << root << ": " << status;
        EXPECT_TRUE(at::equal(t.cpu(), RankData(root, n, dtype))) << Where(comm, dtype, n) << " root " << root;
      }
    }
  }
  at::Tensor t = at::ones({3}, at::kFloat).to(device);
  EXPECT_EQ(comm.Broadcast(t, comm.world_size()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(comm.Broadcast(t, -1).code(), absl::StatusCode::kInvalidArgument);
}

void CheckSmallCollectives(Communicator& comm) {
  const int w = comm.world_size(), r = comm.rank();
  absl::Status barrier = comm.Barrier();
  absl::StatusOr<std::vector<double>> doubles = comm.AllGather(1.5 * r - 0.25);
  const int64_t big = (int64_t{1} << 62) + 12345;  // not exact as a double
  absl::StatusOr<std::vector<int64_t>> ints = comm::AllGatherInt64(comm, big + r);
  absl::StatusOr<double> sum = comm::AllReduceScalar(comm, r + 1.0, ReduceOp::kSum);
  absl::StatusOr<double> avg = comm::AllReduceScalar(comm, r + 1.0, ReduceOp::kAverage);
  absl::StatusOr<double> max = comm::AllReduceScalar(comm, -r, ReduceOp::kMax);
  std::vector<double> values = {r * 10.0, r * 20.0, 0.5};
  absl::Status values_status = comm::BroadcastValues(comm, values, w - 1);
  std::vector<std::string> strings;
  std::vector<absl::Status> string_status;
  for (int root = 0; root < w; ++root) {
    std::string s(r * 3 + 1, static_cast<char>('a' + r));  // lengths differ between ranks
    string_status.push_back(comm::BroadcastString(comm, s, root));
    strings.push_back(s);
  }
  std::string empty_from_root = r == 0 ? "" : "not empty";
  absl::Status empty_status = comm::BroadcastString(comm, empty_from_root, 0);

  EXPECT_TRUE(barrier.ok()) << barrier;
  ASSERT_TRUE(doubles.ok()) << doubles.status();
  ASSERT_TRUE(ints.ok()) << ints.status();
  ASSERT_EQ(doubles->size(), static_cast<size_t>(w));
  ASSERT_EQ(ints->size(), static_cast<size_t>(w));
  for (int i = 0; i < w; ++i) {
    EXPECT_EQ((*doubles)[i], 1.5 * i - 0.25);
    EXPECT_EQ((*ints)[i], big + i);
  }
  ASSERT_TRUE(sum.ok() && avg.ok() && max.ok());
  EXPECT_EQ(*sum, w * (w + 1) / 2.0);
  EXPECT_DOUBLE_EQ(*avg, (w + 1) / 2.0);
  EXPECT_EQ(*max, 0.0);
  EXPECT_TRUE(values_status.ok()) << values_status;
  EXPECT_EQ(values, (std::vector<double>{(w - 1) * 10.0, (w - 1) * 20.0, 0.5}));
  for (int root = 0; root < w; ++root) {
    EXPECT_TRUE(string_status[root].ok()) << string_status[root];
    EXPECT_EQ(strings[root], std::string(root * 3 + 1, static_cast<char>('a' + root)));
  }
  EXPECT_TRUE(empty_status.ok()) << empty_status;
  EXPECT_EQ(empty_from_root, "");
}

void CheckAsyncCollectives(Communicator& comm, c10::Device device) {
  const int w = comm.world_size(), r = comm.rank();
  // Everything is started before anything is waited for.
  std::vector<at::Tensor> sums;
  std::vector<absl::StatusOr<std::unique_ptr<comm::Work>>> sum_works;
  for (int k = 0; k < 4; ++k) {
    sums.push_back(RankData(r, 1000 + 7 * k, at::kFloat).to(device));
    sum_works.push_back(comm.AllReduceAsync(sums.back(), ReduceOp::kSum));
  }
  at::Tensor avg = RankData(r, 100, at::kDouble).to(device);
  auto avg_work = comm.AllReduceAsync(avg, ReduceOp::kAverage);
  at::Tensor bcast = RankData(r, 33, at::kLong).to(device);
  auto bcast_work = comm.BroadcastAsync(bcast, w - 1);
  at::Tensor in = RankData(r, 5, at::kFloat).to(device);
  at::Tensor out = at::zeros({5 * w}, at::kFloat).to(device);
  auto gather_work = comm.AllGatherAsync(in, out);
  // Refused before anything starts (the same on every rank).
  at::Tensor wrong = at::zeros({5 * w + 1}, at::kFloat).to(device);
  auto wrong_work = comm.AllGatherAsync(in, wrong);
  at::Tensor ints = at::ones({3}, at::kLong).to(device);
  auto int_avg_work = comm.AllReduceAsync(ints, ReduceOp::kAverage);

  std::vector<absl::Status> waited;
  for (auto& work : sum_works) waited.push_back(work.ok() ? (*work)->Wait() : work.status());
  for (auto* work : {&avg_work, &bcast_work, &gather_work}) {
    waited.push_back(work->ok() ? (**work)->Wait() : work->status());
  }
  at::Tensor blocking_out = at::zeros({3 * w}, at::kLong).to(device);
  absl::Status blocking = comm.AllGatherTensor(at::full({3}, r + 10, at::kLong).to(device), blocking_out);

  for (const absl::Status& s : waited) EXPECT_TRUE(s.ok()) << "rank " << r << ": " << s;
  for (auto& work : sum_works) {
    if (!work.ok()) continue;
    EXPECT_TRUE((*work)->IsCompleted());
    EXPECT_TRUE((*work)->error().ok());
    EXPECT_TRUE((*work)->Wait().ok()) << "a second Wait returns the same result";
  }
  for (int k = 0; k < 4; ++k) {
    at::Tensor expected = at::zeros({1000 + 7 * k}, at::kDouble);
    for (int q = 0; q < w; ++q) expected += RankData(q, 1000 + 7 * k, at::kDouble);
    EXPECT_TRUE(at::equal(sums[k].cpu().to(at::kDouble), expected)) << "async sum " << k << " on rank " << r;
  }
  at::Tensor mean = at::zeros({100}, at::kDouble);
  for (int q = 0; q < w; ++q) mean += RankData(q, 100, at::kDouble);
  EXPECT_TRUE(at::allclose(avg.cpu(), mean / w, 1e-12, 0)) << "async average on rank " << r;
  EXPECT_TRUE(at::equal(bcast.cpu(), RankData(w - 1, 33, at::kLong))) << "async broadcast on rank " << r;
  for (int q = 0; q < w; ++q) {
    EXPECT_TRUE(at::equal(out.cpu().narrow(0, 5 * q, 5), RankData(q, 5, at::kFloat))) << "all-gather slot " << q;
  }
  EXPECT_TRUE(blocking.ok()) << blocking;
  for (int q = 0; q < w; ++q) {
    EXPECT_TRUE(at::equal(blocking_out.cpu().narrow(0, 3 * q, 3), at::full({3}, q + 10, at::kLong)));
  }
  EXPECT_EQ(wrong_work.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(int_avg_work.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace distrnn::testing
