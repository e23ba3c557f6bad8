#include "model/fused_linear_cross_entropy.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/autograd.h>

namespace distrnn::model {
namespace {

int64_t ChunkRows(int64_t chunk_rows, int64_t vocab, int64_t element_bytes) {
  if (chunk_rows > 0) return chunk_rows;
  return std::max<int64_t>(1, kFusedLossChunkBytes / std::max<int64_t>(vocab * element_bytes, 1));
}

// Loss only (evaluation, no grad): the same chunks, nothing saved.
at::Tensor LossOnly(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const at::Tensor& t,
                    int64_t rows) {
  at::Tensor loss = at::zeros({}, x.options());
  for (int64_t begin = 0; begin < x.size(0); begin += rows) {
    const int64_t n = std::min(rows, x.size(0) - begin);
    const at::Tensor logits = b.defined() ? at::addmm(b, x.narrow(0, begin, n), w.t()) : at::mm(x.narrow(0, begin, n), w.t());
    const at::Tensor target = t.narrow(0, begin, n).unsqueeze(1);
    loss += (at::logsumexp(logits, 1) - logits.gather(1, target).squeeze(1)).sum();
  }
  return loss;
}

// `b` is a [V] bias or, for none, an empty [0] tensor (autograd functions take no
// undefined inputs).
class FusedFunction : public torch::autograd::Function<FusedFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const at::Tensor& b, const at::Tensor& t, int64_t rows) {
    at::Tensor loss = at::zeros({}, x.options());
    at::Tensor dx = at::empty_like(x);
    at::Tensor dw = at::zeros_like(w);
    const bool has_bias = b.numel() > 0;
    at::Tensor db = has_bias ? at::zeros_like(b) : b;
    at::Tensor logits;  // reused across chunks of the same size
    for (int64_t begin = 0; begin < x.size(0); begin += rows) {
      const int64_t n = std::min(rows, x.size(0) - begin);
      const at::Tensor xc = x.narrow(0, begin, n);
      if (!logits.defined() || logits.size(0) != n) logits = at::empty({n, w.size(0)}, x.options());
      if (has_bias) {
        at::addmm_out(logits, b, xc, w.t());
      } else {
        at::mm_out(logits, xc, w.t());
      }
      const at::Tensor target = t.narrow(0, begin, n).unsqueeze(1);
      const at::Tensor lse = at::logsumexp(logits, 1, /*keepdim=*/true);
      loss += (lse - logits.gather(1, target)).sum();
      // dlogits = softmax - onehot(target), in place of the logits.
      logits.sub_(lse).exp_();
      logits.scatter_add_(1, target, at::full({n, 1}, -1.0, logits.options()));
      at::Tensor dx_rows = dx.narrow(0, begin, n);
      at::mm_out(dx_rows, logits, w);
      dw.addmm_(logits.t(), xc);
      if (has_bias) db.add_(logits.sum(0));
    }
    ctx->save_for_backward({dx, dw, db});
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor& g = grad_outputs[0];  // scalar
    at::Tensor db = saved[2].numel() > 0 ? saved[2] * g : at::Tensor();
    return {saved[0] * g, saved[1] * g, db, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

at::Tensor FusedLinearCrossEntropy(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& targets, int64_t chunk_rows) {
  TORCH_CHECK(features.dim() == 2 && weight.dim() == 2 && features.size(1) == weight.size(1),
              "fused cross entropy: features [N, F] and weight [V, F] expected, got ", features.sizes(), " and ",
              weight.sizes());
  TORCH_CHECK(targets.dim() == 1 && targets.size(0) == features.size(0), "fused cross entropy: targets must be [",
              features.size(0), "], got ", targets.sizes());
  const int64_t rows = ChunkRows(chunk_rows, weight.size(0), features.element_size());
  const bool wants_grad = at::GradMode::is_enabled() &&
                          (features.requires_grad() || weight.requires_grad() || (bias.defined() && bias.requires_grad()));
  if (!wants_grad) return LossOnly(features, weight, bias, targets, rows);
  return FusedFunction::apply(features.contiguous(), weight, bias.defined() ? bias : at::empty({0}, weight.options()),
                              targets, rows);
}

}  // namespace distrnn::model
