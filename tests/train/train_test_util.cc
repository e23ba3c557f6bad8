#include "train/train_test_util.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
#include <sstream>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace distrnn::train::fixtures {

namespace fs = std::filesystem;

std::vector<int64_t> CyclicTokens(int64_t n, int64_t period) {
  std::vector<int64_t> tokens(n);
  for (int64_t i = 0; i < n; ++i) tokens[i] = i % period;
  return tokens;
}

std::vector<int64_t> RandomTokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<int64_t> tokens(n);
  for (auto& t : tokens) t = static_cast<int64_t>(rng() % static_cast<uint64_t>(vocab));
  return tokens;
}

data::ClassificationDataset MarkerTask(int64_t n, uint64_t seed) {
  constexpr int64_t kMarker = 3;
  std::mt19937_64 rng(seed);
  data::ClassificationDataset d;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = 3 + static_cast<int64_t>(rng() % 8);
    std::vector<int64_t> seq(len);
    for (auto& t : seq) {
      do t = 1 + static_cast<int64_t>(rng() % 9); while (t == kMarker);
    }
    const int64_t label = i % 2;
    if (label == 1) seq[rng() % len] = kMarker;
    d.sequences.push_back(seq);
    d.labels.push_back(label);
  }
  return d;
}

model::LanguageModelConfig TinyLm(int64_t vocab, int64_t hidden, int64_t layers, double dropout) {
  model::LanguageModelConfig c;
  c.vocab_size = vocab;
  c.embedding_size = hidden;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = hidden;
  c.stack.hidden_size = hidden;
  c.stack.num_layers = layers;
  c.stack.dropout = dropout;
  c.dropout = dropout;
  c.init_scale = 0.1;
  return c;
}

model::ClassifierConfig TinyClassifier(int64_t hidden, int64_t layers, double dropout) {
  model::ClassifierConfig c;
  c.vocab_size = kMarkerVocab;
  c.embedding_size = 8;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = 8;
  c.stack.hidden_size = hidden;
  c.stack.num_layers = layers;
  c.stack.dropout = dropout;
  c.dropout = dropout;
  c.num_classes = 1;
  c.padding_idx = 0;
  return c;
}

nlohmann::json LmMeta(const std::string& task, const model::LanguageModelConfig& config) {
  return {{"task", task},
          {"cell", model::CellTypeName(config.stack.cell)},
          {"num_layers", config.stack.num_layers},
          {"hidden_size", config.stack.hidden_size},
          {"embedding_size", config.embedding_size},
          {"tie_weights", config.tie_weights},
          {"dropout", config.dropout},
          {"vocab_size", config.vocab_size}};
}

nlohmann::json ClassifierMeta(const model::ClassifierConfig& config) {
  return {{"task", "imdb"},
          {"cell", model::CellTypeName(config.stack.cell)},
          {"num_layers", config.stack.num_layers},
          {"hidden_size", config.stack.hidden_size},
          {"bidirectional", config.stack.bidirectional},
          {"embedding_size", config.embedding_size},
          {"dropout", config.dropout},
          {"num_classes", config.num_classes},
          {"padding_idx", config.padding_idx},
          {"vocab_size", config.vocab_size}};
}

TrainerConfig QuietConfig(int64_t batch_size) {
  TrainerConfig c;
  c.batch_size = batch_size;
  c.log_every = 1000000;
  c.warmup_steps = 0;
  c.evaluate_test = false;
  c.keep_checkpoints = 2;
  return c;
}

std::vector<at::Tensor> CloneParams(torch::nn::Module& module) {
  std::vector<at::Tensor> out;
  for (const auto& p : module.parameters()) out.push_back(p.detach().clone());
  return out;
}

double MaxAbsDiff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double worst = 0.0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!a[i].sizes().equals(b[i].sizes())) return std::numeric_limits<double>::infinity();
    if (a[i].numel() == 0) continue;
    worst = std::max(worst, (a[i].to(at::kDouble) - b[i].to(at::kDouble)).abs().max().item<double>());
  }
  return worst;
}

bool AllEqual(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!at::equal(a[i], b[i])) return false;
  }
  return true;
}

std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::map<std::string, std::string> SnapshotDir(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.is_regular_file()) files[entry.path().filename().string()] = ReadBytes(entry.path().string());
  }
  return files;
}

std::vector<std::string> StepFiles(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint-", 0) == 0) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}


}  // namespace distrnn::train::fixtures
