#include "model/recurrent_stack.h"

#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/utils/rnn.h>

#include "model/fused_lstm_layer.h"

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
  if (UsesFusedLstm(input)) return ForwardByLayer(input, start);
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

torch::Tensor RecurrentStackImpl::CheckedLengths(const torch::Tensor& input, const torch::Tensor& lengths) const {
  TORCH_CHECK(input.dim() == 3, "stack input must be [T, B, I], got ", input.sizes());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == input.size(1), "lengths must be [", input.size(1), "], got ",
              lengths.sizes());
  const torch::Tensor cpu_lengths = lengths.to(torch::kCPU, torch::kInt64);
  TORCH_CHECK(cpu_lengths.min().item<int64_t>() >= 1 && cpu_lengths.max().item<int64_t>() <= input.size(0),
              "lengths must lie in [1, ", input.size(0), "]");
  return cpu_lengths;
}

std::tuple<torch::Tensor, RecurrentState> RecurrentStackImpl::ForwardPadded(const torch::Tensor& input,
                                                                            const torch::Tensor& lengths,
                                                                            const RecurrentState& state) {
  const torch::Tensor cpu_lengths = CheckedLengths(input, lengths);
  RecurrentState start = state.defined() ? state : InitialState(input.size(1), input.options());
  if (custom_) return custom_->forward(input, start, lengths);

  const int64_t steps = input.size(0);
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

bool RecurrentStackImpl::UsesFusedLstm(const torch::Tensor& input) const {
  return config_.fused_cpu_lstm && !lstm_.empty() && input.device().is_cpu();
}

std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> RecurrentStackImpl::RunLayerDirection(
    int64_t layer, int64_t direction, const torch::Tensor& x, const torch::Tensor& h, const torch::Tensor& c) {
  // The fused module holds every layer; the per-layer layout holds layer l as module l's layer 0.
  const int64_t group = per_layer() ? layer : 0;
  const int64_t module_layer = per_layer() ? 0 : layer;
  const std::string suffix = std::to_string(module_layer) + (direction == 1 ? "_reverse" : "");
  torch::nn::Module& module = !lstm_.empty()  ? static_cast<torch::nn::Module&>(*lstm_[group])
                              : !gru_.empty() ? static_cast<torch::nn::Module&>(*gru_[group])
                                              : static_cast<torch::nn::Module&>(*rnn_[group]);
  const auto named = module.named_parameters(/*recurse=*/false);
  const std::vector<torch::Tensor> params = {named["weight_ih_l" + suffix], named["weight_hh_l" + suffix],
                                             named["bias_ih_l" + suffix], named["bias_hh_l" + suffix]};
  const bool train = is_training();
  if (UsesFusedLstm(x)) {
    auto [y, h_end, c_end] = FusedLstmLayer(x, h.squeeze(0), c.squeeze(0), params[0], params[1], params[2], params[3]);
    return {y, h_end.unsqueeze(0), c_end.unsqueeze(0)};
  }
  if (!lstm_.empty()) {
    return torch::lstm(x, {h, c}, params, /*has_biases=*/true, /*num_layers=*/1, /*dropout=*/0.0, train,
                       /*bidirectional=*/false, /*batch_first=*/false);
  }
  std::tuple<torch::Tensor, torch::Tensor> out;
  if (!gru_.empty()) {
    out = torch::gru(x, h, params, true, 1, 0.0, train, false, false);
  } else if (config_.cell == CellType::kRnnTanh) {
    out = torch::rnn_tanh(x, h, params, true, 1, 0.0, train, false, false);
  } else {
    out = torch::rnn_relu(x, h, params, true, 1, 0.0, train, false, false);
  }
  return {std::get<0>(out), std::get<1>(out), torch::Tensor()};
}

std::tuple<torch::Tensor, RecurrentState> RecurrentStackImpl::ForwardByLayer(const torch::Tensor& input,
                                                                             const RecurrentState& start) {
  torch::Tensor x = input;
  std::vector<torch::Tensor> hs, cs;  // [1, B, H] each, index layer * D + direction
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    if (layer > 0 && per_layer()) {
      x = SiteDropout(x, config_.dropout, is_training(), dropout_key_, BetweenLayersDropoutSite(layer), 1);
    }
    std::vector<torch::Tensor> outputs;
    for (int64_t d = 0; d < config_.num_directions(); ++d) {
      const int64_t index = layer * config_.num_directions() + d;
      // The reverse direction is the forward recurrence over the window reversed in time.
      auto [y, h, c] = RunLayerDirection(layer, d, d == 0 ? x : x.flip(0), start.h.narrow(0, index, 1),
                                         start.c.narrow(0, index, 1));
      outputs.push_back(d == 0 ? y : y.flip(0));
      hs.push_back(h);
      cs.push_back(c);
    }
    x = outputs.size() == 1 ? outputs[0] : torch::cat(outputs, 2);
  }
  return {x, RecurrentState{torch::cat(hs, 0), torch::cat(cs, 0)}};
}

std::tuple<torch::Tensor, torch::Tensor> RecurrentStackImpl::EncodePadded(const torch::Tensor& input,
                                                                        const torch::Tensor& lengths,
                                                                        const RecurrentState& state) {
  if (custom_ || !input.device().is_cpu()) {  // cuDNN runs packed input as one fused call
    auto [output, end] = ForwardPadded(input, lengths, state);
    return {output, end.h};
  }
  const torch::Tensor len = CheckedLengths(input, lengths);
  const RecurrentState start = state.defined() ? state : InitialState(input.size(1), input.options());
  const int64_t steps = input.size(0), batch = input.size(1), dirs = config_.num_directions();
  const torch::TensorOptions index_options = torch::dtype(torch::kInt64);
  // Flat [T*B] row indices: `reversed` maps (t, b) to (len_b - 1 - t, b) inside each sequence
  // (padding stays put; the map is its own inverse), `ends` picks (len_b - 1, b).
  const torch::Tensor t = torch::arange(steps, index_options).unsqueeze(1);
  const torch::Tensor b = torch::arange(batch, index_options).unsqueeze(0);
  const torch::Tensor valid = t < len.unsqueeze(0);  // [T, B]
  const torch::Tensor reversed = (torch::where(valid, len.unsqueeze(0) - 1 - t, t) * batch + b).reshape({-1});
  const torch::Tensor ends = (len - 1) * batch + b.squeeze(0);
  auto reverse = [&](const torch::Tensor& y) {
    return y.reshape({steps * batch, y.size(2)}).index_select(0, reversed).view({steps, batch, y.size(2)});
  };
  torch::Tensor x = input;
  std::vector<torch::Tensor> hs;  // [B, H] each, index layer * D + direction
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    // As ForwardPadded: our dropout between layers in the per-layer layout, on the padded layout.
    if (layer > 0 && per_layer()) {
      x = SiteDropout(x, config_.dropout, is_training(), dropout_key_, BetweenLayersDropoutSite(layer), 1);
    }
    std::vector<torch::Tensor> outputs;
    for (int64_t d = 0; d < dirs; ++d) {
      const int64_t index = layer * dirs + d;
      const torch::Tensor h = start.h.narrow(0, index, 1);
      const torch::Tensor c = start.c.defined() ? start.c.narrow(0, index, 1) : torch::Tensor();
      // Forward: padding after each end cannot reach the steps before it. Reverse: the forward
      // recurrence over each sequence reversed within its length, then mapped back.
      const torch::Tensor y = std::get<0>(RunLayerDirection(layer, d, d == 0 ? x : reverse(x), h, c));
      hs.push_back(y.reshape({steps * batch, y.size(2)}).index_select(0, ends));
      outputs.push_back(d == 0 ? y : reverse(y));
    }
    x = dirs == 1 ? outputs[0] : torch::cat(outputs, 2);
  }
  return {x * valid.unsqueeze(2).to(x.dtype()), torch::stack(hs, 0)};
}

}  // namespace distrnn::model
