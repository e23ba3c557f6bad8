// MultiplicativeStack: L layers of mLSTM or mGRU cells (multiplicative_cells.h),
// optionally bidirectional, dropout between layers in training mode only; the layout
// and semantics of torch::nn::LSTM/GRU for our own cells.
//
// Shapes (time-major, L layers, D = 1 or 2 directions, B batch, H hidden):
//   input  [T, B, I]
//   output [T, B, D*H]: the last layer's h_t, features [forward, backward]
//   state  h [L*D, B, H], c [L*D, B, H] (mLSTM only), index = layer * D + direction
// The backward direction runs over reversed time: its output[t] has seen input[t..T-1].
//
// Variable-length batches: pass `lengths` int64 [B] (1 <= len <= T, any device); steps
// at t >= len[b] are skipped for sequence b (state carried, output zero), so each
// sequence's output and final state equal those of running it alone, unpadded; the
// backward direction of sequence b starts at t = len[b]-1.
#pragma once

#include <memory>
#include <optional>
#include <tuple>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "model/column_dropout.h"
#include "model/model_config.h"
#include "model/multiplicative_cells.h"
#include "model/recurrent_state.h"

namespace distrnn::model {

class MultiplicativeStackImpl : public torch::nn::Module {
 public:
  // config.cell must be kMlstm or kMgru.
  explicit MultiplicativeStackImpl(const StackConfig& config);

  // `state` undefined means zeros; `lengths` undefined means every sequence has length T.
  std::tuple<torch::Tensor, RecurrentState> forward(const torch::Tensor& input, const RecurrentState& state = {},
                                                    const torch::Tensor& lengths = {});

  // Dropout between layers keyed by column (column_dropout.h); nullopt: torch's global RNG.
  void SetDropoutKey(std::optional<DropoutKey> key) { dropout_key_ = key; }

  RecurrentState InitialState(int64_t batch, const torch::TensorOptions& options) const;
  const StackConfig& config() const { return config_; }
  // Cell of `layer` in `direction` (0 forward, 1 backward); registered as "l{layer}" and
  // "l{layer}_reverse".
  MultiplicativeCell& cell(int64_t layer, int64_t direction) const {
    return *cells_.at(layer * config_.num_directions() + direction);
  }

 private:
  StackConfig config_;
  std::optional<DropoutKey> dropout_key_;
  std::vector<std::shared_ptr<MultiplicativeCell>> cells_;  // layer-major, direction-minor
};
TORCH_MODULE(MultiplicativeStack);

}  // namespace distrnn::model
