// RecurrentStack: L layers of one cell type, optionally bidirectional, dropout between
// layers. Built-in cells use libtorch's fused modules (cuDNN on CUDA); mLSTM/mGRU use
// our own cells.
//
// Shapes (time-major): input [T, B, I] -> output [T, B, D*H], D = 1 or 2 directions.
// State: h [L*D, B, H]; c [L*D, B, H] for LSTM-like cells, undefined otherwise.
// Variable-length batches (ForwardPadded): input padded to T, lengths int64 [B]; built-in
// cells go through pack_padded_sequence, ours skip the padded steps (same result).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/rnn.h>

#include "model/model_config.h"
#include "model/multiplicative_stack.h"
#include "model/recurrent_state.h"

namespace distrnn::model {

class RecurrentStackImpl : public torch::nn::Module {
 public:
  explicit RecurrentStackImpl(const StackConfig& config);

  // `state` undefined means zeros.
  std::tuple<torch::Tensor, RecurrentState> forward(const torch::Tensor& input, const RecurrentState& state = {});

  // input [T, B, I] padded; lengths int64 [B] with 1 <= len <= T (CPU or input's device).
  // Returns output [T, B, D*H] with zeros at t >= len[b], and the state each sequence has at
  // its own end (forward direction after t = len-1, backward after t = 0): what running each
  // sequence alone gives.
  std::tuple<torch::Tensor, RecurrentState> ForwardPadded(const torch::Tensor& input, const torch::Tensor& lengths,
                                                          const RecurrentState& state = {});

  // Zero state for `batch` sequences on `options`' device and dtype.
  RecurrentState InitialState(int64_t batch, const torch::TensorOptions& options) const;
  const StackConfig& config() const { return config_; }
  // The mLSTM/mGRU stack (null for built-in cells).
  const MultiplicativeStack& multiplicative_stack() const { return custom_; }

 private:
  StackConfig config_;
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::RNN rnn_{nullptr};
  MultiplicativeStack custom_{nullptr};  // mLSTM / mGRU stack
};
TORCH_MODULE(RecurrentStack);

}  // namespace distrnn::model
