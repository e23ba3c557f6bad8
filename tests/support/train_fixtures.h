// Shared fixtures of the training equivalence tests (tests/comm device suites, tests/mpi):
// a generated token stream, a small LM config, trainer settings, and one training run.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "model/language_model.h"
#include "train/train_task.h"
#include "train/trainer.h"

namespace distrnn::testing {

// A learnable token stream in [0, vocab): mostly the successor of the previous token, one
// position in `random_every` (by a seeded generator) a random token.
std::vector<int64_t> SuccessorTokens(int64_t n, uint64_t seed, int64_t vocab, int random_every);

// A 2-layer LM for the training tests: `dropout` on the embedding, between the layers and on the output.
model::LanguageModelConfig TwoLayerLmConfig(int64_t vocab, model::CellType cell, int64_t embedding_size,
                                            int64_t hidden_size, double dropout);

// Trainer settings of the LM equivalence tests: the Zaremba schedule (lr 1, halved after
// each epoch), clip norm 5, no progress lines, no warm-up, no test evaluation.
train::TrainerConfig ZarembaTrainerConfig(int64_t batch_size, int64_t max_epochs, int64_t max_steps);

// A model trained by a test and what the Trainer returned (or why it did not run).
struct TrainedModel {
  model::LanguageModel model{nullptr};
  absl::StatusOr<train::TrainResult> result = absl::UnknownError("not run");
  std::vector<at::Tensor> parameters() const { return model->parameters(); }
};

// Collective on `comm`: trains `task` with the one Trainer; a task that failed to build is its error.
absl::StatusOr<train::TrainResult> RunTrainer(comm::Communicator& comm,
                                              absl::StatusOr<std::unique_ptr<train::TrainTask>> task,
                                              const train::TrainerConfig& config);

// The records of a run dir's metrics.jsonl, all or those of one "type".
std::vector<nlohmann::json> ReadMetrics(const std::string& run_dir, const std::string& type = "");

}  // namespace distrnn::testing
