// Classifier: padded batches give what each sequence gives alone, for packed built-in cells
// and for our cells; pretrained rows; config checks.
#include "model/classifier.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/utils.h>

namespace distrnn::model {
namespace {

constexpr int64_t kVocab = 20, kPad = 1;

ClassifierConfig Config(CellType cell, bool bidir, int64_t layers, int64_t classes) {
  ClassifierConfig c;
  c.vocab_size = kVocab;
  c.embedding_size = 6;
  c.stack.cell = cell;
  c.stack.hidden_size = 5;
  c.stack.num_layers = layers;
  c.stack.bidirectional = bidir;
  c.stack.dropout = 0.3;
  c.dropout = 0.4;
  c.num_classes = classes;
  c.padding_idx = kPad;
  return c;
}

double MaxDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

struct Case {
  const char* name;
  CellType cell;
  bool bidir;
  int64_t layers;
  int64_t classes;
};

TEST(ClassifierTest, PaddedBatchEqualsEachSequenceAlone) {
  const std::vector<Case> cases = {
      {"lstm", CellType::kLstm, false, 1, 1},     {"lstm2", CellType::kLstm, false, 2, 3},
      {"gru", CellType::kGru, false, 2, 1},       {"bilstm", CellType::kLstm, true, 2, 1},
      {"bigru", CellType::kGru, true, 1, 2},      {"rnn", CellType::kRnnTanh, false, 1, 1},
      {"mlstm", CellType::kMlstm, false, 2, 1},   {"mgru", CellType::kMgru, false, 1, 3},
      {"bimlstm", CellType::kMlstm, true, 2, 1},  {"bimgru", CellType::kMgru, true, 2, 2},
  };
  const std::vector<int64_t> lengths = {3, 8, 1, 6, 8};
  const int64_t steps = 8, batch = 5;
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    torch::manual_seed(3);
    Classifier model(Config(c.cell, c.bidir, c.layers, c.classes));
    model->to(torch::kFloat64);
    model->eval();
    torch::NoGradGuard no_grad;
    at::Tensor tokens = torch::randint(2, kVocab, {steps, batch}, torch::kInt64);
    for (int64_t b = 0; b < batch; ++b) tokens.narrow(0, lengths[b], steps - lengths[b]).select(1, b).fill_(kPad);
    const at::Tensor len = torch::tensor(lengths, torch::kInt64);
    const at::Tensor logits = model->forward(tokens, len);
    ASSERT_EQ(logits.sizes(), (std::vector<int64_t>{batch, c.classes}));
    EXPECT_EQ(model->Features(tokens, len).size(1), (c.bidir ? 2 : 1) * 5);
    for (int64_t b = 0; b < batch; ++b) {
      const at::Tensor alone = tokens.narrow(0, 0, lengths[b]).narrow(1, b, 1);
      const at::Tensor expected = model->forward(alone, torch::tensor({lengths[b]}, torch::kInt64));
      EXPECT_LT(MaxDiff(logits[b], expected[0]), 1e-10) << "sequence " << b;
    }
    // Whatever sits in the padded positions does not matter.
    at::Tensor noisy = tokens.clone();
    for (int64_t b = 0; b < batch; ++b) {
      noisy.narrow(0, lengths[b], steps - lengths[b]).select(1, b).random_(2, kVocab);
    }
    EXPECT_LT(MaxDiff(model->forward(noisy, len), logits), 1e-10);
  }
}

TEST(ClassifierTest, TrainsThroughBackward) {
  for (CellType cell : {CellType::kLstm, CellType::kMgru}) {
    Classifier model(Config(cell, true, 2, 1));
    model->train();
    const at::Tensor tokens = torch::randint(2, kVocab, {6, 3}, torch::kInt64);
    const at::Tensor logits = model->forward(tokens, torch::tensor({6, 2, 4}, torch::kInt64));
    logits.sum().backward();
    for (const auto& p : model->named_parameters()) ASSERT_TRUE(p.value().grad().defined()) << p.key();
    // The padding row gets no gradient.
    EXPECT_EQ(model->embedding()->weight.grad()[kPad].abs().sum().item<double>(), 0.0);
    EXPECT_GT(model->embedding()->weight.grad().abs().sum().item<double>(), 0.0);
  }
}

TEST(ClassifierTest, PaddingRowStartsAtZero) {
  Classifier model(Config(CellType::kGru, false, 1, 1));
  EXPECT_EQ(model->embedding()->weight[kPad].abs().sum().item<double>(), 0.0);
}

TEST(ClassifierTest, LoadPretrainedCopiesOnlyFoundRows) {
  ClassifierConfig config = Config(CellType::kLstm, false, 1, 1);
  config.vocab_size = 5;
  config.embedding_size = 3;
  Classifier model(config);
  const at::Tensor before = model->embedding()->weight.detach().clone();
  std::vector<float> matrix(15);
  for (int i = 0; i < 15; ++i) matrix[i] = 100.0f + i;
  const std::vector<bool> found = {false, true, false, true, true};
  EXPECT_EQ(model->LoadPretrained(matrix, found), 3);
  const at::Tensor after = model->embedding()->weight.detach();
  for (int64_t v = 0; v < 5; ++v) {
    for (int64_t e = 0; e < 3; ++e) {
      const float want = found[v] ? matrix[v * 3 + e] : before[v][e].item<float>();
      EXPECT_EQ(after[v][e].item<float>(), want) << "row " << v << " col " << e;
    }
  }
  EXPECT_TRUE(model->embedding()->weight.requires_grad());
  EXPECT_EQ(model->LoadPretrained(matrix, std::vector<bool>(5, false)), 0);
  EXPECT_THROW(model->LoadPretrained(std::vector<float>(14), found), c10::Error);
  EXPECT_THROW(model->LoadPretrained(matrix, std::vector<bool>(4, true)), c10::Error);
}

TEST(ClassifierTest, ConfigValidation) {
  ClassifierConfig ok = Config(CellType::kLstm, true, 2, 1);
  EXPECT_TRUE(ok.Validate().ok()) << ok.Validate();
  ClassifierConfig c = ok;
  c.padding_idx = kVocab;
  EXPECT_FALSE(c.Validate().ok());
  c = ok;
  c.num_classes = 0;
  EXPECT_FALSE(c.Validate().ok());
  c = ok;
  c.dropout = 1.0;
  EXPECT_FALSE(c.Validate().ok());
  c = ok;
  c.stack.hidden_size = 0;
  EXPECT_FALSE(c.Validate().ok());
  c = ok;
  c.vocab_size = 0;
  EXPECT_FALSE(c.Validate().ok());
  EXPECT_THROW(Classifier{c}, c10::Error);
}

TEST(ClassifierTest, RejectsMismatchedLengths) {
  Classifier model(Config(CellType::kMlstm, false, 1, 1));
  const at::Tensor tokens = torch::randint(2, kVocab, {4, 2}, torch::kInt64);
  EXPECT_THROW(model->forward(tokens, torch::tensor({4}, torch::kInt64)), c10::Error);
  EXPECT_THROW(model->forward(tokens, torch::tensor({5, 1}, torch::kInt64)), c10::Error);
}

}  // namespace
}  // namespace distrnn::model
