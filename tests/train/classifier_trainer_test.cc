#include "train/classifier_trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "model/classifier.h"
#include "support/temp_dir.h"
#include "train/checkpoint.h"

namespace distrnn::train {
namespace {

constexpr int64_t kVocab = 10;   // 0 = <pad>, 1..9 words
constexpr int64_t kMarker = 3;   // label = whether this word occurs

// Balanced: half of the sequences contain the marker once at a random position, the
// other half never; lengths 3..10, words drawn from 1..9 without the marker.
data::ClassificationDataset MarkerTask(int64_t n, uint64_t seed) {
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

model::ClassifierConfig TinyConfig(model::CellType cell = model::CellType::kLstm) {
  model::ClassifierConfig c;
  c.vocab_size = kVocab;
  c.embedding_size = 8;
  c.stack.cell = cell;
  c.stack.input_size = 8;
  c.stack.hidden_size = 16;
  c.stack.num_layers = 1;
  c.num_classes = 1;
  c.padding_idx = 0;
  return c;
}

ClassifierTrainConfig TinyTrainConfig() {
  ClassifierTrainConfig c;
  c.batch_size = 16;
  c.eval_batch_size = 32;
  c.max_epochs = 12;
  c.lr = 1e-2;
  c.clip_norm = 5.0;
  c.seed = 7;
  c.log_every = 1000;
  return c;
}

TEST(ClassifierTrainerTest, TinyModelLearnsWhetherAWordOccurs) {
  const auto train = MarkerTask(512, 1), valid = MarkerTask(128, 2), test = MarkerTask(256, 3);
  torch::manual_seed(3);
  model::Classifier model(TinyConfig());
  auto untrained = EvaluateClassifier(model, test, 64);
  ASSERT_TRUE(untrained.ok()) << untrained.status();

  comm::LocalCommunicator local;
  ClassifierTrainer trainer(local, model, TinyTrainConfig(), {&train, &valid, &test}, {});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->epochs, 12);
  EXPECT_EQ(result->steps, 12 * (512 / 16));
  EXPECT_LT(untrained->accuracy(), 0.7);
  EXPECT_GT(result->test_accuracy, 0.95);
  EXPECT_GT(result->best_valid_accuracy, 0.95);
  EXPECT_LT(result->test_loss, untrained->loss() / 3);
  // The model left behind is the best epoch's, whatever the last epoch did.
  auto valid_now = EvaluateClassifier(model, valid, 64);
  ASSERT_TRUE(valid_now.ok());
  EXPECT_DOUBLE_EQ(valid_now->accuracy(), result->best_valid_accuracy);
  EXPECT_NEAR(valid_now->loss(), result->best_valid_loss, 1e-9);
}

TEST(ClassifierTrainerTest, EvaluationMatchesPerExampleBce) {
  const auto data = MarkerTask(37, 4);  // not a multiple of the batch
  torch::manual_seed(5);
  model::Classifier model(TinyConfig(model::CellType::kGru));
  auto eval = EvaluateClassifier(model, data, 8);
  ASSERT_TRUE(eval.ok()) << eval.status();
  torch::NoGradGuard no_grad;
  model->eval();
  double loss = 0.0;
  int64_t correct = 0;
  for (size_t i = 0; i < data.labels.size(); ++i) {
    const auto& seq = data.sequences[i];
    torch::Tensor tokens = torch::tensor(seq, torch::kLong).unsqueeze(1);
    torch::Tensor lengths = torch::full({1}, static_cast<int64_t>(seq.size()), torch::kLong);
    const double logit = model->forward(tokens, lengths).item<double>();
    const double p = 1.0 / (1.0 + std::exp(-logit));
    loss += data.labels[i] == 1 ? -std::log(p) : -std::log(1.0 - p);
    correct += (logit > 0) == (data.labels[i] == 1);
  }
  EXPECT_EQ(eval->examples, 37);
  EXPECT_EQ(eval->correct, correct);
  EXPECT_NEAR(eval->loss(), loss / 37.0, 1e-5);
}

TEST(ClassifierTrainerTest, WritesMetricsAndCheckpointsWithMeta) {
  testing::TempDir dir;
  const auto train = MarkerTask(64, 1), valid = MarkerTask(16, 2);
  torch::manual_seed(3);
  model::Classifier model(TinyConfig());
  ClassifierTrainConfig config = TinyTrainConfig();
  config.max_epochs = 2;
  config.run_dir = dir.Join("run");
  comm::LocalCommunicator local;
  ClassifierTrainer trainer(local, model, config, {&train, &valid, nullptr}, {{"task", "imdb"}, {"max_len", 9}});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->test_accuracy, 0.0);  // no test split
  auto meta = ReadCheckpointMeta(dir.Join("run/model.pt"));
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ((*meta)["task"], "imdb");
  EXPECT_EQ((*meta)["max_len"], 9);
  EXPECT_EQ((*meta)["epoch"], 2);
  EXPECT_TRUE(std::filesystem::exists(dir.Join("run/best.pt")));
  std::ifstream in(dir.Join("run/metrics.jsonl"));
  std::string all((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(all.find("\"type\":\"progress\""), std::string::npos);
  EXPECT_NE(all.find("\"type\":\"valid\""), std::string::npos);
  EXPECT_NE(all.find("\"accuracy\""), std::string::npos);

  model::Classifier restored(TinyConfig());
  ASSERT_TRUE(LoadCheckpoint(dir.Join("run/best.pt"), *restored, nullptr).ok());
}

TEST(ClassifierTrainerTest, RefusesBadConfigAndMissingValid) {
  ClassifierTrainConfig config = TinyTrainConfig();
  config.lr = 0.0;
  EXPECT_FALSE(config.Validate().ok());
  config = TinyTrainConfig();
  config.batch_size = 0;
  EXPECT_FALSE(config.Validate().ok());

  const auto train = MarkerTask(64, 1);
  model::Classifier model(TinyConfig());
  comm::LocalCommunicator local;
  ClassifierTrainer trainer(local, model, TinyTrainConfig(), {&train, nullptr, nullptr}, {});
  auto result = trainer.Run();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace distrnn::train
