#include "train/step_utils.h"

#include <cstdlib>
#include <cstring>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace distrnn::train {

void LoadIds(const std::vector<int64_t>& ids, int64_t rows, int64_t cols, at::Tensor& tensor) {
  TORCH_CHECK(static_cast<int64_t>(ids.size()) == rows * cols, "LoadIds: ", ids.size(), " ids for [", rows, ", ", cols, "]");
  if (!tensor.defined() || tensor.dim() != 2 || tensor.size(0) != rows || tensor.size(1) != cols) {
    tensor = at::empty({rows, cols}, at::kLong);
  }
  std::memcpy(tensor.data_ptr<int64_t>(), ids.data(), ids.size() * sizeof(int64_t));
}

at::Tensor SummedCrossEntropy(const at::Tensor& logits, const at::Tensor& targets) {
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

at::Tensor ClipGradients(const std::vector<at::Tensor>& grads, double clip_value, double clip_norm) {
  if (grads.empty()) return at::zeros({}, at::kDouble);
  if (clip_value > 0.0) {
    for (const at::Tensor& g : grads) g.clamp_(-clip_value, clip_value);
  }
  std::vector<at::Tensor> norms;
  for (const at::Tensor& g : grads) norms.push_back(g.norm(2));
  at::Tensor total = norms.size() == 1 ? norms.front() : at::stack(norms).norm(2);
  if (clip_norm > 0.0) {
    const at::Tensor coef = (clip_norm / (total + 1e-6)).clamp_max(1.0);
    for (const at::Tensor& g : grads) g.mul_(coef);
  }
  return total;
}

void MaybeInjectFault(int rank, int fault_rank, int64_t fault_step, int64_t next_step) {
  if (fault_step <= 0 || next_step != fault_step || rank != fault_rank) return;
  common::LogLine("fault", absl::StrCat("injected fault: this rank exits abruptly before step ", fault_step));
  std::_Exit(13);
}

}  // namespace distrnn::train
