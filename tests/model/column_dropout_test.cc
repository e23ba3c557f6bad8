// Column-keyed dropout: a rank holding columns [a, b) of a global batch, with first_column = a,
// gets exactly the masks of one process holding all columns, so its outputs equal those
// columns of the full run and the ranks' gradients sum to the full gradient. Also: the
// per-layer built-in stack layout that makes inter-layer dropout ours is a faithful stack.
#include "model/column_dropout.h"

#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "model/classifier.h"
#include "model/language_model.h"
#include "model/recurrent_stack.h"
#include "stack_test_util.h"

namespace distrnn::model {
namespace {

double MaxDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

at::Tensor Mask(at::IntArrayRef shape, double p, const DropoutKey& key, int64_t site, int64_t batch_dim) {
  return ColumnDropout(torch::ones(shape, torch::kFloat64), p, key, site, batch_dim);
}

TEST(ColumnDropoutTest, SliceOfColumnsEqualsThoseColumnsOfTheFullBatch) {
  for (int64_t batch_dim : {0, 1, 2}) {
    SCOPED_TRACE("batch_dim=" + std::to_string(batch_dim));
    std::vector<int64_t> shape = {4, 5, 3};
    shape[batch_dim] = 6;
    const at::Tensor x = torch::randn(shape, torch::kFloat64);
    const at::Tensor full = ColumnDropout(x, 0.5, DropoutKey{7, 3, 0}, 2, batch_dim);
    for (auto [a, n] : std::vector<std::pair<int64_t, int64_t>>{{0, 2}, {2, 3}, {5, 1}}) {
      const at::Tensor part = ColumnDropout(x.narrow(batch_dim, a, n), 0.5, DropoutKey{7, 3, a}, 2, batch_dim);
      EXPECT_EQ(MaxDiff(part, full.narrow(batch_dim, a, n)), 0.0) << "a=" << a;
    }
    // Control: without the column offset the slice gets other masks.
    const at::Tensor unshifted = ColumnDropout(x.narrow(batch_dim, 2, 3), 0.5, DropoutKey{7, 3, 0}, 2, batch_dim);
    EXPECT_GT(MaxDiff(unshifted, full.narrow(batch_dim, 2, 3)), 0.0);
  }
}

TEST(ColumnDropoutTest, MaskIsAFunctionOfSeedStepSiteAndColumnOnly) {
  const std::vector<int64_t> shape = {8, 4, 16};
  torch::manual_seed(1);
  const at::Tensor base = Mask(shape, 0.5, DropoutKey{1, 10, 0}, 3, 1);
  torch::manual_seed(2);  // torch's global RNG plays no part
  EXPECT_EQ(MaxDiff(base, Mask(shape, 0.5, DropoutKey{1, 10, 0}, 3, 1)), 0.0);
  EXPECT_GT(MaxDiff(base, Mask(shape, 0.5, DropoutKey{1, 11, 0}, 3, 1)), 0.0);  // step
  EXPECT_GT(MaxDiff(base, Mask(shape, 0.5, DropoutKey{1, 10, 0}, 4, 1)), 0.0);  // site
  EXPECT_GT(MaxDiff(base, Mask(shape, 0.5, DropoutKey{2, 10, 0}, 3, 1)), 0.0);  // seed
  EXPECT_GT(MaxDiff(base.select(1, 0), base.select(1, 1)), 0.0);                // column
}

TEST(ColumnDropoutTest, ShorterSequenceGetsAPrefixOfTheMask) {
  // The property rests on CPU uniform_ drawing serially in row-major order.
  at::Generator long_gen = at::make_generator<at::CPUGeneratorImpl>(123);
  at::Generator short_gen = at::make_generator<at::CPUGeneratorImpl>(123);
  const at::Tensor long_draws = torch::empty({9, 70}, torch::kFloat32).uniform_(0.0, 1.0, long_gen);
  const at::Tensor short_draws = torch::empty({5, 70}, torch::kFloat32).uniform_(0.0, 1.0, short_gen);
  EXPECT_EQ(MaxDiff(short_draws, long_draws.narrow(0, 0, 5)), 0.0);
  // And so for time-major [T, B, F] masks.
  const DropoutKey key{5, 2, 3};
  const at::Tensor long_mask = Mask({9, 4, 7}, 0.5, key, 0, 1);
  EXPECT_EQ(MaxDiff(Mask({5, 4, 7}, 0.5, key, 0, 1), long_mask.narrow(0, 0, 5)), 0.0);
  EXPECT_GT(MaxDiff(long_mask.narrow(0, 0, 5), long_mask.narrow(0, 4, 5)), 0.0);  // not one row repeated
}

TEST(ColumnDropoutTest, KeepsAboutOneMinusPAndScalesKeptValues) {
  for (double p : {0.2, 0.5, 0.65}) {
    SCOPED_TRACE("p=" + std::to_string(p));
    const at::Tensor m = ColumnDropout(torch::ones({100, 40, 50}), p, DropoutKey{9, 1, 0}, 0, 1);
    const at::Tensor kept = m.ne(0);
    // 200k draws: the standard deviation of the fraction is below 0.0012.
    EXPECT_NEAR(kept.to(torch::kFloat64).mean().item<double>(), 1.0 - p, 0.01);
    EXPECT_LT((m.masked_select(kept) - 1.0 / (1.0 - p)).abs().max().item<double>(), 1e-6);
  }
}

TEST(ColumnDropoutTest, GradientIsTheMask) {
  const DropoutKey key{4, 8, 2};
  const at::Tensor x = torch::randn({6, 5, 4}, torch::kFloat64).requires_grad_();
  ColumnDropout(x, 0.4, key, 1, 1).sum().backward();
  EXPECT_EQ(MaxDiff(x.grad(), Mask({6, 5, 4}, 0.4, key, 1, 1)), 0.0);
}

TEST(ColumnDropoutTest, ZeroIsIdentityAndProbabilityOutsideRangeThrows) {
  const at::Tensor x = torch::randn({3, 2});
  EXPECT_TRUE(ColumnDropout(x, 0.0, {}, 0, 0).is_same(x));
  EXPECT_THROW(ColumnDropout(x, 1.0, {}, 0, 0), c10::Error);
  EXPECT_THROW(ColumnDropout(x, -0.1, {}, 0, 0), c10::Error);
}

TEST(ColumnDropoutTest, SiteDropoutActsOnlyInTraining) {
  const at::Tensor x = torch::randn({6, 5, 4});
  const DropoutKey key{3, 1, 0};
  EXPECT_TRUE(SiteDropout(x, 0.5, /*training=*/false, key, 0, 1).is_same(x));
  EXPECT_TRUE(SiteDropout(x, 0.0, /*training=*/true, key, 0, 1).is_same(x));
  EXPECT_EQ(MaxDiff(SiteDropout(x, 0.5, true, key, 0, 1), ColumnDropout(x, 0.5, key, 0, 1)), 0.0);
  // No key: torch's global RNG, a fresh mask each call.
  EXPECT_GT(MaxDiff(SiteDropout(x, 0.5, true, std::nullopt, 0, 1), SiteDropout(x, 0.5, true, std::nullopt, 0, 1)),
            0.0);
}

// --- Models: one process on all columns vs "ranks" on column slices -----------------------

using Slices = std::vector<std::pair<int64_t, int64_t>>;  // (first column, count)

std::map<std::string, at::Tensor> TakeGradients(torch::nn::Module& model) {
  std::map<std::string, at::Tensor> grads;
  for (const auto& p : model.named_parameters()) {
    grads[p.key()] = p.value().grad().defined() ? p.value().grad().clone() : torch::zeros_like(p.value());
  }
  model.zero_grad();
  return grads;
}

// run(a, n): training forward on columns [a, a+n) with first_column = a; returns the output
// with its batch axis at `batch_dim`. Loss = sum(output * fixed random weights).
void ExpectSlicesReproduceFullBatch(torch::nn::Module& model, const std::function<at::Tensor(int64_t, int64_t)>& run,
                                    int64_t columns, int64_t batch_dim, const Slices& slices) {
  model.train();
  model.zero_grad();
  const at::Tensor full = run(0, columns);
  const at::Tensor weights = torch::randn_like(full);
  (full * weights).sum().backward();
  const auto full_grads = TakeGradients(model);
  for (auto [a, n] : slices) {
    const at::Tensor part = run(a, n);
    EXPECT_LT(MaxDiff(part, full.narrow(batch_dim, a, n)), 1e-6) << "columns [" << a << ", " << a + n << ")";
    (part * weights.narrow(batch_dim, a, n)).sum().backward();
  }
  const auto summed = TakeGradients(model);
  for (const auto& [name, grad] : full_grads) {
    EXPECT_GT(grad.abs().max().item<double>(), 0.0) << name;
    EXPECT_LT(MaxDiff(summed.at(name), grad), 1e-5) << name;
  }
  // Control: the masks are really drawn (training differs from eval).
  model.eval();
  torch::NoGradGuard no_grad;
  EXPECT_GT(MaxDiff(run(0, columns), full), 1e-6);
  model.train();
}

TEST(ColumnDropoutModelTest, LanguageModelSlicesReproduceTheFullBatch) {
  constexpr int64_t kVocab = 13, kSteps = 5, kColumns = 6;
  for (CellType cell : {CellType::kLstm, CellType::kMlstm, CellType::kGru}) {
    SCOPED_TRACE(CellTypeName(cell));
    LanguageModelConfig c;
    c.vocab_size = kVocab;
    c.embedding_size = 6;
    c.stack.cell = cell;
    c.stack.hidden_size = 5;
    c.stack.num_layers = 2;
    c.stack.dropout = 0.5;
    c.dropout = 0.5;
    ASSERT_TRUE(c.Validate().ok());
    torch::manual_seed(11);
    LanguageModel lm(c);
    lm->to(torch::kFloat64);
    const at::Tensor tokens = torch::randint(kVocab, {kSteps, kColumns}, torch::kInt64);
    auto run = [&](int64_t a, int64_t n) {
      lm->SetDropoutKey(DropoutKey{42, 17, a});
      return std::get<0>(lm->forward(tokens.narrow(1, a, n)));
    };
    ExpectSlicesReproduceFullBatch(*lm, run, kColumns, /*batch_dim=*/1, {{0, 2}, {2, 2}, {4, 2}});
    // Control: slices without the column offset disagree with the full batch.
    lm->SetDropoutKey(DropoutKey{42, 17, 0});
    torch::NoGradGuard no_grad;
    const at::Tensor full = std::get<0>(lm->forward(tokens));
    EXPECT_GT(MaxDiff(std::get<0>(lm->forward(tokens.narrow(1, 2, 2))), full.narrow(1, 2, 2)), 1e-6);
  }
}

TEST(ColumnDropoutModelTest, ClassifierSlicesPaddedToTheirOwnLengthReproduceTheFullBatch) {
  constexpr int64_t kVocab = 20, kPad = 1, kColumns = 6;
  const std::vector<int64_t> lengths = {3, 9, 2, 5, 4, 7};  // slice maxima 9, 5, 7
  const int64_t steps = 9;
  struct Case {
    CellType cell;
    bool bidir;
  };
  for (const Case& k : {Case{CellType::kLstm, true}, Case{CellType::kMgru, false}}) {
    SCOPED_TRACE(CellTypeName(k.cell));
    ClassifierConfig c;
    c.vocab_size = kVocab;
    c.embedding_size = 6;
    c.stack.cell = k.cell;
    c.stack.hidden_size = 5;
    c.stack.num_layers = 2;
    c.stack.bidirectional = k.bidir;
    c.stack.dropout = 0.5;
    c.dropout = 0.5;
    c.num_classes = 3;
    c.padding_idx = kPad;
    torch::manual_seed(5);
    Classifier model(c);
    model->to(torch::kFloat64);
    if (k.cell == CellType::kLstm) EXPECT_TRUE(model->stack()->per_layer());
    at::Tensor tokens = torch::randint(2, kVocab, {steps, kColumns}, torch::kInt64);
    const at::Tensor len = torch::tensor(lengths, torch::kInt64);
    tokens.masked_fill_(torch::arange(steps).unsqueeze(1) >= len.unsqueeze(0), kPad);
    auto run = [&](int64_t a, int64_t n) {
      const at::Tensor slice_len = len.narrow(0, a, n);
      const int64_t slice_steps = slice_len.max().item<int64_t>();
      model->SetDropoutKey(DropoutKey{8, 2, a});
      return model->forward(tokens.narrow(0, 0, slice_steps).narrow(1, a, n), slice_len);
    };
    ExpectSlicesReproduceFullBatch(*model, run, kColumns, /*batch_dim=*/0, {{0, 2}, {2, 2}, {4, 2}});
  }
}

// --- The per-layer built-in layout ----------------------------------------------------------

StackConfig Stack(CellType cell, bool bidir, double dropout) {
  StackConfig c;
  c.cell = cell;
  c.input_size = 3;
  c.hidden_size = 4;
  c.num_layers = 3;
  c.bidirectional = bidir;
  c.dropout = dropout;
  return c;
}

TEST(RecurrentStackLayoutTest, PerLayerStackInEvalEqualsFusedStack) {
  const std::vector<int64_t> lengths = {4, 7, 1, 5};
  for (CellType cell : {CellType::kLstm, CellType::kGru, CellType::kRnnTanh}) {
    for (bool bidir : {false, true}) {
      SCOPED_TRACE(std::string(CellTypeName(cell)) + " bidir=" + std::to_string(bidir));
      RecurrentStack split(Stack(cell, bidir, 0.5));
      RecurrentStack fused(Stack(cell, bidir, 0.0));
      ASSERT_TRUE(split->per_layer());
      ASSERT_FALSE(fused->per_layer());
      EXPECT_TRUE(split->named_parameters().contains("layers.2.weight_hh_l0"));
      CopyStackParameters(*fused, *split);
      split->to(torch::kFloat64);
      fused->to(torch::kFloat64);
      split->eval();
      fused->eval();
      torch::NoGradGuard no_grad;
      const at::Tensor x = torch::randn({7, 4, 3}, torch::kFloat64);
      RecurrentState start = fused->InitialState(4, torch::dtype(torch::kFloat64));
      start.h.normal_();
      if (start.c.defined()) start.c.normal_();
      auto [out_s, state_s] = split->forward(x, start);
      auto [out_f, state_f] = fused->forward(x, start);
      EXPECT_LT(MaxDiff(out_s, out_f), 1e-12);
      EXPECT_EQ(state_s.h.sizes(), state_f.h.sizes());
      EXPECT_LT(MaxDiff(state_s.h, state_f.h), 1e-12);
      if (state_f.c.defined()) EXPECT_LT(MaxDiff(state_s.c, state_f.c), 1e-12);
      const at::Tensor len = torch::tensor(lengths, torch::kInt64);
      auto [pad_s, pstate_s] = split->ForwardPadded(x, len, start);
      auto [pad_f, pstate_f] = fused->ForwardPadded(x, len, start);
      EXPECT_LT(MaxDiff(pad_s, pad_f), 1e-12);
      EXPECT_LT(MaxDiff(pstate_s.h, pstate_f.h), 1e-12);
      if (pstate_f.c.defined()) EXPECT_LT(MaxDiff(pstate_s.c, pstate_f.c), 1e-12);
    }
  }
}

TEST(RecurrentStackLayoutTest, KeyedDropoutBetweenLayersActsAndIsReproducible) {
  const at::Tensor len = torch::tensor({4, 7, 1, 5}, torch::kInt64);
  for (CellType cell : {CellType::kLstm, CellType::kGru, CellType::kRnnRelu, CellType::kMlstm, CellType::kMgru}) {
    SCOPED_TRACE(CellTypeName(cell));
    RecurrentStack stack(Stack(cell, true, 0.5));
    stack->to(torch::kFloat64);
    torch::NoGradGuard no_grad;
    const at::Tensor x = torch::randn({7, 4, 3}, torch::kFloat64);
    stack->eval();
    const at::Tensor plain = std::get<0>(stack->forward(x));
    const at::Tensor plain_padded = std::get<0>(stack->ForwardPadded(x, len));
    stack->train();
    for (bool padded : {false, true}) {
      auto run = [&](int64_t step) {
        stack->SetDropoutKey(DropoutKey{1, step, 0});
        return padded ? std::get<0>(stack->ForwardPadded(x, len)) : std::get<0>(stack->forward(x));
      };
      const at::Tensor a = run(1);
      EXPECT_EQ(MaxDiff(a, run(1)), 0.0);
      EXPECT_GT(MaxDiff(a, run(2)), 1e-6);
      EXPECT_GT(MaxDiff(a, padded ? plain_padded : plain), 1e-6);
    }
  }
}

}  // namespace
}  // namespace distrnn::model
