// FusedLinearCrossEntropy: the summed cross entropy of (features @ weight^T + bias)
// against targets, with the softmax gradient formed in place of the logits.
//
// Two ways, chosen by `chunk_rows`:
// - All rows at once (chunk_rows >= N, e.g. kAllRows): one logits matmul; the loss and
//   dlogits = softmax - onehot(target) are computed in place, block of rows by block of
//   rows so that each block stays in cache; dlogits is what backward keeps, and backward
//   does the two gradient matmuls at full size. Against linear + log_softmax + nll this
//   saves the log-softmax output, its gradient, the zero-filled nll gradient and their
//   passes over memory (the speed path, the default of LM training).
// - Chunk by chunk of rows (the memory path, --fused_loss; the approach of Liger-Kernel's
//   fused linear cross entropy and of "Cut Your Losses", Wijmans et al. 2024): per chunk,
//   logits, loss and dlogits, and dx, dW, db accumulated in forward, so that neither the
//   logits of all rows nor their gradient ever exist; backward only scales them.
//
// Shapes: features [N, F] float, weight [V, F], bias [V] (may be undefined), targets
// [N] int64 -> a 0-dim tensor, the loss summed over the N rows (float).
#pragma once

#include <cstdint>
#include <limits>

#include <ATen/core/Tensor.h>

namespace distrnn::model {

// Logit bytes per chunk when `chunk_rows` is 0: big enough for an efficient matmul,
// small enough to stay in cache.
inline constexpr int64_t kFusedLossChunkBytes = int64_t{8} << 20;
// `chunk_rows` for one chunk of all rows.
inline constexpr int64_t kAllRows = std::numeric_limits<int64_t>::max();

at::Tensor FusedLinearCrossEntropy(const at::Tensor& features, const at::Tensor& weight, const at::Tensor& bias,
                                   const at::Tensor& targets, int64_t chunk_rows = 0);

// Logit bytes per block of SoftmaxGradientInPlace on the CPU: a block is gone through five
// times (max, exp, row sums, scale, column sums), so it must stay in a core's L2 between
// the passes (1 MiB here). The same ops timed at 1 thread on 400 x 10,000 logits:
// 7.6 ms in blocks of 13 rows (512 KiB), 10.5 in 26 rows, 11.8 in 4 rows.
inline constexpr int64_t kSoftmaxBlockBytes = int64_t{512} << 10;

// In place: logits [n, V] become softmax(logits) - onehot(targets); adds the column sums
// of the result to `column_sum` ([V]) when it is defined. Returns the summed cross
// entropy (0-dim). Works through blocks of `block_rows` rows (0: kSoftmaxBlockBytes of
// them on the CPU, all rows at once on an accelerator).
at::Tensor SoftmaxGradientInPlace(at::Tensor& logits, const at::Tensor& targets, at::Tensor column_sum,
                                  int64_t block_rows = 0);

}  // namespace distrnn::model
