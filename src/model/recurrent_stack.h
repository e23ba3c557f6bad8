// RecurrentStack: L layers of one cell type, optionally bidirectional, dropout between
// layers. Built-in cells use libtorch's fused modules (cuDNN on CUDA); mLSTM/mGRU use
// our own cells.
//
// Shapes (time-major): input [T, B, I] -> output [T, B, D*H], D = 1 or 2 directions.
// State: h [L*D, B, H]; c [L*D, B, H] for LSTM-like cells, undefined otherwise.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/rnn.h>

#include "model/model_config.h"

namespace distrnn::model {

struct RecurrentState {
  torch::Tensor h;
  torch::Tensor c;

  bool defined() const { return h.defined(); }
  // Cut the graph between BPTT windows: same values, no history.
  RecurrentState Detached() const;
};

class RecurrentStackImpl : public torch::nn::Module {
 public:
  explicit RecurrentStackImpl(const StackConfig& config);

  // `state` undefined means zeros.
  std::tuple<torch::Tensor, RecurrentState> forward(const torch::Tensor& input, const RecurrentState& state = {});

  // Zero state for `batch` sequences on `options`' device and dtype.
  RecurrentState InitialState(int64_t batch, const torch::TensorOptions& options) const;
  const StackConfig& config() const { return config_; }

 private:
  StackConfig config_;
  torch::nn::LSTM lstm_{nullptr};
  torch::nn::GRU gru_{nullptr};
  torch::nn::RNN rnn_{nullptr};
  torch::nn::AnyModule custom_;  // mLSTM / mGRU stack
};
TORCH_MODULE(RecurrentStack);

}  // namespace distrnn::model
