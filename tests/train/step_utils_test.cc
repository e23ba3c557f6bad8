#include "train/step_utils.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/nn/utils/clip_grad.h>

#include <cmath>
#include <limits>
#include <vector>

#include "comm/gradient_reducer.h"
#include "comm/local_communicator.h"

namespace distrnn::testing {
namespace {

// Parameters with random gradients (the same for the same seed).
std::vector<at::Tensor> ParamsWithGrads(double scale) {
  at::manual_seed(5);
  std::vector<at::Tensor> params = {at::zeros({40, 30}), at::zeros({30}), at::zeros({7, 3, 2}), at::zeros({1})};
  for (auto& p : params) p.mutable_grad() = at::randn(p.sizes()) * scale;
  return params;
}

// Clipping the reducer's flat buckets does what libtorch's clip_grad_value_ +
// clip_grad_norm_ do to the per-parameter gradients: same norm, same gradients.
TEST(ClipGradients, OverFlatBucketsMatchesLibtorchPerParameter) {
  for (double scale : {0.01, 10.0})
  for (double clip_value : {0.0, 0.5})
  for (double clip_norm : {0.0, 5.0}) {
    std::vector<at::Tensor> expected = ParamsWithGrads(scale);
    if (clip_value > 0) torch::nn::utils::clip_grad_value_(expected, clip_value);
    const double expected_norm =
        torch::nn::utils::clip_grad_norm_(expected, clip_norm > 0 ? clip_norm : std::numeric_limits<double>::infinity());

    comm::LocalCommunicator comm;
    std::vector<at::Tensor> params = ParamsWithGrads(scale);
    comm::GradientReducer reducer(comm, params, /*bucket_bytes=*/4096);  // several buckets
    ASSERT_GT(reducer.num_buckets(), 1u);
    const at::Tensor norm = train::ClipGradients(reducer.FlatGradients(), clip_value, clip_norm);
    EXPECT_EQ(norm.dim(), 0);
    EXPECT_NEAR(norm.item<double>(), expected_norm, 1e-5 * expected_norm)
        << "scale " << scale << " clip_value " << clip_value << " clip_norm " << clip_norm;
    for (size_t i = 0; i < params.size(); ++i) {
      EXPECT_TRUE(at::allclose(params[i].grad(), expected[i].grad(), 1e-5, 1e-7))
          << "param " << i << " scale " << scale << " clip_value " << clip_value << " clip_norm " << clip_norm;
    }
    if (clip_norm > 0 && expected_norm > clip_norm) {
      double after = 0;
      for (auto& p : params) after += p.grad().pow(2).sum().item<double>();
      EXPECT_NEAR(std::sqrt(after), clip_norm, 1e-4) << "clipped to the cap";
    }
  }
}

TEST(ClipGradients, NoGradientsGiveNormZero) {
  EXPECT_EQ(train::ClipGradients({}, 1.0, 5.0).item<double>(), 0.0);
}

}  // namespace
}  // namespace distrnn::testing
