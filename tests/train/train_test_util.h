// Shared fixtures of the train tests: tiny generated data, tiny model configs, the
// checkpoint metadata the app would write, and helpers to compare parameters, read run
// directories and metrics.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "data/classification_batcher.h"
#include "model/model_config.h"
#include "support/train_fixtures.h"
#include "train/trainer.h"

namespace torch::nn {
class Module;
}

namespace distrnn::train::fixtures {

// ---- data -----------------------------------------------------------------------------

// 0 1 2 ... period-1 0 1 2 ...: a deterministic successor, learnable by a tiny LSTM.
std::vector<int64_t> CyclicTokens(int64_t n, int64_t period);
// Tokens in [0, vocab) from a fixed generator: no structure, so the hidden state carries
// real information (a test that drops it sees different gradients).
std::vector<int64_t> RandomTokens(int64_t n, int64_t vocab, uint64_t seed);

// Binary classification: label 1 iff the marker word 3 occurs; lengths 3..10, words 1..9,
// 0 = <pad>. Balanced (label = i % 2).
inline constexpr int64_t kMarkerVocab = 10;
data::ClassificationDataset MarkerTask(int64_t n, uint64_t seed);

// ---- models ---------------------------------------------------------------------------

model::LanguageModelConfig TinyLm(int64_t vocab, int64_t hidden, int64_t layers, double dropout);
model::ClassifierConfig TinyClassifier(int64_t hidden, int64_t layers, double dropout);

// What src/app writes as a task's Meta() (app/lm_checkpoint.cc, app/imdb_task.cc), with
// the vocabulary's size standing in for its words.
nlohmann::json LmMeta(const std::string& task, const model::LanguageModelConfig& config);
nlohmann::json ClassifierMeta(const model::ClassifierConfig& config);

// A config for tiny runs: no test pass, no run dir, one progress line per epoch.
TrainerConfig QuietConfig(int64_t batch_size);

// ---- parameters -----------------------------------------------------------------------

std::vector<at::Tensor> CloneParams(torch::nn::Module& module);
// Largest |a - b| over all elements (+inf when the shapes or counts differ).
double MaxAbsDiff(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b);
// torch::equal for every tensor (bit for bit).
bool AllEqual(const std::vector<at::Tensor>& a, const std::vector<at::Tensor>& b);

// ---- files ----------------------------------------------------------------------------

std::string ReadBytes(const std::string& path);
void WriteBytes(const std::string& path, const std::string& bytes);
// name -> contents of every regular file of `dir` (not recursive).
std::map<std::string, std::string> SnapshotDir(const std::string& dir);
// The step checkpoint file names present in `dir`, sorted.
std::vector<std::string> StepFiles(const std::string& dir);
// <run_dir>/metrics.jsonl, one object per line; only records of `type` when not empty.
using testing::ReadMetrics;  // tests/support/train_fixtures.h

}  // namespace distrnn::train::fixtures
