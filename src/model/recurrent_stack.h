// RecurrentStack: L layers of one cell type, optionally bidirectional, dropout between
// layers. Built-in cells use libtorch's modules (cuDNN on CUDA); mLSTM/mGRU use our own cells.
//
// Shapes (time-major): input [T, B, I] -> output [T, B, D*H], D = 1 or 2 directions.
// State: h [L*D, B, H]; c [L*D, B, H] for LSTM-like cells, undefined otherwise.
// Variable-length batches (ForwardPadded): input padded to T, lengths int64 [B]; built-in
// cells go through pack_padded_sequence, ours skip the padded steps (same result).
//
// Built-in layouts. libtorch's multi-layer LSTM/GRU/RNN draws its inter-layer dropout from
// torch's global RNG inside the fused kernel, so data-parallel ranks could not reproduce one
// process's masks (column_dropout.h). Hence with L > 1 and dropout > 0 the stack is L
// single-layer modules registered as "layers.<l>" (each bidirectional if asked), with our
// dropout between them; otherwise one fused module ("lstm", "gru" or "rnn"): fused cuDNN
// calls, and the parameter names of checkpoints written before the per-layer layout existed.
// The state layout is [L*D, B, H] (index layer*D + direction) either way.
//
// StackConfig::fused_cpu_lstm runs an LSTM on the CPU one layer and direction at a time through
// FusedLstmLayer (fused_lstm_layer.h) instead of libtorch's kernels, the parameters unchanged.
#pragma once

#include <optional>
#include <tuple>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/rnn.h>

#include "model/column_dropout.h"
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

  // What a classifier needs from a padded batch: ForwardPadded's output and the final h
  // [L*D, B, H] (the final c is not formed). On CPU, built-in cells run unpacked through
  // libtorch's fused layer (oneDNN), one layer and direction per call, the reverse direction on
  // each sequence reversed within its length, and h is gathered from the output at each
  // sequence's end. Why: for packed input libtorch's CPU RNNs run per-step kernels, ~10x
  // slower than the fused layer (README, "IMDB speed"; the other half of that speed-up is
  // flushing denormals, common/runtime.h). Same values and gradients as ForwardPadded (test);
  // other cells and CUDA (where cuDNN runs packed input fused) use ForwardPadded.
  std::tuple<torch::Tensor, torch::Tensor> EncodePadded(const torch::Tensor& input, const torch::Tensor& lengths,
                                                        const RecurrentState& state = {});

  // Dropout between layers keyed by column (column_dropout.h); nullopt: torch's global RNG.
  void SetDropoutKey(std::optional<DropoutKey> key);

  // Zero state for `batch` sequences on `options`' device and dtype.
  RecurrentState InitialState(int64_t batch, const torch::TensorOptions& options) const;
  const StackConfig& config() const { return config_; }
  // Built-in cells as one single-layer module per layer ("layers.<l>") rather than one fused module.
  bool per_layer() const { return groups() > 1; }
  // The mLSTM/mGRU stack (null for built-in cells).
  const MultiplicativeStack& multiplicative_stack() const { return custom_; }

 private:
  using Packed = torch::nn::utils::rnn::PackedSequence;
  void BuildBuiltin();
  int64_t groups() const;  // built-in modules: 1 fused, or L single-layer
  RecurrentState GroupState(const RecurrentState& state, int64_t group) const;
  std::tuple<torch::Tensor, RecurrentState> RunGroup(int64_t group, const torch::Tensor& x, const RecurrentState& s);
  std::tuple<Packed, RecurrentState> RunGroupPacked(int64_t group, const Packed& x, const RecurrentState& s);
  // One layer, one direction of a built-in cell over [T, B, I] from state (h, c) [1, B, H]:
  // its output [T, B, H] and final h, c [1, B, H] (c undefined for GRU/RNN).
  std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> RunLayerDirection(int64_t layer, int64_t direction,
                                                                            const torch::Tensor& x,
                                                                            const torch::Tensor& h,
                                                                            const torch::Tensor& c);
  // config_.fused_cpu_lstm applies: an LSTM on the CPU.
  bool UsesFusedLstm(const torch::Tensor& input) const;
  // forward() one layer and direction at a time (through RunLayerDirection).
  std::tuple<torch::Tensor, RecurrentState> ForwardByLayer(const torch::Tensor& input, const RecurrentState& start);
  // lengths as CPU int64 after checking them against input [T, B, I].
  torch::Tensor CheckedLengths(const torch::Tensor& input, const torch::Tensor& lengths) const;

  StackConfig config_;
  std::optional<DropoutKey> dropout_key_;
  // Built-in cells: one entry per group, the fused module or layer l's module.
  std::vector<torch::nn::LSTM> lstm_;
  std::vector<torch::nn::GRU> gru_;
  std::vector<torch::nn::RNN> rnn_;
  MultiplicativeStack custom_{nullptr};  // mLSTM / mGRU stack
};
TORCH_MODULE(RecurrentStack);

}  // namespace distrnn::model
