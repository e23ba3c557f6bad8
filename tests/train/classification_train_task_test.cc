// ClassificationTrainTask: evaluation by hand, micro-batches of variable-length
// sequences with keyed dropout, learning, and the best epoch restored before testing.
#include "train/classification_train_task.h"

#include <cmath>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "model/classifier.h"
#include "support/temp_dir.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace distrnn::train {
namespace {

using fixtures::CloneParams;
using fixtures::MaxAbsDiff;

std::unique_ptr<ClassificationTrainTask> MakeTask(model::Classifier model, ClassificationTaskConfig config,
                                                  ClassificationSplits splits, Shard shard = {}) {
  auto task = ClassificationTrainTask::Create(model, config, splits, shard, fixtures::ClassifierMeta(model->config()));
  EXPECT_TRUE(task.ok()) << task.status();
  return task.ok() ? std::move(*task) : nullptr;
}

ClassificationTaskConfig TinyTask(int64_t batch) {
  ClassificationTaskConfig c;
  c.batch_size = batch;
  c.eval_batch_size = 32;
  c.bucket_by_length = true;
  c.bucket_batches = 2;
  c.seed = 7;
  return c;
}

TrainerConfig AdamConfig(int64_t batch, double lr) {
  TrainerConfig c = fixtures::QuietConfig(batch);
  c.optimizer = OptimizerKind::kAdam;
  c.lr = {LrScheduleKind::kConstant, lr, 1.0, 0};
  c.clip_norm = 5.0;
  return c;
}

TEST(EvaluateClassifierTest, MatchesPerExampleBce) {
  const auto data = fixtures::MarkerTask(37, 4);  // not a multiple of the batch
  torch::manual_seed(5);
  model::ClassifierConfig config = fixtures::TinyClassifier(16, 1, 0.0);
  config.stack.cell = model::CellType::kGru;
  model::Classifier model(config);
  auto eval = EvaluateClassifier(model, data, 8);
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_TRUE(model->is_training());
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

TEST(ClassificationTrainTaskTest, RefusesMissingValidAndIndivisibleBatch) {
  const auto train = fixtures::MarkerTask(64, 1), valid = fixtures::MarkerTask(16, 2);
  torch::manual_seed(1);
  model::Classifier model(fixtures::TinyClassifier(8, 1, 0.0));
  auto no_valid = ClassificationTrainTask::Create(model, TinyTask(16), {&train, nullptr, nullptr}, {}, {});
  EXPECT_EQ(no_valid.status().code(), absl::StatusCode::kInvalidArgument);
  auto odd = ClassificationTrainTask::Create(model, TinyTask(16), {&train, &valid, nullptr}, {0, 1, 3}, {});
  EXPECT_EQ(odd.status().code(), absl::StatusCode::kInvalidArgument);
}

std::vector<torch::Tensor> RunMicroBatches(int micro_batches, uint64_t seed, const data::ClassificationDataset& train,
                                           const data::ClassificationDataset& valid) {
  torch::manual_seed(3);
  model::Classifier model(fixtures::TinyClassifier(8, 2, 0.3));
  ClassificationTaskConfig config = TinyTask(8);
  config.seed = seed;
  auto task = MakeTask(model, config, {&train, &valid, nullptr}, {0, 1, micro_batches});
  TrainerConfig tc = fixtures::QuietConfig(8);
  tc.micro_batches = micro_batches;
  tc.max_epochs = 2;
  tc.max_steps = 8;  // 6 steps per epoch: ends inside epoch 2
  tc.lr = {LrScheduleKind::kConstant, 0.5, 1.0, 0};
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  EXPECT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 8);
  // The best of the two evaluations is restored; compare the trained parameters instead.
  return CloneParams(*model);
}

// Micro-batches of variable-length sequences (each padded to its own longest) with
// dropout keyed by global column train exactly as one batch does.
TEST(ClassificationTrainerTest, MicroBatchesFollowTheSameTrajectoryWithDropout) {
  const auto train = fixtures::MarkerTask(52, 11), valid = fixtures::MarkerTask(16, 12);
  const auto one = RunMicroBatches(1, 7, train, valid);
  for (int k : {2, 4, 8}) {
    EXPECT_LT(MaxAbsDiff(RunMicroBatches(k, 7, train, valid), one), 1e-5) << k << " micro-batches";
  }
  EXPECT_GT(MaxAbsDiff(RunMicroBatches(1, 8, train, valid), one), 1e-4);  // another seed, another run
}

TEST(ClassificationTrainerTest, TinyModelLearnsWhetherAWordOccurs) {
  const auto train = fixtures::MarkerTask(512, 1), valid = fixtures::MarkerTask(128, 2);
  const auto test = fixtures::MarkerTask(256, 3);
  torch::manual_seed(3);
  model::Classifier model(fixtures::TinyClassifier(16, 1, 0.0));
  auto untrained = EvaluateClassifier(model, test, 64);
  ASSERT_TRUE(untrained.ok()) << untrained.status();
  auto task = MakeTask(model, TinyTask(16), {&train, &valid, &test});
  TrainerConfig tc = AdamConfig(16, 1e-2);
  tc.max_epochs = 10;
  tc.evaluate_test = true;
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->epochs, 10);
  EXPECT_EQ(result->steps, 10 * (512 / 16));
  EXPECT_LT(untrained->accuracy(), 0.7);
  EXPECT_GT(result->test.at("test_accuracy"), 0.95);
  EXPECT_GT(result->best_valid.at("valid_accuracy"), 0.95);
  EXPECT_LT(result->test.at("test_loss"), untrained->loss() / 3);
}

// The model tested (and left behind) is the best epoch's by valid accuracy, whatever the
// later epochs did: the same parameters as a run stopped after the best epoch.
TEST(ClassificationTrainerTest, RestoresTheBestEpochBeforeTesting) {
  const auto train = fixtures::MarkerTask(64, 21), valid = fixtures::MarkerTask(24, 22);
  const auto test = fixtures::MarkerTask(40, 23);
  auto run = [&](int64_t epochs, TrainResult& result) {
    torch::manual_seed(5);
    model::Classifier model(fixtures::TinyClassifier(8, 1, 0.0));
    auto task = MakeTask(model, TinyTask(8), {&train, &valid, &test});
    TrainerConfig tc = AdamConfig(8, 0.05);
    tc.max_epochs = epochs;
    tc.evaluate_test = true;
    comm::LocalCommunicator comm;
    auto r = Trainer(comm, *task, tc).Run();
    EXPECT_TRUE(r.ok()) << r.status();
    if (r.ok()) result = *r;
    return std::make_pair(model, CloneParams(*model));
  };
  TrainResult full;
  auto [model, params] = run(8, full);
  // The scenario needs a best epoch before the last one (a later epoch that only ties
  // the best accuracy is not better).
  ASSERT_GE(full.best_epoch, 1);
  ASSERT_LT(full.best_epoch, 8) << "pick another lr or seed: the last epoch is the best";
  EXPECT_GE(full.best_valid.at("valid_accuracy"), full.last_valid.at("valid_accuracy"));

  TrainResult cut;
  auto [cut_model, cut_params] = run(full.best_epoch, cut);
  EXPECT_EQ(cut.best_epoch, full.best_epoch);
  EXPECT_TRUE(fixtures::AllEqual(params, cut_params));
  auto expected = EvaluateClassifier(cut_model, test, 32);
  ASSERT_TRUE(expected.ok());
  EXPECT_DOUBLE_EQ(full.test.at("test_accuracy"), expected->accuracy());
  EXPECT_DOUBLE_EQ(full.test.at("test_loss"), expected->loss());
}

}  // namespace
}  // namespace distrnn::train
