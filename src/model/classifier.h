// Classifier: embedding (padding index, optional pretrained rows) -> dropout -> RecurrentStack
// over variable-length sequences -> final states of the last layer (both directions
// concatenated) -> dropout -> linear to logits.
//
// Built-in cells run over packed sequences (pack_padded_sequence, enforce_sorted=false);
// mLSTM/mGRU skip padded steps (multiplicative_stack.h). Either way each sequence's logits
// equal those of running it alone, unpadded.
//
// Shapes: tokens [T, B] int64, time-major, padded with padding_idx; lengths int64 [B]
// (1 <= len <= T) -> logits [B, num_classes]. Features before the linear layer: [B, D*H].
// Data-parallel training sets a DropoutKey per step so every rank draws the masks one
// process would draw for its columns (column_dropout.h); each rank may pad its slice to
// its own max length.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/dropout.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>

#include "model/column_dropout.h"
#include "model/model_config.h"
#include "model/recurrent_stack.h"

namespace distrnn::model {

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ClassifierConfig& config);

  torch::Tensor forward(const torch::Tensor& tokens, const torch::Tensor& lengths);

  // The pooled final states [B, D*H] (before dropout and the linear layer).
  torch::Tensor Features(const torch::Tensor& tokens, const torch::Tensor& lengths);

  // matrix: row-major [V, E] (V = vocab_size, E = embedding_size); found[v] says whether
  // word v had a vector. Copies exactly the found rows into the embedding, leaves the
  // others as they are; returns how many rows it copied.
  int64_t LoadPretrained(const std::vector<float>& matrix, const std::vector<bool>& found);

  // Every dropout site (embedding, stack, features) keyed by column; nullopt: torch's global RNG.
  void SetDropoutKey(std::optional<DropoutKey> key);

  const ClassifierConfig& config() const { return config_; }
  const torch::nn::Embedding& embedding() const { return embedding_; }
  const RecurrentStack& stack() const { return stack_; }

 private:
  ClassifierConfig config_;
  torch::nn::Embedding embedding_{nullptr};
  torch::nn::Dropout dropout_{nullptr};  // unused; registered because checkpoints have an entry
  std::optional<DropoutKey> dropout_key_;
  RecurrentStack stack_{nullptr};
  torch::nn::Linear output_{nullptr};
};
TORCH_MODULE(Classifier);

}  // namespace distrnn::model
