#include "model/recurrent_stack.h"

#include <optional>

#include <torch/nn/utils/rnn.h>

namespace distrnn::model {

RecurrentStackImpl::RecurrentStackImpl(const StackConfig& config) : config_(config) {
  // Dropout acts between layers only; with one layer there is none (and torch would warn).
  const double between_layers = config.num_layers > 1 ? config.dropout : 0.0;
  switch (config.cell) {
    case CellType::kLstm:
      lstm_ = register_module("lstm", torch::nn::LSTM(torch::nn::LSTMOptions(config.input_size, config.hidden_size)
                                                          .num_layers(config.num_layers)
                                                          .dropout(between_layers)
                                                          .bidirectional(config.bidirectional)));
      break;
    case CellType::kGru:
      gru_ = register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(config.input_size, config.hidden_size)
                                                       .num_layers(config.num_layers)
                                                       .dropout(between_layers)
                                                       .bidirectional(config.bidirectional)));
      break;
    case CellType::kRnnTanh:
    case CellType::kRnnRelu:
      rnn_ = register_module(
          "rnn", torch::nn::RNN(torch::nn::RNNOptions(config.input_size, config.hidden_size)
                                    .num_layers(config.num_layers)
                                    .dropout(between_layers)
                                    .bidirectional(config.bidirectional)
                                    .nonlinearity(config.cell == CellType::kRnnTanh
                                                      ? torch::nn::RNNOptions::nonlinearity_t(torch::kTanh)
                                                      : torch::nn::RNNOptions::nonlinearity_t(torch::kReLU))));
      break;
    case CellType::kMlstm:
    case CellType::kMgru:
      custom_ = register_module("custom", MultiplicativeStack(config));
      break;
  }
}

RecurrentState RecurrentStackImpl::InitialState(int64_t batch, const torch::TensorOptions& options) const {
  const int64_t layers = config_.num_layers * config_.num_directions();
  RecurrentState state;
  state.h = torch::zeros({layers, batch, config_.hidden_size}, options);
  if (HasCellState(config_.cell)) state.c = torch::zeros({layers, batch, config_.hidden_size}, options);
  return state;
}

std::tuple<torch::Tensor, RecurrentState> RecurrentStackImpl::forward(const torch::Tensor& input,
                                                                      const RecurrentState& state) {
  RecurrentState start = state.defined() ? state : InitialState(input.size(1), input.options());
  if (lstm_) {
    auto [output, hc] = lstm_->forward(input, std::make_tuple(start.h, start.c));
    return {output, RecurrentState{std::get<0>(hc), std::get<1>(hc)}};
  }
  if (gru_) {
    auto [output, h] = gru_->forward(input, start.h);
    return {output, RecurrentState{h, {}}};
  }
  if (rnn_) {
    auto [output, h] = rnn_->forward(input, start.h);
    return {output, RecurrentState{h, {}}};
  }
  return custom_->forward(input, start);
}

std::tuple<torch::Tensor, RecurrentState> RecurrentStackImpl::ForwardPadded(const torch::Tensor& input,
                                                                            const torch::Tensor& lengths,
                                                                            const RecurrentState& state) {
  TORCH_CHECK(input.dim() == 3, "stack input must be [T, B, I], got ", input.sizes());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == input.size(1), "lengths must be [", input.size(1), "], got ",
              lengths.sizes());
  RecurrentState start = state.defined() ? state : InitialState(input.size(1), input.options());
  if (custom_) return custom_->forward(input, start, lengths);

  namespace rnn_utils = torch::nn::utils::rnn;
  const torch::Tensor cpu_lengths = lengths.to(torch::kCPU, torch::kInt64);
  TORCH_CHECK(cpu_lengths.min().item<int64_t>() >= 1 && cpu_lengths.max().item<int64_t>() <= input.size(0),
              "lengths must lie in [1, ", input.size(0), "]");
  // enforce_sorted=false: the modules permute the state into sorted order and back.
  const rnn_utils::PackedSequence packed =
      rnn_utils::pack_padded_sequence(input, cpu_lengths, /*batch_first=*/false, /*enforce_sorted=*/false);
  std::optional<rnn_utils::PackedSequence> packed_out;
  RecurrentState next;
  if (lstm_) {
    auto [out, hc] = lstm_->forward_with_packed_input(packed, std::make_tuple(start.h, start.c));
    packed_out = out;
    next = {std::get<0>(hc), std::get<1>(hc)};
  } else if (gru_) {
    auto [out, h] = gru_->forward_with_packed_input(packed, start.h);
    packed_out = out;
    next.h = h;
  } else {
    auto [out, h] = rnn_->forward_with_packed_input(packed, start.h);
    packed_out = out;
    next.h = h;
  }
  torch::Tensor output = std::get<0>(rnn_utils::pad_packed_sequence(*packed_out, /*batch_first=*/false,
                                                                      /*padding_value=*/0.0, input.size(0)));
  return {output, next};
}

}  // namespace distrnn::model
