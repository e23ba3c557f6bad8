// Copies weights between RecurrentStacks whatever their built-in layout (recurrent_stack.h):
// fused "lstm.weight_ih_l1_reverse" and per-layer "layers.1.weight_ih_l0_reverse" are the same
// weight.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <regex>
#include <string>

#include <torch/nn/module.h>
#include <torch/utils.h>

namespace distrnn::model {

// A parameter's name with the layout taken out: "weight_ih_l1_reverse" for both names above.
inline std::string LayoutFreeName(const std::string& name) {
  static const std::regex kPerLayer(R"(^(.*)layers\.(\d+)\.(\w+)_l0(_reverse)?$)");
  static const std::regex kFused(R"(^(.*)(lstm|gru|rnn)\.(\w+)$)");
  std::smatch m;
  if (std::regex_match(name, m, kPerLayer)) return m[1].str() + m[3].str() + "_l" + m[2].str() + m[4].str();
  if (std::regex_match(name, m, kFused)) return m[1].str() + m[3].str();
  return name;
}

inline void CopyStackParameters(const torch::nn::Module& from, torch::nn::Module& to) {
  torch::NoGradGuard no_grad;
  std::map<std::string, at::Tensor> source;
  for (const auto& p : from.named_parameters()) source[LayoutFreeName(p.key())] = p.value();
  ASSERT_EQ(source.size(), to.named_parameters().size());
  for (auto& p : to.named_parameters()) {
    auto it = source.find(LayoutFreeName(p.key()));
    ASSERT_TRUE(it != source.end()) << p.key();
    p.value().copy_(it->second);
  }
}

}  // namespace distrnn::model
