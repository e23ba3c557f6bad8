#include "model/multiplicative_stack.h"

#include <string>

#include <ATen/ATen.h>
#include <torch/types.h>

namespace distrnn::model {

MultiplicativeStackImpl::MultiplicativeStackImpl(const StackConfig& config) : config_(config) {
  TORCH_CHECK(config.cell == CellType::kMlstm || config.cell == CellType::kMgru,
              "MultiplicativeStack takes mlstm or mgru, got ", CellTypeName(config.cell));
  TORCH_CHECK(config.num_layers >= 1, "num_layers must be positive, got ", config.num_layers);
  const int64_t dirs = config.num_directions();
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    const int64_t in = layer == 0 ? config.input_size : dirs * config.hidden_size;
    for (int64_t d = 0; d < dirs; ++d) {
      std::shared_ptr<MultiplicativeCell> cell;
      if (config.cell == CellType::kMlstm) {
        cell = std::make_shared<MlstmCell>(in, config.hidden_size);
      } else {
        cell = std::make_shared<MgruCell>(in, config.hidden_size);
      }
      cells_.push_back(register_module("l" + std::to_string(layer) + (d == 1 ? "_reverse" : ""), cell));
    }
  }
}

RecurrentState MultiplicativeStackImpl::InitialState(int64_t batch, const torch::TensorOptions& options) const {
  return ZeroState(config_, batch, options);
}

std::tuple<torch::Tensor, RecurrentState> MultiplicativeStackImpl::forward(const torch::Tensor& input,
                                                                           const RecurrentState& state,
                                                                           const torch::Tensor& lengths) {
  TORCH_CHECK(input.dim() == 3 && input.size(2) == config_.input_size, "stack input must be [T, B, ",
              config_.input_size, "], got ", input.sizes());
  const int64_t steps = input.size(0), batch = input.size(1), dirs = config_.num_directions();
  const RecurrentState start = state.defined() ? state : InitialState(batch, input.options());
  const bool lstm = HasCellState(config_.cell);
  const std::vector<int64_t> shape_storage = {config_.num_layers * dirs, batch, config_.hidden_size};
  const c10::IntArrayRef state_shape(shape_storage);
  TORCH_CHECK(start.h.sizes().equals(state_shape), "stack state h must be ", state_shape, ", got ", start.h.sizes());
  TORCH_CHECK(!lstm || (start.c.defined() && start.c.sizes().equals(state_shape)), "mlstm state c must be ", state_shape);

  torch::Tensor mask;  // [T, B, 1] bool: step t is inside sequence b
  if (lengths.defined()) {
    TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == batch, "lengths must be [", batch, "], got ",
                lengths.sizes());
    const torch::Tensor len = lengths.to(input.device(), torch::kInt64);
    TORCH_CHECK(len.min().item<int64_t>() >= 1 && len.max().item<int64_t>() <= steps,
                "lengths must lie in [1, ", steps, "]");
    mask = (torch::arange(steps, len.options()).unsqueeze(1) < len.unsqueeze(0)).unsqueeze(2);
  }

  std::vector<torch::Tensor> hs, cs;
  torch::Tensor x = input;
  for (int64_t layer = 0; layer < config_.num_layers; ++layer) {
    if (layer > 0) {
      x = SiteDropout(x, config_.dropout, is_training(), dropout_key_, BetweenLayersDropoutSite(layer), 1);
    }
    std::vector<torch::Tensor> outs;
    for (int64_t d = 0; d < dirs; ++d) {
      const int64_t index = layer * dirs + d;
      CellSequenceOutput r = cells_[index]->Run(x, start.h[index], lstm ? start.c[index] : torch::Tensor(),
                                                /*reverse=*/d == 1, mask);
      outs.push_back(r.output);
      hs.push_back(r.h);
      if (lstm) cs.push_back(r.c);
    }
    x = dirs == 1 ? outs[0] : torch::cat(outs, 2);
  }
  RecurrentState next{torch::stack(hs, 0), lstm ? torch::stack(cs, 0) : torch::Tensor()};
  return {x, next};
}

}  // namespace distrnn::model
