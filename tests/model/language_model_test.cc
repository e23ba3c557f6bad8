// LanguageModel over every cell type; tied input/output embeddings.
#include "model/language_model.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/utils.h>

namespace distrnn::model {
namespace {

const std::vector<CellType> kAllCells = {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm,
                                         CellType::kGru,     CellType::kMlstm,   CellType::kMgru};
constexpr int64_t kVocab = 11, kSize = 4, kSteps = 5, kBatch = 3;

LanguageModelConfig Config(CellType cell, bool tie, double dropout = 0.0) {
  LanguageModelConfig c;
  c.vocab_size = kVocab;
  c.embedding_size = kSize;
  c.stack.cell = cell;
  c.stack.hidden_size = kSize;
  c.stack.num_layers = 2;
  c.dropout = dropout;
  c.tie_weights = tie;
  EXPECT_TRUE(c.Validate().ok());
  return c;
}

int64_t CountParameters(const torch::nn::Module& m) {
  int64_t n = 0;
  for (const auto& p : m.parameters()) n += p.numel();
  return n;
}

double MaxDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

at::Tensor Tokens() { return torch::randint(kVocab, {kSteps, kBatch}, torch::kInt64); }

TEST(LanguageModelTest, ForwardShapesForEveryCell) {
  for (CellType cell : kAllCells) {
    for (bool tie : {false, true}) {
      SCOPED_TRACE(std::string(CellTypeName(cell)) + " tie=" + std::to_string(tie));
      LanguageModel lm(Config(cell, tie, 0.2));
      auto [logits, state] = lm->forward(Tokens());
      EXPECT_EQ(logits.sizes(), (std::vector<int64_t>{kSteps, kBatch, kVocab}));
      EXPECT_EQ(state.h.sizes(), (std::vector<int64_t>{2, kBatch, kSize}));
      EXPECT_EQ(state.c.defined(), HasCellState(cell));
      // BPTT: the next window starts from the detached state.
      auto [logits2, state2] = lm->forward(Tokens(), state.Detached());
      EXPECT_EQ(logits2.sizes(), logits.sizes());
      logits2.sum().backward();
      for (const auto& p : lm->named_parameters()) {
        ASSERT_TRUE(p.value().grad().defined()) << p.key();
      }
      // Eval disables dropout: two passes agree.
      lm->eval();
      torch::NoGradGuard no_grad;
      const at::Tensor tokens = Tokens();
      EXPECT_EQ(MaxDiff(std::get<0>(lm->forward(tokens)), std::get<0>(lm->forward(tokens))), 0.0);
    }
  }
}

TEST(LanguageModelTest, ParametersInitialisedWithinInitScale) {
  LanguageModel lm(Config(CellType::kMlstm, false));
  for (const auto& p : lm->named_parameters()) {
    EXPECT_LE(p.value().abs().max().item<double>(), 0.1 + 1e-7) << p.key();
  }
}

// --init=torch: what a PyTorch script's modules start from: the embedding N(0, 1), every
// recurrent and decoder parameter U(+-1/sqrt(fan in)), which the uniform init would not give.
TEST(LanguageModelTest, TorchInitKeepsEachModulesDefault) {
  for (CellType cell : {CellType::kLstm, CellType::kMlstm}) {
    LanguageModelConfig c = Config(cell, /*tie=*/false);
    c.vocab_size = 2000;
    c.embedding_size = c.stack.input_size = 16;
    c.stack.hidden_size = 64;
    c.init_scale = 0.01;  // ignored
    c.torch_init = true;
    torch::manual_seed(3);
    LanguageModel model(c);
    const at::Tensor embedding = model->named_parameters()["embedding.weight"];
    EXPECT_NEAR(embedding.std().item<double>(), 1.0, 0.02);
    EXPECT_NEAR(embedding.mean().item<double>(), 0.0, 0.02);
    const double bound = 1.0 / 8.0;  // 1/sqrt(64): the stack's and the decoder's fan in
    for (const auto& p : model->named_parameters()) {
      if (p.key() == "embedding.weight") continue;
      const double max = p.value().abs().max().item<double>();
      EXPECT_LE(max, bound + 1e-6) << p.key();
      if (p.value().numel() >= 256) EXPECT_GT(max, 0.9 * bound) << p.key();  // not the ignored +-0.01
    }
  }
  LanguageModelConfig tied = Config(CellType::kLstm, /*tie=*/true);
  tied.torch_init = true;
  LanguageModel model(tied);
  EXPECT_EQ(model->named_parameters()["decoder_bias"].abs().max().item<double>(), 0.0);
}

TEST(LanguageModelTest, TyingRemovesTheDecoderMatrix) {
  for (CellType cell : {CellType::kLstm, CellType::kMgru}) {
    LanguageModel untied(Config(cell, false));
    LanguageModel tied(Config(cell, true));
    EXPECT_EQ(CountParameters(*untied) - CountParameters(*tied), kVocab * kSize);
    auto params = tied->named_parameters();
    EXPECT_TRUE(params.contains("embedding.weight"));
    EXPECT_TRUE(params.contains("decoder_bias"));
    EXPECT_FALSE(params.contains("decoder.weight"));
    EXPECT_TRUE(untied->named_parameters().contains("decoder.weight"));
  }
}

TEST(LanguageModelTest, TiedDecoderReadsTheEmbeddingStorage) {
  LanguageModel lm(Config(CellType::kGru, true));
  lm->eval();
  torch::NoGradGuard no_grad;
  const at::Tensor tokens = torch::randint(kVocab - 1, {kSteps, kBatch}, torch::kInt64);  // never kVocab-1
  const at::Tensor before = std::get<0>(lm->forward(tokens));
  lm->named_parameters()["embedding.weight"][kVocab - 1].add_(1.0);  // a row the input never looks up
  const at::Tensor after = std::get<0>(lm->forward(tokens));
  EXPECT_EQ(MaxDiff(before.narrow(2, 0, kVocab - 1), after.narrow(2, 0, kVocab - 1)), 0.0);
  EXPECT_GT(MaxDiff(before.narrow(2, kVocab - 1, 1), after.narrow(2, kVocab - 1, 1)), 1e-4);
}

// The tied model equals an untied one whose decoder holds a copy of the embedding; its
// gradient is the sum of both uses; after an SGD step it still equals an untied model whose
// embedding and decoder are both the updated matrix.
TEST(LanguageModelTest, TiedGradientStepUpdatesEmbeddingAndDecoderTogether) {
  for (CellType cell : {CellType::kLstm, CellType::kMlstm}) {
    SCOPED_TRACE(CellTypeName(cell));
    LanguageModel tied(Config(cell, true));
    LanguageModel untied(Config(cell, false));
    tied->to(torch::kFloat64);
    untied->to(torch::kFloat64);
    auto sync = [&](const at::Tensor& embedding) {
      torch::NoGradGuard no_grad;
      auto src = tied->named_parameters();
      for (auto& p : untied->named_parameters()) {
        if (p.key() == "decoder.weight" || p.key() == "embedding.weight") {
          p.value().copy_(embedding);
        } else if (p.key() == "decoder.bias") {
          p.value().copy_(src["decoder_bias"]);
        } else {
          p.value().copy_(src[p.key()]);
        }
      }
    };
    at::Tensor emb = tied->named_parameters()["embedding.weight"];
    sync(emb);
    const at::Tensor tokens = Tokens();
    const at::Tensor weights = torch::randn({kSteps, kBatch, kVocab}, torch::kFloat64);
    auto loss = [&](LanguageModel& lm) { return (std::get<0>(lm->forward(tokens)) * weights).sum(); };
    at::Tensor lt = loss(tied), lu = loss(untied);
    EXPECT_LT(std::abs(lt.item<double>() - lu.item<double>()), 1e-12);
    lt.backward();
    lu.backward();
    auto up = untied->named_parameters();
    const at::Tensor expected_grad = up["embedding.weight"].grad() + up["decoder.weight"].grad();
    EXPECT_LT(MaxDiff(emb.grad(), expected_grad), 1e-12);
    EXPECT_GT(up["embedding.weight"].grad().abs().sum().item<double>(), 0.0);  // both uses contribute
    EXPECT_GT(up["decoder.weight"].grad().abs().sum().item<double>(), 0.0);
    {
      torch::NoGradGuard no_grad;
      for (auto& p : tied->parameters()) p.sub_(0.5 * p.grad());
    }
    sync(emb);
    torch::NoGradGuard no_grad;
    EXPECT_LT(std::abs(loss(tied).item<double>() - loss(untied).item<double>()), 1e-12);
    EXPECT_GT(std::abs(loss(tied).item<double>() - lt.item<double>()), 1e-6);
  }
}

TEST(LanguageModelTest, ConfigRejectsTyingWithMismatchedSizes) {
  LanguageModelConfig c = Config(CellType::kLstm, false);
  c.tie_weights = true;
  c.stack.hidden_size = 5;
  EXPECT_FALSE(c.Validate().ok());
}

}  // namespace
}  // namespace distrnn::model
