#include "model/multiplicative_cells.h"

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/utils.h>

namespace distrnn::model {

void MultiplicativeCell::RegisterCommon(int64_t gates) {
  const int64_t h = hidden_size_;
  TORCH_CHECK(input_size_ > 0 && h > 0, "multiplicative cell needs positive sizes, got input ", input_size_,
              " hidden ", h);
  // One block for m_x plus one per gate.
  weight_x = register_parameter("weight_x", torch::empty({(gates + 1) * h, input_size_}));
  bias_x = register_parameter("bias_x", torch::empty({gates * h}));
  weight_mh = register_parameter("weight_mh", torch::empty({h, h}));
  weight_m = register_parameter("weight_m", torch::empty({gates * h, h}));
}

void MultiplicativeCell::ResetUniform() {
  torch::NoGradGuard no_grad;
  const double bound = 1.0 / std::sqrt(static_cast<double>(hidden_size_));
  for (auto& p : parameters()) p.uniform_(-bound, bound);
}

void MultiplicativeCell::CheckArgs(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& mask) const {
  TORCH_CHECK(input.dim() == 3 && input.size(2) == input_size_, "cell input must be [T, B, ", input_size_,
              "], got ", input.sizes());
  TORCH_CHECK(h0.dim() == 2 && h0.size(0) == input.size(1) && h0.size(1) == hidden_size_, "cell h0 must be [",
              input.size(1), ", ", hidden_size_, "], got ", h0.sizes());
  if (mask.defined()) {
    TORCH_CHECK(mask.scalar_type() == at::kBool && mask.dim() == 3 && mask.size(0) == input.size(0) &&
                    mask.size(1) == input.size(1) && mask.size(2) == 1,
                "cell mask must be bool [T, B, 1], got ", mask.sizes(), " ", mask.scalar_type());
  }
}

at::Tensor MultiplicativeCell::ProjectInput(const at::Tensor& input) const {
  const int64_t t = input.size(0), b = input.size(1);
  // The m_x block has no bias: prepend H zeros so one addmm does everything.
  at::Tensor bias = torch::cat({torch::zeros({hidden_size_}, bias_x.options()), bias_x});
  return torch::addmm(bias, input.reshape({t * b, input_size_}), weight_x.t()).view({t, b, -1});
}

namespace {

// Applies the mask of step t: returns the state to carry and the output to emit.
struct Masked {
  at::Tensor carry;
  at::Tensor emit;
};
Masked ApplyMask(const at::Tensor& keep, const at::Tensor& drop, const at::Tensor& fresh, const at::Tensor& old) {
  if (!keep.defined()) return {fresh, fresh};
  return {torch::where(keep, fresh, old), fresh.masked_fill(drop, 0.0)};
}

}  // namespace

MlstmCell::MlstmCell(int64_t input_size, int64_t hidden_size) : MultiplicativeCell(input_size, hidden_size) {
  RegisterCommon(4);
  ResetUniform();
}

CellSequenceOutput MlstmCell::Run(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& c0, bool reverse,
                                  const at::Tensor& mask) {
  CheckArgs(input, h0, mask);
  TORCH_CHECK(c0.defined() && c0.sizes() == h0.sizes(), "mLSTM needs c0 shaped like h0 ", h0.sizes());
  const int64_t steps = input.size(0), hs = hidden_size_;
  at::Tensor h = h0, c = c0;
  if (steps == 0) return {input.new_zeros({0, input.size(1), hs}), h, c};
  const at::Tensor proj = ProjectInput(input);  // [T, B, 5H]
  // Split once, outside the loop: per-step views of `proj` would each cost a full-size
  // zero gradient in backward (O(T^2)); unbind's backward is one stack.
  const std::vector<at::Tensor> xm = proj.narrow(2, 0, hs).unbind(0);      // T x [B, H]
  const std::vector<at::Tensor> xg = proj.narrow(2, hs, 4 * hs).unbind(0); // T x [B, 4H]
  const at::Tensor wmh_t = weight_mh.t(), wm_t = weight_m.t();
  const at::Tensor not_mask = mask.defined() ? mask.logical_not() : at::Tensor();
  std::vector<at::Tensor> outputs(steps);
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = reverse ? steps - 1 - s : s;
    const at::Tensor m = xm[t] * h.mm(wmh_t);
    const at::Tensor gates = torch::addmm(xg[t], m, wm_t);  // [B, 4H]: i f o | u
    const auto parts = gates.split_with_sizes({3 * hs, hs}, 1);
    const auto ifo = parts[0].sigmoid().chunk(3, 1);
    const at::Tensor u = parts[1].tanh();
    const at::Tensor c_new = torch::addcmul(ifo[1] * c, ifo[0], u);
    const at::Tensor h_new = ifo[2] * c_new.tanh();
    const at::Tensor keep = mask.defined() ? mask[t] : at::Tensor();
    const at::Tensor drop = mask.defined() ? not_mask[t] : at::Tensor();
    c = ApplyMask(keep, drop, c_new, c).carry;
    Masked hm = ApplyMask(keep, drop, h_new, h);
    h = hm.carry;
    outputs[t] = hm.emit;
  }
  return {torch::stack(outputs, 0), h, c};
}

MgruCell::MgruCell(int64_t input_size, int64_t hidden_size) : MultiplicativeCell(input_size, hidden_size) {
  RegisterCommon(3);
  bias_m = register_parameter("bias_m", torch::empty({hidden_size}));
  ResetUniform();
}

CellSequenceOutput MgruCell::Run(const at::Tensor& input, const at::Tensor& h0, const at::Tensor& /*c0*/,
                                 bool reverse, const at::Tensor& mask) {
  CheckArgs(input, h0, mask);
  const int64_t steps = input.size(0), hs = hidden_size_;
  at::Tensor h = h0;
  if (steps == 0) return {input.new_zeros({0, input.size(1), hs}), h, {}};
  const at::Tensor proj = ProjectInput(input);  // [T, B, 4H]: m | z r | n
  const auto blocks = proj.split_with_sizes({hs, 2 * hs, hs}, 2);  // split once (see MlstmCell::Run)
  const std::vector<at::Tensor> xm = blocks[0].unbind(0), xzr = blocks[1].unbind(0), xn = blocks[2].unbind(0);
  const at::Tensor wmh_t = weight_mh.t(), wm_t = weight_m.t();
  // b_nm sits inside r ⊙ (...), so it belongs to the recurrent product; z and r get none there.
  const at::Tensor bias_m_full = torch::cat({torch::zeros({2 * hs}, bias_m.options()), bias_m});
  const at::Tensor not_mask = mask.defined() ? mask.logical_not() : at::Tensor();
  std::vector<at::Tensor> outputs(steps);
  for (int64_t s = 0; s < steps; ++s) {
    const int64_t t = reverse ? steps - 1 - s : s;
    const at::Tensor m = xm[t] * h.mm(wmh_t);
    const auto rec = torch::addmm(bias_m_full, m, wm_t).split_with_sizes({2 * hs, hs}, 1);  // [B, 3H]: z r | n
    const auto zr = (xzr[t] + rec[0]).sigmoid().chunk(2, 1);
    const at::Tensor n = torch::addcmul(xn[t], zr[1], rec[1]).tanh();
    const at::Tensor h_new = torch::addcmul(n, zr[0], h - n);  // (1 - z) n + z h
    Masked hm = ApplyMask(mask.defined() ? mask[t] : at::Tensor(), mask.defined() ? not_mask[t] : at::Tensor(),
                          h_new, h);
    h = hm.carry;
    outputs[t] = hm.emit;
  }
  return {torch::stack(outputs, 0), h, {}};
}

}  // namespace distrnn::model
