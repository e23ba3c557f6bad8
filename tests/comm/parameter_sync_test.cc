#include "comm/parameter_sync.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>

#include "comm/local_communicator.h"

namespace distrnn::testing {
namespace {

std::vector<at::Tensor> Params() {
  at::manual_seed(7);
  return {at::randn({4, 3}), at::randn({5}, at::kDouble), at::arange(6, at::kLong)};
}

TEST(ParameterChecksum, EqualForEqualValues) {
  auto a = Params(), b = Params();
  EXPECT_EQ(comm::ParameterChecksum(a), comm::ParameterChecksum(b));
  // Layout does not matter, values do.
  std::vector<at::Tensor> c = {a[0].t().contiguous().t(), a[1], a[2]};
  EXPECT_EQ(comm::ParameterChecksum(a), comm::ParameterChecksum(c));
}

TEST(ParameterChecksum, SeesOneUlpSwapsAndShapes) {
  auto base = Params();
  const int64_t h = comm::ParameterChecksum(base);
  auto ulp = Params();
  float* p = ulp[0].data_ptr<float>() + 5;
  *p = std::nextafter(*p, 1e9f);
  EXPECT_NE(comm::ParameterChecksum(ulp), h);
  auto swapped = Params();
  std::swap(swapped[0].data_ptr<float>()[0], swapped[0].data_ptr<float>()[1]);
  EXPECT_NE(comm::ParameterChecksum(swapped), h);
  auto reshaped = Params();
  reshaped[0] = reshaped[0].reshape({3, 4});
  EXPECT_NE(comm::ParameterChecksum(reshaped), h);
  auto reordered = Params();
  std::swap(reordered[0], reordered[1]);
  EXPECT_NE(comm::ParameterChecksum(reordered), h);
}

TEST(ParameterSync, WorldOfOne) {
  comm::LocalCommunicator comm;
  auto params = Params();
  const int64_t h = comm::ParameterChecksum(params);
  EXPECT_TRUE(comm::BroadcastParameters(comm, params, 0).ok());
  EXPECT_EQ(comm::ParameterChecksum(params), h);
  EXPECT_FALSE(comm::BroadcastParameters(comm, params, 1).ok());
  absl::StatusOr<bool> agree = comm::ReplicasAgree(comm, params);
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree);
  EXPECT_TRUE(comm::CheckReplicasAgree(comm, params).ok());
}

}  // namespace
}  // namespace distrnn::testing
