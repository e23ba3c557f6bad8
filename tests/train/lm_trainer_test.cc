#include "train/lm_trainer.h"

#include <cmath>
#include <unordered_set>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "common/runtime.h"
#include "model/language_model.h"

namespace distrnn::train {
namespace {

model::LanguageModelConfig SmallConfig(int64_t vocab, int64_t hidden) {
  model::LanguageModelConfig c;
  c.vocab_size = vocab;
  c.embedding_size = hidden;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = hidden;
  c.stack.hidden_size = hidden;
  c.stack.num_layers = 2;
  c.init_scale = 0.1;
  return c;
}

// A token stream with a deterministic successor: 0 1 2 ... 7 0 1 2 ...
std::vector<int64_t> CyclicTokens(int64_t n, int64_t period) {
  std::vector<int64_t> tokens(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = i % period;
  return tokens;
}

TEST(EvaluateLmTest, PerplexityMatchesHandComputation) {
  torch::manual_seed(1);
  model::LanguageModel model(SmallConfig(9, 6));
  std::vector<int64_t> tokens;
  for (int i = 0; i < 23; ++i) tokens.push_back((i * 5 + 3) % 9);
  // batch 2 -> columns of 11 tokens: [0, 11) and [11, 22); token 22 dropped.
  // Windows of 4 steps: 4 + 4 + 2 (the partial window is kept in evaluation).
  auto sum = EvaluateLm(model, tokens, /*batch=*/2, /*num_steps=*/4);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->tokens, 20);

  // By hand: each column as one sequence from a zero state, which is what carrying the
  // state across windows must amount to.
  torch::NoGradGuard no_grad;
  model->eval();
  double nll = 0.0;
  for (int column = 0; column < 2; ++column) {
    torch::Tensor seq = torch::tensor(std::vector<int64_t>(tokens.begin() + column * 11,
                                                           tokens.begin() + column * 11 + 11));
    torch::Tensor inputs = seq.slice(0, 0, 10).unsqueeze(1);
    auto [logits, state] = model->forward(inputs);
    torch::Tensor log_probs = torch::log_softmax(logits.squeeze(1).to(torch::kDouble), 1);
    for (int t = 0; t < 10; ++t) nll -= log_probs[t][seq[t + 1].item<int64_t>()].item<double>();
  }
  EXPECT_NEAR(sum->nll, nll, 1e-3);
  EXPECT_NEAR(sum->perplexity(), std::exp(nll / 20.0), 1e-3);
}

TEST(LmTrainerTest, TinyModelLearnsTinyCorpus) {
  torch::manual_seed(7);
  const int64_t period = 8;
  std::vector<int64_t> train = CyclicTokens(2000, period), valid = CyclicTokens(400, period);
  model::LanguageModel model(SmallConfig(period, 32));
  const double untrained_ppl = EvaluateLm(model, valid, 4, 8)->perplexity();

  comm::LocalCommunicator comm;
  LmTrainConfig config;
  config.batch_size = 4;
  config.num_steps = 8;
  config.eval_batch_size = 4;
  config.max_epochs = 3;
  config.lr = {LrScheduleKind::kZaremba, 1.0, 0.5, 2};
  config.clip_norm = 5.0;
  config.run_dir = "";
  config.evaluate_test = false;
  LmTrainer trainer(comm, model, config, {&train, &valid, nullptr}, {});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();

  // An untrained model is near uniform (ppl ~8); the successor is deterministic.
  EXPECT_GT(untrained_ppl, 6.0);
  EXPECT_LT(result->last_valid_ppl, 1.3);
  EXPECT_EQ(result->epochs, 3);
  EXPECT_EQ(result->steps, 3 * ((500 - 1) / 8));
  EXPECT_EQ(result->epoch_lrs, (std::vector<double>{1.0, 1.0, 0.5}));
  EXPECT_LT(result->step_losses.back(), result->step_losses.front() / 10);
}

TEST(LmTrainerTest, MaxStepsCutsTrainingShort) {
  torch::manual_seed(7);
  std::vector<int64_t> train = CyclicTokens(2000, 8), valid = CyclicTokens(400, 8);
  model::LanguageModel model(SmallConfig(8, 16));
  comm::LocalCommunicator comm;
  LmTrainConfig config;
  config.batch_size = 4;
  config.num_steps = 8;
  config.max_epochs = 5;
  config.max_steps = 10;
  config.run_dir = "";
  LmTrainer trainer(comm, model, config, {&train, &valid, &valid}, {});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 10);
  EXPECT_EQ(result->epochs, 1);
  EXPECT_GT(result->test_ppl, 0.0);
}

// Number of autograd nodes reachable from `loss`.
int64_t GraphSize(const torch::Tensor& loss) {
  std::unordered_set<torch::autograd::Node*> seen;
  std::vector<torch::autograd::Node*> stack = {loss.grad_fn().get()};
  while (!stack.empty()) {
    torch::autograd::Node* node = stack.back();
    stack.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    for (const auto& edge : node->next_edges()) stack.push_back(edge.function.get());
  }
  return static_cast<int64_t>(seen.size());
}

// Truncated BPTT: the carried state is detached, so the graph of window k is as large as
// the graph of window 1 and memory does not grow with the number of windows.
TEST(LmTrainerTest, CarriedStateIsDetachedSoGraphAndMemoryStayFlat) {
  torch::manual_seed(2);
  model::LanguageModel model(SmallConfig(50, 64));
  torch::optim::SGD sgd(model->parameters(), 0.1);
  model::RecurrentState state;
  torch::Tensor inputs = torch::randint(50, {10, 8}, torch::kLong);
  std::vector<int64_t> sizes;
  double rss_after_warmup = 0.0;
  for (int window = 0; window < 400; ++window) {
    sgd.zero_grad(false);
    auto [logits, next] = model->forward(inputs, state.Detached());
    torch::Tensor loss = logits.logsumexp(-1).sum();
    if (window < 5) sizes.push_back(GraphSize(loss));
    loss.backward();
    sgd.step();
    state = next;
    if (window == 20) rss_after_warmup = common::PeakRssMiB();
  }
  for (int64_t size : sizes) EXPECT_EQ(size, sizes[0]);
  EXPECT_FALSE(state.Detached().h.requires_grad());
  EXPECT_LT(common::PeakRssMiB() - rss_after_warmup, 20.0);  // 380 more windows, no growth
}

}  // namespace
}  // namespace distrnn::train
