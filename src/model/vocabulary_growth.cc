#include "model/vocabulary_growth.h"

#include <torch/torch.h>

#include "absl/strings/str_cat.h"
#include "common/torch_status.h"

namespace distrnn::model {

absl::Status CopyGrowingVocabulary(LanguageModel& from, LanguageModel& to) {
  const int64_t old_vocab = from->config().vocab_size, new_vocab = to->config().vocab_size;
  if (new_vocab < old_vocab) {
    return absl::InvalidArgumentError(
        absl::StrCat("the vocabulary would shrink from ", old_vocab, " to ", new_vocab, " tokens"));
  }
  const auto source = from->named_parameters(/*recurse=*/true);
  auto target = to->named_parameters(/*recurse=*/true);
  if (source.size() != target.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the models differ: ", source.size(), " vs ", target.size(), " parameters"));
  }
  return common::GuardTorch("cannot copy the pretrained parameters", [&]() -> absl::Status {
    torch::NoGradGuard no_grad;
    for (const auto& item : target) {
      const torch::Tensor* old = source.find(item.key());
      torch::Tensor now = item.value();
      if (old == nullptr) return absl::InvalidArgumentError(absl::StrCat("no parameter '", item.key(), "' to copy"));
      if (old->sizes() == now.sizes()) {
        now.copy_(*old);
      } else if (old->dim() == now.dim() && old->size(0) == old_vocab && now.size(0) == new_vocab &&
                 old->sizes().slice(1) == now.sizes().slice(1)) {
        now.narrow(0, 0, old_vocab).copy_(*old);
      } else {
        return absl::InvalidArgumentError(absl::StrCat("parameter '", item.key(), "' has shape ", c10::str(old->sizes()),
                                                       " in the checkpoint, ", c10::str(now.sizes()), " now"));
      }
    }
    return absl::OkStatus();
  });
}

}  // namespace distrnn::model
