#include "train/step_utils.h"

#include <cstdlib>
#include <limits>

#include <torch/nn/utils/clip_grad.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace distrnn::train {

double ClipGradients(const std::vector<at::Tensor>& params, double clip_value, double clip_norm) {
  if (clip_value > 0.0) torch::nn::utils::clip_grad_value_(params, clip_value);
  return torch::nn::utils::clip_grad_norm_(params, clip_norm > 0.0 ? clip_norm : std::numeric_limits<double>::max());
}

void MaybeInjectFault(int rank, int fault_rank, int64_t fault_step, int64_t next_step) {
  if (fault_step <= 0 || next_step != fault_step || rank != fault_rank) return;
  common::LogLine("fault", absl::StrCat("injected fault: this rank exits abruptly before step ", fault_step));
  std::_Exit(13);
}

}  // namespace distrnn::train
