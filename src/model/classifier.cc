#include "model/classifier.h"

#include <ATen/ATen.h>
#include <torch/types.h>
#include <torch/utils.h>

namespace distrnn::model {

ClassifierImpl::ClassifierImpl(const ClassifierConfig& config) : config_(config) {
  TORCH_CHECK(config.Validate().ok(), "invalid classifier config: ", config.Validate().ToString());
  embedding_ = register_module(
      "embedding", torch::nn::Embedding(
                       torch::nn::EmbeddingOptions(config.vocab_size, config.embedding_size).padding_idx(config.padding_idx)));
  dropout_ = register_module("dropout", torch::nn::Dropout(config.dropout));
  StackConfig stack = config.stack;
  stack.input_size = config.embedding_size;
  stack_ = register_module("stack", RecurrentStack(stack));
  output_ = register_module("output",
                            torch::nn::Linear(stack.hidden_size * stack.num_directions(), config.num_classes));
}

torch::Tensor ClassifierImpl::Features(const torch::Tensor& tokens, const torch::Tensor& lengths) {
  TORCH_CHECK(tokens.dim() == 2, "classifier tokens must be [T, B], got ", tokens.sizes());
  TORCH_CHECK(lengths.dim() == 1 && lengths.size(0) == tokens.size(1), "classifier lengths must be [",
              tokens.size(1), "], got ", lengths.sizes());
  const torch::Tensor x = SiteDropout(embedding_(tokens), config_.dropout, is_training(), dropout_key_,
                                     kEmbeddingDropoutSite, 1);  // [T, B, E]
  const torch::Tensor h = std::get<1>(stack_->EncodePadded(x, lengths));
  const StackConfig& sc = stack_->config();
  const int64_t dirs = sc.num_directions();
  // Last layer's h: [D, B, H] -> [B, D*H], features [forward, backward].
  const torch::Tensor last = h.narrow(0, (sc.num_layers - 1) * dirs, dirs);
  return last.permute({1, 0, 2}).reshape({tokens.size(1), dirs * sc.hidden_size});
}

torch::Tensor ClassifierImpl::forward(const torch::Tensor& tokens, const torch::Tensor& lengths) {
  return output_(
      SiteDropout(Features(tokens, lengths), config_.dropout, is_training(), dropout_key_, kOutputDropoutSite, 0));
}

void ClassifierImpl::SetDropoutKey(std::optional<DropoutKey> key) {
  dropout_key_ = key;
  stack_->SetDropoutKey(key);
}

int64_t ClassifierImpl::LoadPretrained(const std::vector<float>& matrix, const std::vector<bool>& found) {
  const int64_t vocab = config_.vocab_size, dim = config_.embedding_size;
  TORCH_CHECK(static_cast<int64_t>(found.size()) == vocab, "pretrained: found has ", found.size(),
              " entries, vocabulary has ", vocab);
  TORCH_CHECK(static_cast<int64_t>(matrix.size()) == vocab * dim, "pretrained: matrix has ", matrix.size(),
              " values, expected ", vocab, " x ", dim);
  std::vector<int64_t> rows;
  for (int64_t v = 0; v < vocab; ++v) {
    if (found[v]) rows.push_back(v);
  }
  if (rows.empty()) return 0;
  const torch::Tensor all = torch::from_blob(const_cast<float*>(matrix.data()), {vocab, dim}, torch::kFloat32);
  const torch::Tensor index = torch::tensor(rows, torch::kInt64);
  torch::NoGradGuard no_grad;
  torch::Tensor& weight = embedding_->weight;
  weight.index_copy_(0, index.to(weight.device()),
                     all.index_select(0, index).to(weight.device(), weight.scalar_type()));
  return static_cast<int64_t>(rows.size());
}

}  // namespace distrnn::model
