#include "support/train_fixtures.h"

#include <fstream>
#include <utility>

namespace distrnn::testing {

std::vector<int64_t> SuccessorTokens(int64_t n, uint64_t seed, int64_t vocab, int random_every) {
  std::vector<int64_t> tokens(n);
  uint64_t x = seed;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t next = i == 0 ? 0 : (tokens[i - 1] + 1) % vocab;
    tokens[i] = (x >> 33) % random_every == 0 ? static_cast<int64_t>((x >> 40) % vocab) : next;
  }
  return tokens;
}

model::LanguageModelConfig TwoLayerLmConfig(int64_t vocab, model::CellType cell, int64_t embedding_size,
                                            int64_t hidden_size, double dropout) {
  model::LanguageModelConfig c;
  c.vocab_size = vocab;
  c.embedding_size = embedding_size;
  c.stack.cell = cell;
  c.stack.input_size = embedding_size;
  c.stack.hidden_size = hidden_size;
  c.stack.num_layers = 2;
  c.stack.dropout = dropout;
  c.dropout = dropout;
  return c;
}

train::TrainerConfig ZarembaTrainerConfig(int64_t batch_size, int64_t max_epochs, int64_t max_steps) {
  train::TrainerConfig c;
  c.batch_size = batch_size;
  c.max_epochs = max_epochs;
  c.max_steps = max_steps;
  c.lr = {train::LrScheduleKind::kZaremba, 1.0, 0.5, 1};
  c.clip_norm = 5.0;
  c.log_every = 1000;
  c.warmup_steps = 0;
  c.evaluate_test = false;
  return c;
}

absl::StatusOr<train::TrainResult> RunTrainer(comm::Communicator& comm,
                                              absl::StatusOr<std::unique_ptr<train::TrainTask>> task,
                                              const train::TrainerConfig& config) {
  if (!task.ok()) return task.status();
  train::Trainer trainer(comm, **task, config);
  return trainer.Run();
}

std::vector<nlohmann::json> ReadMetrics(const std::string& run_dir, const std::string& type) {
  std::ifstream in(run_dir + "/metrics.jsonl");
  std::vector<nlohmann::json> records;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    nlohmann::json record = nlohmann::json::parse(line);
    if (type.empty() || record.value("type", "") == type) records.push_back(std::move(record));
  }
  return records;
}

}  // namespace distrnn::testing
