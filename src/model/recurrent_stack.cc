#include "model/recurrent_stack.h"

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/utils/rnn.h>

namespace distrnn::model {

namespace {

namespace rnn_utils = torch::nn::utils::rnn;

// Per-group final states -> [L*D, B, H]: groups are layers in order, so concatenation keeps
// index = layer*D + direction.
RecurrentState Concat(const std::vector<RecurrentState>& ends) {
  if (ends.size() == 1) return ends[0];
  std::vector<torch::Tensor> hs, cs;
  for (const RecurrentState& s : ends) {
    hs.push_back(s.h);
    if (s.c.defined()) cs.push_back(s.c);
  }
  return {torch::cat(hs, 0), cs.empty() ? torch::Tensor() : torch::cat(cs, 0)};
}

}  // namespace

RecurrentStackImpl::RecurrentStackImpl(const StackConfig& config) : config_(config) {
  if (config.cell == CellType::kMlstm || config.cell == CellType::kMgru) {
    custom_ = register_module("custom", MultiplicativeStack(config));
  } else {
    BuildBuiltin();
  }
}

void RecurrentStackImpl::BuildBuiltin() {
  const StackConfig& c = config_;
  const bool split = c.num_layers > 1 && c.dropout > 0.0;  // see "Built-in layouts" in the header
  const int64_t groups = split ? c.num_layers : 1;
  const int64_t layers = split ? 1 : c.num_layers;
  torch::nn::ModuleList list;
  for (int64_t g = 0; g < groups; ++g) {
    const int64_t in = g == 0 ? c.input_size : c.num_directions() * c.hidden_size;
    std::shared_ptr<torch::nn::Module> module;
    const char* name = "rnn";
    // No dropout inside the modules: a fused stack has none to apply, a split one gets ours.
    if (c.cell == CellType::kLstm) {
      lstm_.push_back(torch::nn::LSTM(
          torch::nn::LSTMOptions(in, c.hidden_size).num_layers(layers).bidirectional(c.bidirectional)));
      module = lstm_.back().ptr();
      name = "lstm";
    } else if (c.cell == CellType::kGru) {
      gru_.push_back(torch::nn::GRU(
          torch::nn::GRUOptions(in, c.hidden_size).num_layers(layers).bidirectional(c.bidirectional)));
      module = gru_.back().ptr();
      name = "gru";
    } else {
      rnn_.push_back(torch::nn::RNN(torch::nn::RNNOptions(in, c.hidden_size)
                                        .num_layers(layers)
                                        .bidirectional(c.bidirectional)
                                        .nonlinearity(c.cell == CellType::kRnnTanh
                                                          ? torch::nn::RNNOptions::nonlinearity_t(torch::kTanh)
                                                          : torch::nn::RNNOptions::nonlinearity_t(torch::kReLU))));
      module = rnn_.back().ptr();
    }
    if (split) {
      list->push_back(module);
    } else {
      register_module(name, module);
    }
  }
  if (split) register_module("layers", list);
}

int64_t RecurrentStackImpl::groups() const {
  return static_cast<int64_t>(lstm_.size() + gru_.size() + rnn_.size());
}

void RecurrentStackImpl::SetDropoutKey(std::optional<DropoutKey> key) {
  dropout_key_ = key;
  if (custom_) custom_->SetDropoutKey(key);
}

RecurrentState RecurrentStackImpl::InitialState(int64_t batch, const torch::TensorOptions& options) const {
  return ZeroState(config_, batch, options);
}

RecurrentState RecurrentStackImpl::GroupState(const RecurrentState& state, int64_t group) const {
  if (groups() == 1) return state;
  const int64_t dirs = config_.num_directions();
  return {state.h.narrow(0, group * dirs, dirs), state.c.defined() ? state.c.narrow(0, group * dirs, dirs) : state.c};
}

std::tuple<torch::Tensor, RecurrentState> RecurrentStackImpl::RunGroup(int64_t group, const torch::Tensor& x,
                                                                       const RecurrentState& s) {
  if (!lstm_.empty()) {
    auto [output, hc] = lstm_[group]->forward(x, std::make_tuple(s.h, s.c));
    return {output, RecurrentState{std::get<0>(hc), std::get<1>(hc)}};
  }
  auto [output, h] = !gru_.empty() ? gru_[group]->forward(x, s.h) : rnn_[group]->forward(x, s.h);
  return {output, RecurrentState{h, {}}};
}

std::tuple<RecurrentStackImpl::Packed, RecurrentState> RecurrentStackImpl::RunGroupPacked(int64_t group,
                                                                                          const Packed& x,
                                                                                          const RecurrentState& s) {
  if (!lstm_.empty()) {
    auto [output, hc] = lstm_[group]->forward_with_packed_input(x, std::make_tuple(s.h, s.c));
    return {output, RecurrentState{std::get<0>(hc), std::get<1>(hc)}};
  }
  auto [output, h] = !gru_.empty() ? gru_[group]->forward_with_packed_input(x, s.h)
                                   : rnn_[group]->forward_with_packed_input(x, s.h);
  return {output, RecurrentState{h, {}}};
}

std::tuple<torch::Tensor, RecurrentState> RecurrentStackImpl::forward(const torch::Tensor& input,
                                                                      const RecurrentState& state) {
  RecurrentState start = state.defined() ? state : InitialState(input.size(1), input.options());
  if (custom_) return custom_->forward(input, start);
  torch::Tensor x = input;
  std::vector<RecurrentState> ends;
  for (int64_t g = 0; g < groups(); ++g) {
    // g > 0 only in the per-layer layout, where group g is layer g.
    if (g > 0) x = SiteDropout(x, config_.dropout, is_training(), dropout_key_, BetweenLayersDropoutSite(g), 1);
    auto [output, end] = RunGroup(g, x, GroupState(start, g));
    x = output;
    ends.push_back(end);
  }
  return {x, Concat(ends)};
}

std::tuple<torch::Tensor, RecurrentState> RecurrentStackImpl::ForwardPadded(const torch::Tensor& input,
                                                                            const torch::Tensor& lengths,
                                                                            const RecurrentState& state) {
  TORCH_CHECK(input.dim() == 3, "stack input must be [T, B, I], got ", input.sizes());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == input.size(1), "lengths must be [", input.size(1), "], got ",
              lengths.sizes());
  RecurrentState start = state.defined() ? state : InitialState(input.size(1), input.options());
  if (custom_) return custom_->forward(input, start, lengths);

  const int64_t steps = input.size(0);
  const torch::Tensor cpu_lengths = lengths.to(torch::kCPU, torch::kInt64);
  TORCH_CHECK(cpu_lengths.min().item<int64_t>() >= 1 && cpu_lengths.max().item<int64_t>() <= steps,
              "lengths must lie in [1, ", steps, "]");
  // enforce_sorted=false: the modules permute the state into sorted order and back.
  Packed packed = rnn_utils::pack_padded_sequence(input, cpu_lengths, /*batch_first=*/false, /*enforce_sorted=*/false);
  std::vector<RecurrentState> ends;
  for (int64_t g = 0; g < groups(); ++g) {
    if (g > 0 && is_training()) {
      // The column mask is defined on the padded [T, B, D*H] layout (column_dropout.h).
      torch::Tensor padded = std::get<0>(rnn_utils::pad_packed_sequence(packed, /*batch_first=*/false,
                                                                         /*padding_value=*/0.0, steps));
      padded = SiteDropout(padded, config_.dropout, true, dropout_key_, BetweenLayersDropoutSite(g), 1);
      packed = rnn_utils::pack_padded_sequence(padded, cpu_lengths, /*batch_first=*/false, /*enforce_sorted=*/false);
    }
    auto [output, end] = RunGroupPacked(g, packed, GroupState(start, g));
    packed = output;
    ends.push_back(end);
  }
  torch::Tensor output =
      std::get<0>(rnn_utils::pad_packed_sequence(packed, /*batch_first=*/false, /*padding_value=*/0.0, steps));
  return {output, Concat(ends)};
}

}  // namespace distrnn::model
