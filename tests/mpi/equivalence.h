// Assertions that a data-parallel run followed the single-process reference with the same
// global batch (DESIGN.md invariant 1): per-step values to 1e-4 relative, parameters to
// 1e-5 absolute (float summation order is all that may differ).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

namespace distrnn::testing {

inline void ExpectSameSteps(const std::vector<double>& got, const std::vector<double>& want, size_t steps,
                            const std::string& what) {
  ASSERT_EQ(got.size(), steps) << what;
  ASSERT_EQ(want.size(), steps) << what;
  for (size_t i = 0; i < steps; ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-4 * std::abs(want[i])) << what << " at step " << i + 1;
  }
}

inline void ExpectSameParameters(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LT((got[i] - want[i]).abs().max().item<double>(), 1e-5) << "parameter " << i;
  }
}

}  // namespace distrnn::testing
