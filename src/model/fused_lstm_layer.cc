#include "model/fused_lstm_layer.h"

#include <ATen/ATen.h>
#include <ATen/Dispatch.h>
#include <torch/autograd.h>

namespace distrnn::model {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Rows of `gates` are [i | f | g | o], H each, already activated. The loops below touch
// [B, H] elements per step: plain contiguous loops the compiler vectorises.

// c = f * c_prev + i * g
template <typename T>
void CellUpdate(const T* __restrict gates, const T* __restrict c_prev, T* __restrict c, int64_t batch, int64_t h) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* gate = gates + b * 4 * h;
    const T* cp = c_prev + b * h;
    T* out = c + b * h;
    for (int64_t j = 0; j < h; ++j) out[j] = gate[h + j] * cp[j] + gate[j] * gate[2 * h + j];
  }
}

// y = o * tanh(c)
template <typename T>
void OutputGate(const T* __restrict gates, const T* __restrict tanh_c, T* __restrict y, int64_t batch, int64_t h) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* o = gates + b * 4 * h + 3 * h;
    const T* tc = tanh_c + b * h;
    T* out = y + b * h;
    for (int64_t j = 0; j < h; ++j) out[j] = o[j] * tc[j];
  }
}

// One step back. In: dh (from the step above, plus dy of this step if given), dc carried
// from step t+1 (updated in place to dc_prev), the saved activations. Out: the gradient of
// the gates' pre-activations.
template <typename T>
void GatesBackward(const T* __restrict gates, const T* __restrict c_prev, const T* __restrict tanh_c,
                   const T* __restrict dy, const T* __restrict dh, T* __restrict dc, T* __restrict dgates,
                   int64_t batch, int64_t h) {
  for (int64_t b = 0; b < batch; ++b) {
    const T* gate = gates + b * 4 * h;
    T* dgate = dgates + b * 4 * h;
    const int64_t row = b * h;
    for (int64_t j = 0; j < h; ++j) {
      const T i = gate[j], f = gate[h + j], g = gate[2 * h + j], o = gate[3 * h + j];
      const T tc = tanh_c[row + j];
      const T dhv = dh[row + j] + (dy != nullptr ? dy[row + j] : T(0));
      const T dcv = dc[row + j] + dhv * o * (T(1) - tc * tc);
      dgate[j] = dcv * g * i * (T(1) - i);
      dgate[h + j] = dcv * c_prev[row + j] * f * (T(1) - f);
      dgate[2 * h + j] = dcv * i * (T(1) - g * g);
      dgate[3 * h + j] = dhv * tc * o * (T(1) - o);
      dc[row + j] = dcv * f;
    }
  }
}

class LstmFunction : public torch::autograd::Function<LstmFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& h0, const at::Tensor& c0,
                               const at::Tensor& w_ih, const at::Tensor& w_hh, const at::Tensor& b_ih,
                               const at::Tensor& b_hh) {
    const int64_t steps = x.size(0), batch = x.size(1), h = w_hh.size(1);
    // Input projections of every step at once; each step then adds its recurrent part in place.
    at::Tensor gates = at::addmm(b_ih + b_hh, x.reshape({steps * batch, x.size(2)}), w_ih.t())
                           .view({steps, batch, 4 * h});
    at::Tensor y = at::empty({steps, batch, h}, x.options());
    at::Tensor c = at::empty_like(y), tanh_c = at::empty_like(y);
    const at::Tensor w_hh_t = w_hh.t();
    for (int64_t t = 0; t < steps; ++t) {
      at::Tensor g = gates.select(0, t);
      g.addmm_(t == 0 ? h0 : y.select(0, t - 1), w_hh_t);
      g.narrow(1, 0, 2 * h).sigmoid_();
      g.narrow(1, 3 * h, h).sigmoid_();
      g.narrow(1, 2 * h, h).tanh_();
      const at::Tensor c_prev = t == 0 ? c0 : c.select(0, t - 1);
      at::Tensor c_t = c.select(0, t), tanh_c_t = tanh_c.select(0, t);
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedLstmLayer forward", [&] {
        CellUpdate(g.data_ptr<scalar_t>(), c_prev.data_ptr<scalar_t>(), c_t.data_ptr<scalar_t>(), batch, h);
      });
      at::tanh_out(tanh_c_t, c_t);
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedLstmLayer forward", [&] {
        OutputGate(g.data_ptr<scalar_t>(), tanh_c_t.data_ptr<scalar_t>(), y.select(0, t).data_ptr<scalar_t>(),
                   batch, h);
      });
    }
    ctx->save_for_backward({x, h0, c0, w_ih, w_hh, y, gates, c, tanh_c});
    // h_T and c_T as their own tensors, not views of y and c (autograd outputs that alias
    // each other would make in-place use of either an error).
    return {y, y.select(0, steps - 1).clone(), c.select(0, steps - 1).clone()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &h0 = saved[1], &c0 = saved[2], &w_ih = saved[3], &w_hh = saved[4];
    const at::Tensor &y = saved[5], &gates = saved[6], &c = saved[7], &tanh_c = saved[8];
    const int64_t steps = x.size(0), batch = x.size(1), h = w_hh.size(1);
    const at::Tensor dy = grads[0].defined() ? grads[0].contiguous() : at::Tensor();
    // dh and dc carried backwards through time: from h_T, c_T's gradients to h0's and c0's.
    at::Tensor dh = grads[1].defined() ? grads[1].contiguous().clone() : at::zeros_like(h0);
    at::Tensor dc = grads[2].defined() ? grads[2].contiguous().clone() : at::zeros_like(c0);
    at::Tensor dgates = at::empty_like(gates);
    for (int64_t t = steps - 1; t >= 0; --t) {
      const at::Tensor c_prev = t == 0 ? c0 : c.select(0, t - 1);
      at::Tensor dgates_t = dgates.select(0, t);
      AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "FusedLstmLayer backward", [&] {
        GatesBackward(gates.select(0, t).data_ptr<scalar_t>(), c_prev.data_ptr<scalar_t>(),
                      tanh_c.select(0, t).data_ptr<scalar_t>(),
                      dy.defined() ? dy.select(0, t).data_ptr<scalar_t>() : nullptr, dh.data_ptr<scalar_t>(),
                      dc.data_ptr<scalar_t>(), dgates_t.data_ptr<scalar_t>(), batch, h);
      });
      at::mm_out(dh, dgates_t, w_hh);  // the gradient of h_{t-1}
    }
    // Every step's gradients in three large matmuls.
    const at::Tensor flat = dgates.view({steps * batch, 4 * h});
    at::Tensor dx, dw_ih, dw_hh, db;
    if (ctx->needs_input_grad(0)) dx = at::mm(flat, w_ih).view(x.sizes());
    if (ctx->needs_input_grad(3)) dw_ih = at::mm(flat.t(), x.reshape({steps * batch, x.size(2)}));
    if (ctx->needs_input_grad(4)) {
      // h_{t-1} is h0 for t = 0 and y[t-1] after it.
      dw_hh = at::mm(dgates.select(0, 0).t(), h0);
      if (steps > 1) {
        dw_hh.addmm_(dgates.narrow(0, 1, steps - 1).reshape({(steps - 1) * batch, 4 * h}).t(),
                     y.narrow(0, 0, steps - 1).reshape({(steps - 1) * batch, h}));
      }
    }
    if (ctx->needs_input_grad(5) || ctx->needs_input_grad(6)) db = flat.sum(0);
    return {dx,
            ctx->needs_input_grad(1) ? dh : at::Tensor(),
            ctx->needs_input_grad(2) ? dc : at::Tensor(),
            dw_ih,
            dw_hh,
            ctx->needs_input_grad(5) ? db : at::Tensor(),
            ctx->needs_input_grad(6) ? db.clone() : at::Tensor()};
  }
};

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> FusedLstmLayer(const at::Tensor& x, const at::Tensor& h0,
                                                              const at::Tensor& c0, const at::Tensor& w_ih,
                                                              const at::Tensor& w_hh, const at::Tensor& b_ih,
                                                              const at::Tensor& b_hh) {
  TORCH_CHECK(x.device().is_cpu(), "FusedLstmLayer runs on the CPU");
  TORCH_CHECK(x.dim() == 3 && x.size(0) >= 1 && x.size(1) >= 1, "FusedLstmLayer: x must be [T, B, I], got ",
              x.sizes());
  const int64_t batch = x.size(1), h = w_hh.size(1);
  TORCH_CHECK(w_ih.dim() == 2 && w_ih.size(0) == 4 * h && w_ih.size(1) == x.size(2) && w_hh.size(0) == 4 * h,
              "FusedLstmLayer: weights must be [4H, I] and [4H, H], got ", w_ih.sizes(), " and ", w_hh.sizes());
  TORCH_CHECK(b_ih.numel() == 4 * h && b_hh.numel() == 4 * h, "FusedLstmLayer: biases must be [4H]");
  TORCH_CHECK(h0.sizes() == at::IntArrayRef({batch, h}) && c0.sizes() == h0.sizes(),
              "FusedLstmLayer: h0 and c0 must be [B, H] = [", batch, ", ", h, "], got ", h0.sizes(), " and ",
              c0.sizes());
  const variable_list out = LstmFunction::apply(x.contiguous(), h0.contiguous(), c0.contiguous(), w_ih.contiguous(),
                                                w_hh.contiguous(), b_ih, b_hh);
  return {out[0], out[1], out[2]};
}

}  // namespace distrnn::model
