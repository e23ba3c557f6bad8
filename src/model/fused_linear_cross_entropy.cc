#include "model/fused_linear_cross_entropy.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

namespace distrnn::model {
namespace {

int64_t ChunkRows(int64_t chunk_rows, int64_t vocab, int64_t element_bytes) {
  if (chunk_rows > 0) return chunk_rows;
  return std::max<int64_t>(1, kFusedLossChunkBytes / std::max<int64_t>(vocab * element_bytes, 1));
}

at::Tensor Logits(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
  return b.defined() && b.numel() > 0 ? at::addmm(b, x, w.t()) : at::mm(x, w.t());
}

// Loss only (evaluation, no grad): the same chunks, nothing saved.
at::Tensor LossOnly(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const at::Tensor& t,
                    int64_t rows) {
  at::Tensor loss = at::zeros({}, x.options());
  for (int64_t begin = 0; begin < x.size(0); begin += rows) {
    const int64_t n = std::min(rows, x.size(0) - begin);
    const at::Tensor logits = Logits(x.narrow(0, begin, n), w, b);
    const at::Tensor target = t.narrow(0, begin, n).unsqueeze(1);
    loss += (at::logsumexp(logits, 1) - logits.gather(1, target).squeeze(1)).sum();
  }
  return loss;
}

// All rows at once: forward keeps dlogits, backward does the gradient matmuls. The
// incoming gradient g (a scalar) scales the small operands: dx = g (dlogits W),
// dW = dlogits^T (g x), db = g colsum(dlogits). `b` is a [V] bias or an empty [0] tensor
// for none (autograd functions take no undefined inputs).
class WholeFunction : public torch::autograd::Function<WholeFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const at::Tensor& b, const at::Tensor& t) {
    at::Tensor dlogits = Logits(x, w, b);
    const bool has_bias = b.numel() > 0;
    at::Tensor db = has_bias ? at::zeros_like(b) : at::Tensor();
    at::Tensor loss = SoftmaxGradientInPlace(dlogits, t, db);
    ctx->save_for_backward({x, w, dlogits, has_bias ? db : b});
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad_outputs) {
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &w = saved[1], &dlogits = saved[2], &db = saved[3];
    const at::Tensor& g = grad_outputs[0];  // scalar
    at::Tensor dx, dw, dbias;
    if (ctx->needs_input_grad(0)) dx = at::mm(dlogits, w).mul_(g);
    if (ctx->needs_input_grad(1)) dw = at::mm(dlogits.t(), x * g);
    if (ctx->needs_input_grad(2) && db.numel() > 0) dbias = db * g;
    return {dx, dw, dbias, at::Tensor()};
  }
};

// Chunk by chunk: dx, dW and db accumulated in forward, scaled in backward.
class ChunkedFunction : public torch::autograd::Function<ChunkedFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& w,
                            const at::Tensor& b, const at::Tensor& t, int64_t rows) {
    at::Tensor loss = at::zeros({}, x.options());
    at::Tensor dx = at::empty_like(x);
    at::Tensor dw = at::zeros_like(w);
    const bool has_bias = b.numel() > 0;
    at::Tensor db = has_bias ? at::zeros_like(b) : at::Tensor();
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
      loss += SoftmaxGradientInPlace(logits, t.narrow(0, begin, n), db);
      at::Tensor dx_rows = dx.narrow(0, begin, n);
      at::mm_out(dx_rows, logits, w);
      dw.addmm_(logits.t(), xc);
    }
    ctx->save_for_backward({dx, dw, has_bias ? db : b});
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

at::Tensor SoftmaxGradientInPlace(at::Tensor& logits, const at::Tensor& targets, at::Tensor column_sum,
                                  int64_t block_rows) {
  const int64_t n = logits.size(0), vocab = logits.size(1);
  int64_t block = block_rows;
  if (block <= 0) {
    block = logits.is_cpu() ? kSoftmaxBlockBytes / std::max<int64_t>(vocab * logits.element_size(), 1) : n;
  }
  block = std::max<int64_t>(block, 1);
  const int64_t blocks = n == 0 ? 0 : (n + block - 1) / block;
  const at::Tensor target = targets.unsqueeze(1);
  const at::Tensor minus_one = at::full({std::min(block, n), 1}, -1.0, logits.options());
  at::Tensor row_loss = at::empty({n, 1}, logits.options());
  // Each block's column sums in its own row: blocks may run on different threads.
  at::Tensor block_column_sums = column_sum.defined() ? at::empty({blocks, vocab}, logits.options()) : at::Tensor();
  auto run_block = [&](int64_t index) {
    const int64_t begin = index * block, m = std::min(block, n - begin);
    at::Tensor rows = logits.narrow(0, begin, m);
    const at::Tensor t = target.narrow(0, begin, m);
    rows.sub_(at::amax(rows, {1}, /*keepdim=*/true));
    const at::Tensor target_logit = rows.gather(1, t);  // minus the row's max, as is the sum below
    rows.exp_();
    const at::Tensor sum = at::sum(rows, {1}, /*keepdim=*/true);
    at::Tensor loss_rows = row_loss.narrow(0, begin, m);
    at::sub_out(loss_rows, at::log(sum), target_logit);
    rows.mul_(sum.reciprocal_());
    rows.scatter_add_(1, t, minus_one.narrow(0, 0, m));
    if (column_sum.defined()) {
      at::Tensor sums = block_column_sums.select(0, index);
      at::sum_out(sums, rows, {0});
    }
  };
  if (logits.is_cpu()) {
    // Whole blocks per thread, each in its core's cache; the ops inside run on one thread
    // (ATen does not nest parallel regions), which also spares a wake-up per small op.
    at::parallel_for(0, blocks, 1, [&](int64_t first, int64_t last) {
      for (int64_t index = first; index < last; ++index) run_block(index);
    });
  } else {
    for (int64_t index = 0; index < blocks; ++index) run_block(index);
  }
  if (column_sum.defined() && blocks > 0) column_sum.add_(block_column_sums.sum(0));
  return row_loss.sum();
}

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
  const at::Tensor b = bias.defined() ? bias : at::empty({0}, weight.options());
  if (rows >= features.size(0)) return WholeFunction::apply(features.contiguous(), weight, b, targets);
  return ChunkedFunction::apply(features.contiguous(), weight, b, targets, rows);
}

}  // namespace distrnn::model
