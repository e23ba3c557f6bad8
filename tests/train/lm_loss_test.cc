// The differentiated LM loss: Zaremba's convention (sum over steps, mean over batch) is
// num_steps times the per-token mean, in value and in gradient.
#include <torch/torch.h>

#include <gtest/gtest.h>

#include "model/language_model.h"
#include "train/lm_trainer.h"

namespace distrnn::train {
namespace {

model::LanguageModelConfig TinyConfig() {
  model::LanguageModelConfig c;
  c.vocab_size = 11;
  c.embedding_size = 8;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = 8;
  c.stack.hidden_size = 8;
  c.stack.num_layers = 1;
  return c;
}

TEST(LmLossTest, DivisorFollowsConvention) {
  EXPECT_DOUBLE_EQ(LossDivisor(LossReduction::kSumStepsMeanBatch, 20, 35), 20.0);
  EXPECT_DOUBLE_EQ(LossDivisor(LossReduction::kMeanTokens, 20, 35), 700.0);
  EXPECT_EQ(*ParseLossReduction("sum_steps_mean_batch"), LossReduction::kSumStepsMeanBatch);
  EXPECT_EQ(*ParseLossReduction("mean_tokens"), LossReduction::kMeanTokens);
  EXPECT_FALSE(ParseLossReduction("mean").ok());
}

TEST(LmLossTest, SumOverStepsGradientIsStepsTimesTokenMean) {
  torch::manual_seed(3);
  model::LanguageModel model(TinyConfig());
  const int64_t steps = 7, batch = 3;
  torch::Tensor inputs = torch::randint(11, {steps, batch}, torch::kLong);
  torch::Tensor targets = torch::randint(11, {steps, batch}, torch::kLong);
  auto grads_for = [&](LossReduction reduction) {
    model->zero_grad();
    auto [logits, state] = model->forward(inputs);
    torch::Tensor nll = torch::nn::functional::cross_entropy(
        logits.reshape({-1, 11}), targets.reshape({-1}),
        torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
    (nll / LossDivisor(reduction, batch, steps)).backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  auto summed = grads_for(LossReduction::kSumStepsMeanBatch);
  auto mean = grads_for(LossReduction::kMeanTokens);
  ASSERT_EQ(summed.size(), mean.size());
  for (size_t i = 0; i < summed.size(); ++i) {
    EXPECT_TRUE(torch::allclose(summed[i], mean[i] * steps, 1e-5, 1e-7)) << "parameter " << i;
  }
}

}  // namespace
}  // namespace distrnn::train
