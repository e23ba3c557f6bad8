// mLSTM and mGRU against step-by-step references written from the equations in
// multiplicative_cells.h, in double: values and gradients.
#include "model/multiplicative_cells.h"

#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/utils.h>

namespace distrnn::model {
namespace {

constexpr double kTol = 1e-10;

at::Tensor Leaf(const at::Tensor& t) { return t.detach().clone().requires_grad_(true); }
at::Tensor Block(const at::Tensor& t, int64_t k, int64_t h) { return t.narrow(0, k * h, h); }
void ExpectClose(const at::Tensor& a, const at::Tensor& b, const char* what) {
  ASSERT_TRUE(a.defined() && b.defined()) << what;
  ASSERT_EQ(a.sizes(), b.sizes()) << what;
  EXPECT_LT((a - b).abs().max().item<double>(), kTol) << what;
}

// Random inputs and a loss that weighs every output and both final states differently.
struct Problem {
  int64_t steps = 5, batch = 3, input = 4, hidden = 6;
  at::Tensor x, h0, c0, w_out, w_h, w_c;
  Problem() {
    torch::manual_seed(7);
    auto o = torch::dtype(torch::kFloat64);
    x = torch::randn({steps, batch, input}, o);
    h0 = torch::randn({batch, hidden}, o) * 0.5;
    c0 = torch::randn({batch, hidden}, o) * 0.5;
    w_out = torch::randn({steps, batch, hidden}, o);
    w_h = torch::randn({batch, hidden}, o);
    w_c = torch::randn({batch, hidden}, o);
  }
  at::Tensor Loss(const at::Tensor& out, const at::Tensor& h, const at::Tensor& c) const {
    at::Tensor loss = (out * w_out).sum() + (h * w_h).sum();
    return c.defined() ? loss + (c * w_c).sum() : loss;
  }
};

struct Reference {
  at::Tensor out, h, c;
};

// Written straight from the mLSTM equations, one gate at a time.
Reference RefMlstm(const at::Tensor& x, at::Tensor h, at::Tensor c, const at::Tensor& wx, const at::Tensor& bx,
                   const at::Tensor& wmh, const at::Tensor& wm, int64_t hs) {
  const at::Tensor W_mx = Block(wx, 0, hs), W_ix = Block(wx, 1, hs), W_fx = Block(wx, 2, hs), W_ox = Block(wx, 3, hs),
                   W_ux = Block(wx, 4, hs);
  const at::Tensor b_i = Block(bx, 0, hs), b_f = Block(bx, 1, hs), b_o = Block(bx, 2, hs), b_u = Block(bx, 3, hs);
  const at::Tensor W_im = Block(wm, 0, hs), W_fm = Block(wm, 1, hs), W_om = Block(wm, 2, hs), W_um = Block(wm, 3, hs);
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < x.size(0); ++t) {
    const at::Tensor xt = x[t];
    const at::Tensor m = torch::matmul(xt, W_mx.t()) * torch::matmul(h, wmh.t());
    const at::Tensor i = torch::sigmoid(torch::matmul(xt, W_ix.t()) + torch::matmul(m, W_im.t()) + b_i);
    const at::Tensor f = torch::sigmoid(torch::matmul(xt, W_fx.t()) + torch::matmul(m, W_fm.t()) + b_f);
    const at::Tensor o = torch::sigmoid(torch::matmul(xt, W_ox.t()) + torch::matmul(m, W_om.t()) + b_o);
    const at::Tensor u = torch::tanh(torch::matmul(xt, W_ux.t()) + torch::matmul(m, W_um.t()) + b_u);
    c = f * c + i * u;
    h = o * torch::tanh(c);
    outs.push_back(h);
  }
  return {torch::stack(outs), h, c};
}

// Written straight from the mGRU equations.
Reference RefMgru(const at::Tensor& x, at::Tensor h, const at::Tensor& wx, const at::Tensor& bx,
                  const at::Tensor& wmh, const at::Tensor& wm, const at::Tensor& b_nm, int64_t hs) {
  const at::Tensor W_mx = Block(wx, 0, hs), W_zx = Block(wx, 1, hs), W_rx = Block(wx, 2, hs), W_nx = Block(wx, 3, hs);
  const at::Tensor b_z = Block(bx, 0, hs), b_r = Block(bx, 1, hs), b_nx = Block(bx, 2, hs);
  const at::Tensor W_zm = Block(wm, 0, hs), W_rm = Block(wm, 1, hs), W_nm = Block(wm, 2, hs);
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < x.size(0); ++t) {
    const at::Tensor xt = x[t];
    const at::Tensor m = torch::matmul(xt, W_mx.t()) * torch::matmul(h, wmh.t());
    const at::Tensor z = torch::sigmoid(torch::matmul(xt, W_zx.t()) + torch::matmul(m, W_zm.t()) + b_z);
    const at::Tensor r = torch::sigmoid(torch::matmul(xt, W_rx.t()) + torch::matmul(m, W_rm.t()) + b_r);
    const at::Tensor n = torch::tanh(torch::matmul(xt, W_nx.t()) + b_nx + r * (torch::matmul(m, W_nm.t()) + b_nm));
    h = (1 - z) * n + z * h;
    outs.push_back(h);
  }
  return {torch::stack(outs), h, {}};
}

TEST(MultiplicativeCellsTest, ParameterShapes) {
  MlstmCell mlstm(4, 6);
  EXPECT_EQ(mlstm.weight_x.sizes(), (std::vector<int64_t>{30, 4}));
  EXPECT_EQ(mlstm.bias_x.sizes(), (std::vector<int64_t>{24}));
  EXPECT_EQ(mlstm.weight_mh.sizes(), (std::vector<int64_t>{6, 6}));
  EXPECT_EQ(mlstm.weight_m.sizes(), (std::vector<int64_t>{24, 6}));
  EXPECT_EQ(mlstm.parameters().size(), 4u);
  MgruCell mgru(4, 6);
  EXPECT_EQ(mgru.weight_x.sizes(), (std::vector<int64_t>{24, 4}));
  EXPECT_EQ(mgru.bias_x.sizes(), (std::vector<int64_t>{18}));
  EXPECT_EQ(mgru.weight_m.sizes(), (std::vector<int64_t>{18, 6}));
  EXPECT_EQ(mgru.bias_m.sizes(), (std::vector<int64_t>{6}));
  EXPECT_EQ(mgru.parameters().size(), 5u);
  // Initialised like torch's RNNs: within 1/sqrt(H), not all zero.
  for (const auto& p : mgru.parameters()) {
    EXPECT_LE(p.abs().max().item<double>(), 1.0 / std::sqrt(6.0) + 1e-7);
    EXPECT_GT(p.abs().max().item<double>(), 0.0);
  }
}

TEST(MultiplicativeCellsTest, MlstmMatchesReferenceValuesAndGradients) {
  Problem pr;
  MlstmCell cell(pr.input, pr.hidden);
  cell.to(torch::kFloat64);
  const at::Tensor x = Leaf(pr.x), h0 = Leaf(pr.h0), c0 = Leaf(pr.c0);
  CellSequenceOutput got = cell.Run(x, h0, c0);
  pr.Loss(got.output, got.h, got.c).backward();

  const at::Tensor wx = Leaf(cell.weight_x), bx = Leaf(cell.bias_x), wmh = Leaf(cell.weight_mh),
                   wm = Leaf(cell.weight_m);
  const at::Tensor rx = Leaf(pr.x), rh0 = Leaf(pr.h0), rc0 = Leaf(pr.c0);
  Reference ref = RefMlstm(rx, rh0, rc0, wx, bx, wmh, wm, pr.hidden);
  pr.Loss(ref.out, ref.h, ref.c).backward();

  ExpectClose(got.output, ref.out, "output");
  ExpectClose(got.h, ref.h, "h");
  ExpectClose(got.c, ref.c, "c");
  ExpectClose(cell.weight_x.grad(), wx.grad(), "d weight_x");
  ExpectClose(cell.bias_x.grad(), bx.grad(), "d bias_x");
  ExpectClose(cell.weight_mh.grad(), wmh.grad(), "d weight_mh");
  ExpectClose(cell.weight_m.grad(), wm.grad(), "d weight_m");
  ExpectClose(x.grad(), rx.grad(), "d x");
  ExpectClose(h0.grad(), rh0.grad(), "d h0");
  ExpectClose(c0.grad(), rc0.grad(), "d c0");
  // The problem is not degenerate: the gradients are substantial.
  EXPECT_GT(cell.weight_mh.grad().abs().sum().item<double>(), 1e-3);
}

TEST(MultiplicativeCellsTest, MgruMatchesReferenceValuesAndGradients) {
  Problem pr;
  MgruCell cell(pr.input, pr.hidden);
  cell.to(torch::kFloat64);
  const at::Tensor x = Leaf(pr.x), h0 = Leaf(pr.h0);
  CellSequenceOutput got = cell.Run(x, h0, {});
  EXPECT_FALSE(got.c.defined());
  pr.Loss(got.output, got.h, {}).backward();

  const at::Tensor wx = Leaf(cell.weight_x), bx = Leaf(cell.bias_x), wmh = Leaf(cell.weight_mh),
                   wm = Leaf(cell.weight_m), bm = Leaf(cell.bias_m);
  const at::Tensor rx = Leaf(pr.x), rh0 = Leaf(pr.h0);
  Reference ref = RefMgru(rx, rh0, wx, bx, wmh, wm, bm, pr.hidden);
  pr.Loss(ref.out, ref.h, {}).backward();

  ExpectClose(got.output, ref.out, "output");
  ExpectClose(got.h, ref.h, "h");
  ExpectClose(cell.weight_x.grad(), wx.grad(), "d weight_x");
  ExpectClose(cell.bias_x.grad(), bx.grad(), "d bias_x");
  ExpectClose(cell.weight_mh.grad(), wmh.grad(), "d weight_mh");
  ExpectClose(cell.weight_m.grad(), wm.grad(), "d weight_m");
  ExpectClose(cell.bias_m.grad(), bm.grad(), "d bias_m");
  ExpectClose(x.grad(), rx.grad(), "d x");
  ExpectClose(h0.grad(), rh0.grad(), "d h0");
  EXPECT_GT(cell.bias_m.grad().abs().sum().item<double>(), 1e-3);
}

TEST(MultiplicativeCellsTest, ReverseEqualsForwardOnReversedTime) {
  Problem pr;
  for (int kind = 0; kind < 2; ++kind) {
    std::shared_ptr<MultiplicativeCell> cell;
    if (kind == 0) {
      cell = std::make_shared<MlstmCell>(pr.input, pr.hidden);
    } else {
      cell = std::make_shared<MgruCell>(pr.input, pr.hidden);
    }
    cell->to(torch::kFloat64);
    torch::NoGradGuard no_grad;
    CellSequenceOutput rev = cell->Run(pr.x, pr.h0, pr.c0, /*reverse=*/true);
    CellSequenceOutput fwd = cell->Run(pr.x.flip(0), pr.h0, pr.c0);
    ExpectClose(rev.output, fwd.output.flip(0), "reverse output");
    ExpectClose(rev.h, fwd.h, "reverse h");
    if (kind == 0) ExpectClose(rev.c, fwd.c, "reverse c");
  }
}

TEST(MultiplicativeCellsTest, MaskedStepsCarryStateAndEmitZeros) {
  Problem pr;
  MlstmCell cell(pr.input, pr.hidden);
  cell.to(torch::kFloat64);
  torch::NoGradGuard no_grad;
  // Sequence 1 has length 2: steps 2.. are skipped.
  at::Tensor mask = torch::ones({pr.steps, pr.batch, 1}, torch::kBool);
  mask.narrow(0, 2, pr.steps - 2).select(1, 1).fill_(false);
  CellSequenceOutput got = cell.Run(pr.x, pr.h0, pr.c0, false, mask);
  CellSequenceOutput prefix = cell.Run(pr.x.narrow(0, 0, 2), pr.h0, pr.c0);
  ExpectClose(got.h[1], prefix.h[1], "h of the short sequence");
  ExpectClose(got.c[1], prefix.c[1], "c of the short sequence");
  EXPECT_EQ(got.output.narrow(0, 2, pr.steps - 2).select(1, 1).abs().max().item<double>(), 0.0);
  CellSequenceOutput full = cell.Run(pr.x, pr.h0, pr.c0);
  ExpectClose(got.h[0], full.h[0], "unmasked sequence unaffected");
  // Reverse: the short sequence starts at its own last step.
  CellSequenceOutput rev = cell.Run(pr.x, pr.h0, pr.c0, true, mask);
  CellSequenceOutput rev_prefix = cell.Run(pr.x.narrow(0, 0, 2), pr.h0, pr.c0, true);
  ExpectClose(rev.h[1], rev_prefix.h[1], "reverse h of the short sequence");
  ExpectClose(rev.output.narrow(0, 0, 2).select(1, 1), rev_prefix.output.select(1, 1), "reverse outputs");
}

TEST(MultiplicativeCellsTest, RejectsBadShapes) {
  MgruCell cell(4, 6);
  EXPECT_THROW(cell.Run(torch::zeros({5, 2, 3}), torch::zeros({2, 6}), {}), c10::Error);
  EXPECT_THROW(cell.Run(torch::zeros({5, 2, 4}), torch::zeros({3, 6}), {}), c10::Error);
  MlstmCell lstm(4, 6);
  EXPECT_THROW(lstm.Run(torch::zeros({5, 2, 4}), torch::zeros({2, 6}), {}), c10::Error);  // no c0
}

}  // namespace
}  // namespace distrnn::model
