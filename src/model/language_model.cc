#include "model/language_model.h"

#include <torch/nn/init.h>

#include "model/fused_linear_cross_entropy.h"

namespace distrnn::model {

LanguageModelImpl::LanguageModelImpl(const LanguageModelConfig& config) : config_(config) {
  embedding_ = register_module("embedding", torch::nn::Embedding(config.vocab_size, config.embedding_size));
  dropout_ = register_module("dropout", torch::nn::Dropout(config.dropout));
  StackConfig stack = config.stack;
  stack.input_size = config.embedding_size;
  stack_ = register_module("stack", RecurrentStack(stack));
  const int64_t features = stack.hidden_size * stack.num_directions();
  if (config.tie_weights) {
    // The decoder reuses the embedding matrix [V, E]: one tensor, one gradient.
    tied_bias_ = register_parameter("decoder_bias", torch::empty({config.vocab_size}));
  } else {
    decoder_ = register_module("decoder", torch::nn::Linear(features, config.vocab_size));
  }
  torch::NoGradGuard no_grad;
  if (config.torch_init) {
    // The modules initialised themselves on construction; only the bare bias is ours.
    if (tied_bias_.defined()) tied_bias_.zero_();
    return;
  }
  for (auto& p : parameters()) p.uniform_(-config.init_scale, config.init_scale);
}

void LanguageModelImpl::SetDropoutKey(std::optional<DropoutKey> key) {
  dropout_key_ = key;
  stack_->SetDropoutKey(key);
}

std::tuple<torch::Tensor, RecurrentState> LanguageModelImpl::ForwardFeatures(const torch::Tensor& tokens,
                                                                             const RecurrentState& state) {
  const double p = config_.dropout;
  torch::Tensor x = SiteDropout(embedding_(tokens), p, is_training(), dropout_key_, kEmbeddingDropoutSite, 1);
  auto [output, next] = stack_(x, state);
  output = SiteDropout(output, p, is_training(), dropout_key_, kOutputDropoutSite, 1);
  return {output, next};
}

std::tuple<torch::Tensor, RecurrentState> LanguageModelImpl::forward(const torch::Tensor& tokens,
                                                                     const RecurrentState& state) {
  auto [output, next] = ForwardFeatures(tokens, state);
  torch::Tensor logits = decoder_ ? decoder_(output) : torch::linear(output, embedding_->weight, tied_bias_);
  return {logits, next};
}

std::tuple<torch::Tensor, RecurrentState> LanguageModelImpl::SummedLoss(const torch::Tensor& tokens,
                                                                        const torch::Tensor& targets,
                                                                        const RecurrentState& state,
                                                                        int64_t chunk_rows) {
  auto [output, next] = ForwardFeatures(tokens, state);
  const torch::Tensor& weight = decoder_ ? decoder_->weight : embedding_->weight;
  const torch::Tensor& bias = decoder_ ? decoder_->bias : tied_bias_;
  torch::Tensor loss = FusedLinearCrossEntropy(output.reshape({-1, output.size(-1)}), weight, bias,
                                               targets.reshape({-1}).to(output.device()), chunk_rows);
  return {loss, next};
}

}  // namespace distrnn::model
