// RecurrentStack for every cell type: shapes, state layout, bidirectional semantics,
// dropout between layers, state carried across calls, variable-length batches.
#include "model/recurrent_stack.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/function.h>
#include <torch/types.h>
#include <torch/utils.h>

#include "model/multiplicative_stack.h"
#include "stack_test_util.h"

namespace distrnn::model {
namespace {

const std::vector<CellType> kAllCells = {CellType::kRnnTanh, CellType::kRnnRelu, CellType::kLstm,
                                         CellType::kGru,     CellType::kMlstm,   CellType::kMgru};

StackConfig Config(CellType cell, int64_t layers, bool bidirectional, double dropout = 0.0) {
  StackConfig c;
  c.cell = cell;
  c.input_size = 3;
  c.hidden_size = 4;
  c.num_layers = layers;
  c.bidirectional = bidirectional;
  c.dropout = dropout;
  return c;
}

double MaxDiff(const at::Tensor& a, const at::Tensor& b) { return (a - b).abs().max().item<double>(); }

void CopyParameters(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  auto source = from.named_parameters();
  for (auto& p : to.named_parameters()) {
    ASSERT_TRUE(source.contains(p.key())) << p.key();
    p.value().copy_(source[p.key()]);
  }
}

TEST(RecurrentStackTest, ShapesForEveryCellLayersAndDirections) {
  const int64_t steps = 6, batch = 2;
  for (CellType cell : kAllCells) {
    for (int64_t layers : {1, 3}) {
      for (bool bidir : {false, true}) {
        SCOPED_TRACE(std::string(CellTypeName(cell)) + " layers=" + std::to_string(layers) + " bidir=" +
                     std::to_string(bidir));
        RecurrentStack stack(Config(cell, layers, bidir));
        const int64_t dirs = bidir ? 2 : 1;
        auto [out, state] = stack->forward(torch::randn({steps, batch, 3}));
        EXPECT_EQ(out.sizes(), (std::vector<int64_t>{steps, batch, dirs * 4}));
        EXPECT_EQ(state.h.sizes(), (std::vector<int64_t>{layers * dirs, batch, 4}));
        EXPECT_EQ(state.c.defined(), HasCellState(cell));
        if (state.c.defined()) EXPECT_EQ(state.c.sizes(), state.h.sizes());
        RecurrentState zero = stack->InitialState(batch, torch::dtype(torch::kFloat32));
        EXPECT_EQ(zero.h.sizes(), state.h.sizes());
        EXPECT_EQ(zero.c.defined(), HasCellState(cell));
        // Layout: layer-major, direction-minor. The last layer's forward final state is its
        // output at T-1, the backward one its output at t = 0.
        const int64_t last = (layers - 1) * dirs;
        EXPECT_LT(MaxDiff(state.h[last], out[steps - 1].narrow(1, 0, 4)), 1e-6);
        if (bidir) EXPECT_LT(MaxDiff(state.h[last + 1], out[0].narrow(1, 4, 4)), 1e-6);
        // Gradients reach every parameter.
        (out.sum() + state.h.sum()).backward();
        for (const auto& p : stack->named_parameters()) {
          ASSERT_TRUE(p.value().grad().defined()) << p.key();
        }
      }
    }
  }
}

TEST(RecurrentStackTest, CustomParametersAreNamedPerLayerAndDirection) {
  RecurrentStack stack(Config(CellType::kMlstm, 2, true));
  auto params = stack->named_parameters();
  EXPECT_EQ(params.size(), 2u * 2u * 4u);
  EXPECT_TRUE(params.contains("custom.l0.weight_x"));
  EXPECT_TRUE(params.contains("custom.l1_reverse.weight_m"));
  // Layer 1 reads both directions of layer 0.
  EXPECT_EQ(params["custom.l1.weight_x"].size(1), 8);
  EXPECT_EQ(params["custom.l0.weight_x"].size(1), 3);
}

TEST(RecurrentStackTest, CustomBackwardDirectionIsForwardCellOnReversedInput) {
  for (CellType cell : {CellType::kMlstm, CellType::kMgru}) {
    SCOPED_TRACE(CellTypeName(cell));
    MultiplicativeStack bidir(Config(cell, 1, true));
    MultiplicativeStack fwd(Config(cell, 1, false));
    MultiplicativeStack bwd(Config(cell, 1, false));
    bidir->to(torch::kFloat64);
    fwd->to(torch::kFloat64);
    bwd->to(torch::kFloat64);
    CopyParameters(bidir->cell(0, 0), fwd->cell(0, 0));
    CopyParameters(bidir->cell(0, 1), bwd->cell(0, 0));
    torch::NoGradGuard no_grad;
    const at::Tensor x = torch::randn({7, 3, 3}, torch::kFloat64);
    RecurrentState start = bidir->InitialState(3, torch::dtype(torch::kFloat64));
    start.h.normal_();
    if (start.c.defined()) start.c.normal_();
    auto [out, state] = bidir->forward(x, start);
    auto slice = [](const RecurrentState& s, int64_t i) {
      return RecurrentState{s.h.narrow(0, i, 1), s.c.defined() ? s.c.narrow(0, i, 1) : at::Tensor()};
    };
    auto [out_f, state_f] = fwd->forward(x, slice(start, 0));
    auto [out_b, state_b] = bwd->forward(x.flip(0), slice(start, 1));
    EXPECT_LT(MaxDiff(out.narrow(2, 0, 4), out_f), 1e-12);
    EXPECT_LT(MaxDiff(out.narrow(2, 4, 4), out_b.flip(0)), 1e-12);
    EXPECT_LT(MaxDiff(state.h[0], state_f.h[0]), 1e-12);
    EXPECT_LT(MaxDiff(state.h[1], state_b.h[0]), 1e-12);
    if (cell == CellType::kMlstm) EXPECT_LT(MaxDiff(state.c[1], state_b.c[0]), 1e-12);
  }
}

TEST(RecurrentStackTest, StateCarriesAcrossCalls) {
  for (CellType cell : kAllCells) {
    SCOPED_TRACE(CellTypeName(cell));
    RecurrentStack stack(Config(cell, 2, false));
    stack->to(torch::kFloat64);
    torch::NoGradGuard no_grad;
    const at::Tensor x = torch::randn({8, 2, 3}, torch::kFloat64);
    auto [whole, end] = stack->forward(x);
    auto [first, mid] = stack->forward(x.narrow(0, 0, 3));
    auto [second, end2] = stack->forward(x.narrow(0, 3, 5), mid.Detached());
    EXPECT_LT(MaxDiff(torch::cat({first, second}), whole), 1e-12);
    EXPECT_LT(MaxDiff(end.h, end2.h), 1e-12);
    if (end.c.defined()) EXPECT_LT(MaxDiff(end.c, end2.c), 1e-12);
  }
}

TEST(RecurrentStackTest, DropoutBetweenLayersOnlyInTraining) {
  for (CellType cell : kAllCells) {
    SCOPED_TRACE(CellTypeName(cell));
    RecurrentStack stack(Config(cell, 2, true, /*dropout=*/0.5));
    RecurrentStack plain(Config(cell, 2, true, /*dropout=*/0.0));
    CopyStackParameters(*stack, *plain);  // per-layer built-in layout vs fused
    stack->to(torch::kFloat64);
    plain->to(torch::kFloat64);
    torch::NoGradGuard no_grad;
    const at::Tensor x = torch::randn({5, 4, 3}, torch::kFloat64);
    stack->eval();
    plain->eval();
    auto [a, sa] = stack->forward(x);
    auto [b, sb] = stack->forward(x);
    auto [p, sp] = plain->forward(x);
    EXPECT_EQ(MaxDiff(a, b), 0.0);
    EXPECT_LT(MaxDiff(a, p), 1e-12);  // eval: as if there were no dropout
    stack->train();
    auto [c, sc] = stack->forward(x);
    auto [d, sd] = stack->forward(x);
    EXPECT_GT(MaxDiff(c, d), 1e-6);  // fresh masks per call
    EXPECT_GT(MaxDiff(c, a), 1e-6);
    // One layer: nothing between layers, so training mode changes nothing.
    RecurrentStack single(Config(cell, 1, false, 0.5));
    single->to(torch::kFloat64);
    single->train();
    auto [e, se] = single->forward(x);
    auto [f, sf] = single->forward(x);
    EXPECT_EQ(MaxDiff(e, f), 0.0);
  }
}

TEST(RecurrentStackTest, ForwardPaddedEqualsEachSequenceAlone) {
  const std::vector<int64_t> lengths = {4, 7, 1, 5};
  const int64_t steps = 7, batch = 4;
  for (CellType cell : kAllCells) {
    for (bool bidir : {false, true}) {
      SCOPED_TRACE(std::string(CellTypeName(cell)) + " bidir=" + std::to_string(bidir));
      RecurrentStack stack(Config(cell, 2, bidir));
      stack->to(torch::kFloat64);
      stack->eval();
      torch::NoGradGuard no_grad;
      const at::Tensor x = torch::randn({steps, batch, 3}, torch::kFloat64);  // padding is noise
      auto [out, state] = stack->ForwardPadded(x, torch::tensor(lengths, torch::kInt64));
      const int64_t dirs = bidir ? 2 : 1;
      ASSERT_EQ(out.sizes(), (std::vector<int64_t>{steps, batch, dirs * 4}));
      for (int64_t b = 0; b < batch; ++b) {
        const int64_t len = lengths[b];
        auto [alone, alone_state] = stack->forward(x.narrow(0, 0, len).narrow(1, b, 1));
        EXPECT_LT(MaxDiff(out.narrow(0, 0, len).narrow(1, b, 1), alone), 1e-10) << "b=" << b;
        if (len < steps) EXPECT_EQ(out.narrow(0, len, steps - len).select(1, b).abs().max().item<double>(), 0.0);
        EXPECT_LT(MaxDiff(state.h.narrow(1, b, 1), alone_state.h), 1e-10) << "b=" << b;
        if (state.c.defined()) EXPECT_LT(MaxDiff(state.c.narrow(1, b, 1), alone_state.c), 1e-10) << "b=" << b;
      }
    }
  }
}

// Loss over a padded encoding (output and final h), its gradients w.r.t. the input and every
// parameter, in named_parameters order then the input.
struct Encoded {
  at::Tensor output, h;
  std::vector<at::Tensor> grads;
};

Encoded RunEncoding(RecurrentStackImpl& stack, const at::Tensor& input, const at::Tensor& lengths,
                    const RecurrentState& start, bool packed_reference, int64_t key_step) {
  stack.zero_grad();
  at::Tensor x = input.detach().clone().requires_grad_(true);
  if (key_step >= 0) stack.SetDropoutKey(DropoutKey{7, key_step, 0});
  at::Tensor output, h;
  if (packed_reference) {
    auto [out, state] = stack.ForwardPadded(x, lengths, start);
    output = out;
    h = state.h;
  } else {
    std::tie(output, h) = stack.EncodePadded(x, lengths, start);
  }
  // Fixed weights per element so that every position and every state entry matters.
  const at::Tensor wo = at::linspace(-1.0, 1.0, output.numel(), output.options()).view(output.sizes());
  const at::Tensor wh = at::linspace(1.0, -0.5, h.numel(), h.options()).view(h.sizes());
  ((output * wo).sum() + (h * wh).sum()).backward();
  Encoded e{output.detach(), h.detach(), {}};
  for (const auto& p : stack.named_parameters()) {
    e.grads.push_back(p.value().grad().defined() ? p.value().grad().clone() : at::zeros_like(p.value()));
  }
  e.grads.push_back(x.grad().clone());
  return e;
}

TEST(RecurrentStackTest, EncodePaddedMatchesPackedValuesAndGradients) {
  const at::Tensor lengths = torch::tensor({4, 7, 1, 5, 7}, torch::kInt64);
  for (CellType cell : {CellType::kLstm, CellType::kGru, CellType::kRnnTanh, CellType::kRnnRelu, CellType::kMgru}) {
    for (int64_t layers : {1, 2}) {
      for (bool bidir : {false, true}) {
        for (double dropout : {0.0, 0.5}) {
          SCOPED_TRACE(std::string(CellTypeName(cell)) + " layers=" + std::to_string(layers) +
                       " bidir=" + std::to_string(bidir) + " dropout=" + std::to_string(dropout));
          RecurrentStack stack(Config(cell, layers, bidir, dropout));
          stack->to(torch::kFloat64);
          stack->train();
          const at::Tensor x = torch::randn({7, 5, 3}, torch::kFloat64);  // padding is noise
          RecurrentState start = stack->InitialState(5, torch::dtype(torch::kFloat64));
          start.h.normal_();
          if (start.c.defined()) start.c.normal_();
          const int64_t key = dropout > 0 ? 3 : -1;
          const Encoded ref = RunEncoding(*stack, x, lengths, start, /*packed_reference=*/true, key);
          const Encoded got = RunEncoding(*stack, x, lengths, start, /*packed_reference=*/false, key);
          EXPECT_LT(MaxDiff(got.output, ref.output), 1e-10);
          EXPECT_LT(MaxDiff(got.h, ref.h), 1e-10);
          ASSERT_EQ(got.grads.size(), ref.grads.size());
          for (size_t i = 0; i < ref.grads.size(); ++i) {
            EXPECT_GT(ref.grads[i].abs().max().item<double>(), 0.0) << "gradient " << i;
            EXPECT_LT(MaxDiff(got.grads[i], ref.grads[i]), 1e-10) << "gradient " << i;
          }
        }
      }
    }
  }
}

// Float32 on CPU takes libtorch's fused (oneDNN) layer, which double does not.
TEST(RecurrentStackTest, EncodePaddedMatchesPackedInFloat) {
  const at::Tensor lengths = torch::tensor({30, 12, 1, 25, 30, 7}, torch::kInt64);
  for (CellType cell : {CellType::kLstm, CellType::kGru}) {
    SCOPED_TRACE(CellTypeName(cell));
    StackConfig config = Config(cell, 2, true, 0.5);
    config.input_size = 16;
    config.hidden_size = 32;
    RecurrentStack stack(config);
    stack->train();
    const at::Tensor x = torch::randn({30, 6, 16});
    const RecurrentState start = stack->InitialState(6, torch::dtype(torch::kFloat32));
    const Encoded ref = RunEncoding(*stack, x, lengths, start, true, 5);
    const Encoded got = RunEncoding(*stack, x, lengths, start, false, 5);
    EXPECT_LT(MaxDiff(got.output, ref.output), 1e-5);
    EXPECT_LT(MaxDiff(got.h, ref.h), 1e-5);
    for (size_t i = 0; i < ref.grads.size(); ++i) {
      const double scale = std::max(1.0, ref.grads[i].abs().max().item<double>());
      EXPECT_LT(MaxDiff(got.grads[i], ref.grads[i]) / scale, 1e-5) << "gradient " << i;
    }
  }
}

// Whether the autograd graph behind `t` has a node whose name contains `name`.
bool GraphHasNode(const at::Tensor& t, const std::string& name) {
  std::vector<torch::autograd::Node*> todo = {t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  while (!todo.empty()) {
    torch::autograd::Node* node = todo.back();
    todo.pop_back();
    if (node == nullptr || !seen.insert(node).second) continue;
    if (node->name().find(name) != std::string::npos) return true;
    for (const auto& edge : node->next_edges()) todo.push_back(edge.function.get());
  }
  return false;
}

// StackConfig::fused_cpu_lstm: the same stack through FusedLstmLayer (fused_lstm_layer.h)
// gives libtorch's values and gradients, for forward (state in and out, both directions,
// keyed dropout between layers) and for EncodePadded (against the packed path).
TEST(RecurrentStackTest, FusedLstmKernelMatchesLibtorch) {
  const at::Tensor lengths = torch::tensor({4, 7, 1, 5, 7}, torch::kInt64);
  for (int64_t layers : {1, 2}) {
    for (bool bidir : {false, true}) {
      for (double dropout : {0.0, 0.5}) {
        SCOPED_TRACE("layers=" + std::to_string(layers) + " bidir=" + std::to_string(bidir) +
                     " dropout=" + std::to_string(dropout));
        StackConfig config = Config(CellType::kLstm, layers, bidir, dropout);
        RecurrentStack reference(config);
        config.fused_cpu_lstm = true;
        RecurrentStack fused(config);
        CopyStackParameters(*reference, *fused);
        std::vector<at::Tensor> ref_grads, fused_grads;
        at::Tensor ref_out, fused_out;
        RecurrentState ref_end, fused_end;
        for (RecurrentStack* stack : {&reference, &fused}) {
          (*stack)->to(torch::kFloat64);
          (*stack)->train();
          (*stack)->SetDropoutKey(DropoutKey{7, 2, 0});
          torch::manual_seed(5);
          const at::Tensor x = torch::randn({7, 5, 3}, torch::kFloat64).requires_grad_(true);
          RecurrentState start = (*stack)->InitialState(5, torch::dtype(torch::kFloat64));
          start.h.normal_().requires_grad_(true);
          start.c.normal_().requires_grad_(true);
          auto [out, end] = (*stack)->forward(x, start);
          EXPECT_EQ(GraphHasNode(out, "LstmFunction"), stack == &fused);  // the kernel really ran
          const at::Tensor wo = at::linspace(-1.0, 1.0, out.numel(), out.options()).view(out.sizes());
          const at::Tensor wh = at::linspace(1.0, -0.5, end.h.numel(), out.options()).view(end.h.sizes());
          ((out * wo).sum() + (end.h * wh).sum() + (end.c * wh).sum()).backward();
          std::vector<at::Tensor>& grads = stack == &reference ? ref_grads : fused_grads;
          for (const auto& p : (*stack)->named_parameters()) grads.push_back(p.value().grad().clone());
          for (const at::Tensor& t : {x, start.h, start.c}) grads.push_back(t.grad().clone());
          (stack == &reference ? ref_out : fused_out) = out.detach();
          (stack == &reference ? ref_end : fused_end) = end;
        }
        EXPECT_LT(MaxDiff(fused_out, ref_out), 1e-10);
        EXPECT_LT(MaxDiff(fused_end.h, ref_end.h), 1e-10);
        EXPECT_LT(MaxDiff(fused_end.c, ref_end.c), 1e-10);
        ASSERT_EQ(fused_grads.size(), ref_grads.size());
        for (size_t i = 0; i < ref_grads.size(); ++i) {
          EXPECT_GT(ref_grads[i].abs().max().item<double>(), 0.0) << "gradient " << i;
          EXPECT_LT(MaxDiff(fused_grads[i], ref_grads[i]), 1e-10) << "gradient " << i;
        }
        // Padded batches: the fused stack's EncodePadded against the packed path.
        const at::Tensor x = torch::randn({7, 5, 3}, torch::kFloat64);
        const RecurrentState start = fused->InitialState(5, torch::dtype(torch::kFloat64));
        const int64_t key = dropout > 0 ? 3 : -1;
        const Encoded ref = RunEncoding(*fused, x, lengths, start, /*packed_reference=*/true, key);
        const Encoded got = RunEncoding(*fused, x, lengths, start, /*packed_reference=*/false, key);
        EXPECT_LT(MaxDiff(got.output, ref.output), 1e-10);
        EXPECT_LT(MaxDiff(got.h, ref.h), 1e-10);
        for (size_t i = 0; i < ref.grads.size(); ++i) {
          EXPECT_LT(MaxDiff(got.grads[i], ref.grads[i]), 1e-10) << "encoding gradient " << i;
        }
      }
    }
  }
}

TEST(RecurrentStackTest, ForwardPaddedRejectsBadLengths) {
  for (CellType cell : {CellType::kLstm, CellType::kMgru}) {
    RecurrentStack stack(Config(cell, 1, false));
    const at::Tensor x = torch::randn({5, 2, 3});
    EXPECT_THROW(stack->ForwardPadded(x, torch::tensor({6, 2}, torch::kInt64)), c10::Error);
    EXPECT_THROW(stack->ForwardPadded(x, torch::tensor({0, 2}, torch::kInt64)), c10::Error);
    EXPECT_THROW(stack->ForwardPadded(x, torch::tensor({5, 2, 1}, torch::kInt64)), c10::Error);
    EXPECT_THROW(stack->EncodePadded(x, torch::tensor({6, 2}, torch::kInt64)), c10::Error);
    EXPECT_THROW(stack->EncodePadded(x, torch::tensor({0, 2}, torch::kInt64)), c10::Error);
  }
}

}  // namespace
}  // namespace distrnn::model
