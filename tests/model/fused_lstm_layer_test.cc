// FusedLstmLayer against libtorch's LSTM (torch::lstm, one layer): values and the gradients
// of every input, in double to 1e-10 and in float (libtorch's oneDNN path) to 1e-5, relative
// to the reference's largest element where that exceeds 1.
#include "model/fused_lstm_layer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <torch/autograd.h>
#include <torch/utils.h>

namespace distrnn::model {
namespace {

struct Case {
  int64_t steps, batch, input, hidden;
};

double MaxDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

// The largest difference relative to the reference's scale (at least 1): float sums of
// hundreds of terms round at ~1e-7 of their magnitude.
double RelativeDiff(const at::Tensor& ours, const at::Tensor& ref) {
  return MaxDiff(ours, ref) / std::max(1.0, ref.abs().max().item<double>());
}

// Inputs x, h0, c0, w_ih, w_hh, b_ih, b_hh, each a leaf that requires grad; weights at
// libtorch's scale (1/sqrt(H)) times 2, so that the gates are neither linear nor saturated.
std::vector<at::Tensor> Inputs(const Case& c, at::ScalarType dtype, uint64_t seed) {
  torch::manual_seed(seed);
  const auto o = at::TensorOptions().dtype(dtype);
  const double scale = 2.0 / std::sqrt(static_cast<double>(c.hidden));
  std::vector<at::Tensor> in = {at::randn({c.steps, c.batch, c.input}, o),
                                at::randn({c.batch, c.hidden}, o),
                                at::randn({c.batch, c.hidden}, o),
                                at::rand({4 * c.hidden, c.input}, o).sub(0.5).mul(scale),
                                at::rand({4 * c.hidden, c.hidden}, o).sub(0.5).mul(scale),
                                at::rand({4 * c.hidden}, o).sub(0.5).mul(scale),
                                at::rand({4 * c.hidden}, o).sub(0.5).mul(scale)};
  for (at::Tensor& t : in) t = t.detach().requires_grad_(true);
  return in;
}

// y, h_T, c_T of libtorch's LSTM for the same inputs.
std::tuple<at::Tensor, at::Tensor, at::Tensor> Reference(const std::vector<at::Tensor>& in) {
  auto [y, h, c] = at::lstm(in[0], {in[1].unsqueeze(0), in[2].unsqueeze(0)}, {in[3], in[4], in[5], in[6]},
                            /*has_biases=*/true, /*num_layers=*/1, /*dropout=*/0.0, /*train=*/true,
                            /*bidirectional=*/false, /*batch_first=*/false);
  return {y, h.squeeze(0), c.squeeze(0)};
}

// Compares outputs and the gradients of all seven inputs for a loss that weighs y, h_T and
// c_T by fixed random tensors (`use` picks which of the three enter the loss).
void ExpectMatchesLibtorch(const Case& c, at::ScalarType dtype, double tolerance, std::vector<bool> use) {
  SCOPED_TRACE("T=" + std::to_string(c.steps) + " B=" + std::to_string(c.batch) + " I=" + std::to_string(c.input) +
               " H=" + std::to_string(c.hidden) + " uses y/h/c " + std::to_string(use[0]) + std::to_string(use[1]) +
               std::to_string(use[2]));
  const std::vector<at::Tensor> ours_in = Inputs(c, dtype, 7), ref_in = Inputs(c, dtype, 7);
  auto [y, h, cell] = FusedLstmLayer(ours_in[0], ours_in[1], ours_in[2], ours_in[3], ours_in[4], ours_in[5],
                                     ours_in[6]);
  auto [ry, rh, rc] = Reference(ref_in);
  EXPECT_LT(RelativeDiff(y, ry), tolerance);
  EXPECT_LT(RelativeDiff(h, rh), tolerance);
  EXPECT_LT(RelativeDiff(cell, rc), tolerance);

  torch::manual_seed(99);
  const at::Tensor wy = at::randn_like(ry), wh = at::randn_like(rh), wc = at::randn_like(rc);
  auto loss = [&](const at::Tensor& a, const at::Tensor& b, const at::Tensor& d) {
    at::Tensor sum = at::zeros({}, a.options());
    if (use[0]) sum = sum + (a * wy).sum();
    if (use[1]) sum = sum + (b * wh).sum();
    if (use[2]) sum = sum + (d * wc).sum();
    return sum;
  };
  loss(y, h, cell).backward();
  loss(ry, rh, rc).backward();
  const char* names[] = {"x", "h0", "c0", "w_ih", "w_hh", "b_ih", "b_hh"};
  for (size_t i = 0; i < ours_in.size(); ++i) {
    SCOPED_TRACE(names[i]);
    ASSERT_TRUE(ours_in[i].grad().defined());
    ASSERT_TRUE(ref_in[i].grad().defined());
    EXPECT_GT(ref_in[i].grad().abs().max().item<double>(), 0.0);  // the comparison means something
    EXPECT_LT(RelativeDiff(ours_in[i].grad(), ref_in[i].grad()), tolerance);
  }
}

TEST(FusedLstmLayerTest, MatchesLibtorchInDouble) {
  for (const Case& c : {Case{1, 1, 3, 4}, Case{6, 3, 5, 4}, Case{9, 2, 4, 7}}) {
    ExpectMatchesLibtorch(c, at::kDouble, 1e-10, {true, true, true});
    ExpectMatchesLibtorch(c, at::kDouble, 1e-10, {true, false, false});  // h_T, c_T unused
    ExpectMatchesLibtorch(c, at::kDouble, 1e-10, {false, true, false});  // no gradient on y
  }
}

TEST(FusedLstmLayerTest, MatchesLibtorchInFloat) {
  // PTB small's shape (libtorch's float path is oneDNN's fused layer).
  ExpectMatchesLibtorch(Case{20, 20, 200, 200}, at::kFloat, 1e-5, {true, true, true});
  ExpectMatchesLibtorch(Case{7, 4, 16, 32}, at::kFloat, 1e-5, {true, false, true});
}

TEST(FusedLstmLayerTest, OnlyRequestedGradientsAreFormed) {
  const Case c{4, 2, 3, 5};
  std::vector<at::Tensor> in = Inputs(c, at::kDouble, 3);
  for (int i : {0, 1, 2}) in[i] = in[i].detach();  // data and state: no gradient wanted
  auto [y, h, cell] = FusedLstmLayer(in[0], in[1], in[2], in[3], in[4], in[5], in[6]);
  (y.sum() + cell.sum()).backward();
  for (int i : {0, 1, 2}) EXPECT_FALSE(in[i].grad().defined()) << i;
  for (int i : {3, 4, 5, 6}) EXPECT_TRUE(in[i].grad().defined()) << i;
  // Without grad mode it is a plain forward with the same values.
  torch::NoGradGuard no_grad;
  auto [y2, h2, c2] = FusedLstmLayer(in[0], in[1], in[2], in[3], in[4], in[5], in[6]);
  EXPECT_FALSE(y2.requires_grad());
  EXPECT_EQ(MaxDiff(y2, y), 0.0);
}

TEST(FusedLstmLayerTest, RejectsBadShapes) {
  const Case c{3, 2, 3, 4};
  std::vector<at::Tensor> in = Inputs(c, at::kFloat, 1);
  EXPECT_THROW(FusedLstmLayer(in[0][0], in[1], in[2], in[3], in[4], in[5], in[6]), c10::Error);  // x not 3-d
  EXPECT_THROW(FusedLstmLayer(in[0], in[1].t(), in[2], in[3], in[4], in[5], in[6]), c10::Error);  // h0 [H, B]
  EXPECT_THROW(FusedLstmLayer(in[0], in[1], in[2], in[4], in[4], in[5], in[6]), c10::Error);      // w_ih [4H, H]
  EXPECT_THROW(FusedLstmLayer(in[0], in[1], in[2], in[3], in[4], in[5].narrow(0, 0, 4), in[6]), c10::Error);
}

}  // namespace
}  // namespace distrnn::model
