// Pieces of a training step every trainer shares: loading token ids into persistent
// tensors, the summed cross entropy, gradient clipping (by value, then by global norm)
// and the fault-injection hook of the no-hang tests.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

namespace distrnn::train {

// Copies `ids` (row-major [rows, cols]) into `tensor`, an int64 [rows, cols] tensor that
// is reallocated only when the shape changes (steps reuse it: no fresh pages per step).
void LoadIds(const std::vector<int64_t>& ids, int64_t rows, int64_t cols, at::Tensor& tensor);

// Cross entropy of logits [..., V] against targets [...], summed over every position.
at::Tensor SummedCrossEntropy(const at::Tensor& logits, const at::Tensor& targets);

// Clamps every element of `grads` to [-clip_value, clip_value] (skipped when 0), then
// scales them so their global L2 norm is at most clip_norm (skipped when 0), as
// torch::nn::utils::clip_grad_norm_ does. `grads` are the tensors holding the
// gradients: GradientReducer::FlatGradients(), a few flat buckets rather than one
// tensor per parameter. Returns the global norm after value clipping and before norm
// clipping (what progress lines report) as a 0-dim tensor on the gradients' device, so
// that nothing here waits for the device. Every rank must call it on the same
// averaged gradients.
at::Tensor ClipGradients(const std::vector<at::Tensor>& grads, double clip_value, double clip_norm);

// Testing aid (--fault_rank/--fault_step): when fault_step > 0, `next_step` ==
// fault_step and this is rank fault_rank, logs and exits the process abruptly (code 13,
// no MPI clean-up), as a crashed rank would.
void MaybeInjectFault(int rank, int fault_rank, int64_t fault_step, int64_t next_step);

}  // namespace distrnn::train
