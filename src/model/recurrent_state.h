// RecurrentState: the hidden state a recurrent stack carries between calls.
// h [L*D, B, H]; c [L*D, B, H] for LSTM-like cells, undefined otherwise
// (L layers, D directions, B batch, H hidden size; layer-major, direction-minor,
// the layout of torch::nn::LSTM / cuDNN).
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/zeros.h>

#include "model/model_config.h"

namespace distrnn::model {

struct RecurrentState {
  at::Tensor h;
  at::Tensor c;

  bool defined() const { return h.defined(); }
  // Cut the graph between BPTT windows: same values, no history.
  RecurrentState Detached() const {
    return {h.defined() ? h.detach() : h, c.defined() ? c.detach() : c};
  }
};

// The zero state of a stack of `config` for `batch` sequences (c only for LSTM-like cells).
inline RecurrentState ZeroState(const StackConfig& config, int64_t batch, const at::TensorOptions& options) {
  const int64_t layers = config.num_layers * config.num_directions();
  RecurrentState state;
  state.h = at::zeros({layers, batch, config.hidden_size}, options);
  if (HasCellState(config.cell)) state.c = at::zeros({layers, batch, config.hidden_size}, options);
  return state;
}

}  // namespace distrnn::model
