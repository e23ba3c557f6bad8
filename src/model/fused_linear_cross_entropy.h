// FusedLinearCrossEntropy: the summed cross entropy of (features @ weight^T + bias)
// against targets, computed chunk by chunk over the rows, never holding the logits of all
// rows at once (the approach of Liger-Kernel's fused linear cross entropy and of "Cut
// Your Losses", Wijmans et al. 2024).
//
// Per chunk of rows: logits = x W^T + b; loss += logsumexp(logits) - logits[target];
// and, when gradients are wanted, softmax in place of the logits, minus one at the
// target, gives dlogits, from which dx (chunk rows), dW and db are accumulated. The
// gradients are computed in forward and scaled by the incoming gradient in backward,
// so no logits are kept for backward either: peak memory is one chunk of logits plus
// dW, instead of [rows x vocabulary] logits and their log-softmax.
//
// Shapes: features [N, F] float, weight [V, F], bias [V] (may be undefined), targets
// [N] int64 -> a 0-dim tensor, the loss summed over the N rows (float).
#pragma once

#include <cstdint>

#include <ATen/core/Tensor.h>

namespace distrnn::model {

// Logit bytes per chunk when `chunk_rows` is 0: big enough for an efficient matmul,
// small enough to stay in cache.
inline constexpr int64_t kFusedLossChunkBytes = int64_t{8} << 20;

at::Tensor FusedLinearCrossEntropy(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& targets, int64_t chunk_rows = 0);

}  // namespace distrnn::model
