// Process runtime settings that change speed or results: denormal flushing.
#include "common/runtime.h"

#include <gtest/gtest.h>

#include <cstdlib>

#include <ATen/ATen.h>

namespace distrnn::common {
namespace {

// 1e-30 * 1e-10 = 1e-40 is a denormal (below 1.2e-38); flushed, it is 0. 2M elements on 2
// threads, so both the main thread and an OpenMP worker compute part of it.
at::Tensor DenormalProducts() {
  SetComputeThreads(2);
  return (at::full({1 << 21}, 1e-30f) * 1e-10f).abs();
}

// Each case runs in a fresh process (threadsafe death tests re-execute the binary), where
// no OpenMP pool exists yet: what a training process sees at start-up.
class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

TEST_F(RuntimeTest, FlushDenormalsReachesTheIntraOpThreads) {
  EXPECT_EXIT(
      {
        if (!FlushDenormals(true)) std::exit(2);  // a CPU without DAZ: reported below
        const bool all_flushed = DenormalProducts().max().item<float>() == 0.0f;
        const bool described = DescribeComputeSettings().find("denormals flushed") != std::string::npos;
        std::exit(all_flushed && described ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(RuntimeTest, DenormalsKeptWithoutIt) {
  EXPECT_EXIT(
      {
        const bool none_flushed = DenormalProducts().min().item<float>() > 0.0f;
        const bool described = DescribeComputeSettings().find("denormals kept") != std::string::npos;
        std::exit(none_flushed && described ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace distrnn::common
