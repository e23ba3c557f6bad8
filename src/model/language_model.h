// LanguageModel: embedding -> dropout -> RecurrentStack -> dropout -> linear decoder
// (Zaremba et al. 2014; dropout on non-recurrent connections only).
//
// Shapes: tokens [T, B] int64 -> logits [T, B, V]; state as in recurrent_state.h.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/model_config.h"
#include "model/recurrent_stack.h"

namespace distrnn::model {

class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(const LanguageModelConfig& config);

  std::tuple<torch::Tensor, RecurrentState> forward(const torch::Tensor& tokens, const RecurrentState& state = {});
  RecurrentState InitialState(int64_t batch, const torch::TensorOptions& options) const {
    return stack_->InitialState(batch, options);
  }
  const LanguageModelConfig& config() const { return config_; }

 private:
  LanguageModelConfig config_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::Dropout dropout_{nullptr};
  RecurrentStack stack_{nullptr};
  torch::nn::Linear decoder_{nullptr};  // absent when weights are tied
  torch::Tensor tied_bias_;            // decoder bias when weights are tied
};
TORCH_MODULE(LanguageModel);

}  // namespace distrnn::model
