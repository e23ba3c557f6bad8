// LanguageModel: embedding -> dropout -> RecurrentStack -> dropout -> linear decoder
// (Zaremba et al. 2014; dropout on non-recurrent connections only).
//
// Shapes: tokens [T, B] int64 -> logits [T, B, V]; state as in recurrent_state.h.
// Data-parallel training sets a DropoutKey per step so every rank draws the masks one
// process would draw for its columns (column_dropout.h).
#pragma once

#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/column_dropout.h"
#include "model/model_config.h"
#include "model/recurrent_stack.h"

namespace distrnn::model {

class LanguageModelImpl : public torch::nn::Module {
 public:
  explicit LanguageModelImpl(const LanguageModelConfig& config);

  std::tuple<torch::Tensor, RecurrentState> forward(const torch::Tensor& tokens, const RecurrentState& state = {});
  // What forward() decodes: the stack's output after dropout [T, B, F], and the state.
  std::tuple<torch::Tensor, RecurrentState> ForwardFeatures(const torch::Tensor& tokens,
                                                            const RecurrentState& state = {});
  // The cross entropy of `targets` [T, B] summed over every position, the decoder and
  // the loss fused (fused_linear_cross_entropy.h; `chunk_rows` chooses between all rows
  // at once and chunks): equal to summing the cross entropy of forward()'s logits.
  std::tuple<torch::Tensor, RecurrentState> SummedLoss(const torch::Tensor& tokens, const torch::Tensor& targets,
                                                       const RecurrentState& state = {}, int64_t chunk_rows = 0);
  RecurrentState InitialState(int64_t batch, const torch::TensorOptions& options) const {
    return stack_->InitialState(batch, options);
  }
  const LanguageModelConfig& config() const { return config_; }
  const torch::nn::Embedding& embedding() const { return embedding_; }
  // Every dropout site (embedding, stack, output) keyed by column; nullopt: torch's global RNG.
  void SetDropoutKey(std::optional<DropoutKey> key);

 private:
  LanguageModelConfig config_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::Dropout dropout_{nullptr};  // unused; registered because checkpoints have an entry
  std::optional<DropoutKey> dropout_key_;
  RecurrentStack stack_{nullptr};
  torch::nn::Linear decoder_{nullptr};  // absent when weights are tied
  torch::Tensor tied_bias_;            // decoder bias when weights are tied
};
TORCH_MODULE(LanguageModel);

}  // namespace distrnn::model
