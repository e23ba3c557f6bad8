// RecurrentState: the hidden state a recurrent stack carries between calls.
// h [L*D, B, H]; c [L*D, B, H] for LSTM-like cells, undefined otherwise
// (L layers, D directions, B batch, H hidden size; layer-major, direction-minor,
// the layout of torch::nn::LSTM / cuDNN).
#pragma once

#include <ATen/core/Tensor.h>

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

}  // namespace distrnn::model
