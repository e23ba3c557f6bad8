// The fused decoder + cross entropy equals the unfused computation (values and every
// gradient), all rows at once or chunk by chunk, with and without a bias, and in the
// loss-only path; so does its in-place softmax gradient.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include "model/fused_linear_cross_entropy.h"
#include "model/language_model.h"

namespace distrnn::model {
namespace {

struct Inputs {
  torch::Tensor x, w, b, t;
};

Inputs MakeInputs(int64_t n, int64_t f, int64_t v, bool bias) {
  torch::manual_seed(3);
  Inputs in;
  in.x = torch::randn({n, f}, torch::requires_grad());
  in.w = (0.3 * torch::randn({v, f})).requires_grad_();
  if (bias) in.b = (0.1 * torch::randn({v})).requires_grad_();
  in.t = torch::randint(v, {n}, torch::kLong);
  return in;
}

torch::Tensor Reference(const Inputs& in) {
  torch::Tensor logits = in.b.defined() ? torch::addmm(in.b, in.x, in.w.t()) : torch::mm(in.x, in.w.t());
  return torch::nn::functional::cross_entropy(logits, in.t,
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

void ExpectClose(const torch::Tensor& a, const torch::Tensor& b, const char* what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-5 * (1.0 + b.abs().max().item<double>())) << what;
}

class FusedLossTest : public ::testing::TestWithParam<std::tuple<int64_t, bool>> {};

TEST_P(FusedLossTest, ValueAndGradientsEqualTheUnfusedLoss) {
  const auto [chunk_rows, bias] = GetParam();
  Inputs a = MakeInputs(37, 12, 29, bias);
  Inputs b = MakeInputs(37, 12, 29, bias);
  const torch::Tensor fused = FusedLinearCrossEntropy(a.x, a.w, a.b, a.t, chunk_rows);
  const torch::Tensor reference = Reference(b);
  ExpectClose(fused, reference, "loss");
  (2.5 * fused).backward();  // the incoming gradient scales every saved gradient
  (2.5 * reference).backward();
  ExpectClose(a.x.grad(), b.x.grad(), "d features");
  ExpectClose(a.w.grad(), b.w.grad(), "d weight");
  if (bias) ExpectClose(a.b.grad(), b.b.grad(), "d bias");
}

INSTANTIATE_TEST_SUITE_P(Chunks, FusedLossTest,
                         ::testing::Combine(::testing::Values<int64_t>(0, 1, 5, 37, 100, kAllRows),
                                            ::testing::Bool()));

// Chunk rows >= N (37, 100 and kAllRows above) take the all-rows path, which keeps dlogits
// for backward: a second backward through a retained graph adds the same gradients
// again, and inputs that need no gradient get none.
TEST(FusedLossTest, AllRowsPathSurvivesASecondBackwardAndSkipsUnneededGradients) {
  Inputs a = MakeInputs(15, 6, 40, true);
  Inputs b = MakeInputs(15, 6, 40, true);
  a.x = a.x.detach();
  b.x = b.x.detach();
  const torch::Tensor fused = FusedLinearCrossEntropy(a.x, a.w, a.b, a.t, kAllRows);
  const torch::Tensor reference = Reference(b);
  fused.backward({}, /*retain_graph=*/true);
  fused.backward();
  (2.0 * reference).backward();
  ExpectClose(a.w.grad(), b.w.grad(), "d weight, two backward passes");
  ExpectClose(a.b.grad(), b.b.grad(), "d bias, two backward passes");
  EXPECT_FALSE(a.x.grad().defined());
}

// The in-place softmax gradient equals softmax - onehot whatever the blocking, stays
// finite for logits far outside exp's range, and its loss is the cross entropy.
TEST(SoftmaxGradientInPlaceTest, EqualsSoftmaxMinusOneHotInEveryBlocking) {
  torch::manual_seed(4);
  const torch::Tensor logits = 30.0 * torch::randn({9, 13});
  logits[2][5] = 1000.0;
  logits[7][0] = -1000.0;
  const torch::Tensor targets = torch::randint(13, {9}, torch::kLong);
  targets[2] = 5;  // the huge logit is the target: loss ~0 for that row
  const torch::Tensor expected = torch::softmax(logits, 1) - torch::one_hot(targets, 13).to(torch::kFloat);
  const torch::Tensor expected_loss = torch::nn::functional::cross_entropy(
      logits, targets, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  for (int64_t block : {1, 4, 9, 0}) {
    SCOPED_TRACE(block);
    torch::Tensor work = logits.clone();
    torch::Tensor column_sum = torch::zeros({13});
    const torch::Tensor loss = SoftmaxGradientInPlace(work, targets, column_sum, block);
    ASSERT_TRUE(work.isfinite().all().item<bool>());
    ExpectClose(work, expected, "softmax - onehot");
    ExpectClose(column_sum, expected.sum(0), "column sums");
    ExpectClose(loss, expected_loss, "loss");
  }
}

TEST(FusedLossTest, LossOnlyPathUnderNoGradMatches) {
  Inputs in = MakeInputs(20, 6, 11, true);
  torch::Tensor reference = Reference(in).detach();
  torch::NoGradGuard no_grad;
  ExpectClose(FusedLinearCrossEntropy(in.x, in.w, in.b, in.t, 3), reference, "loss");
}

TEST(FusedLossTest, LanguageModelSummedLossEqualsItsLogitsCrossEntropy) {
  for (bool tied : {false, true}) {
    LanguageModelConfig c;
    c.vocab_size = 23;
    c.embedding_size = 10;
    c.stack.cell = CellType::kLstm;
    c.stack.input_size = 10;
    c.stack.hidden_size = 10;
    c.stack.num_layers = 2;
    c.tie_weights = tied;
    torch::manual_seed(1);
    LanguageModel fused(c);
    torch::manual_seed(1);
    LanguageModel plain(c);
    const torch::Tensor tokens = torch::randint(23, {7, 4}, torch::kLong);
    const torch::Tensor targets = torch::randint(23, {7, 4}, torch::kLong);
    auto [loss, state] = fused->SummedLoss(tokens, targets);
    auto [logits, state2] = plain->forward(tokens);
    torch::Tensor reference = torch::nn::functional::cross_entropy(
        logits.reshape({-1, 23}), targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    ExpectClose(loss, reference, tied ? "tied loss" : "loss");
    ExpectClose(state.h, state2.h, "state");
    loss.backward();
    reference.backward();
    const auto p = fused->parameters(), q = plain->parameters();
    ASSERT_EQ(p.size(), q.size());
    for (size_t i = 0; i < p.size(); ++i) ExpectClose(p[i].grad(), q[i].grad(), "parameter gradient");
  }
}

}  // namespace
}  // namespace distrnn::model
