// CopyTrainTask: which samples a step trains on, evaluation by hand, the differentiated
// loss, learning, and the stop rule decided on rank 0.
#include "train/copy_train_task.h"

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "support/temp_dir.h"
#include "train/checkpoint.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace distrnn::train {
namespace {

model::LanguageModelConfig CopyLstm(int64_t hidden, double dropout = 0.0) {
  model::LanguageModelConfig c = fixtures::TinyLm(data::kCopyVocabSize, hidden, 1, dropout);
  c.embedding_size = 16;
  c.stack.input_size = 16;
  c.init_scale = 0.3;
  return c;
}

CopyTaskConfig TinyCopy() {
  CopyTaskConfig c;
  c.train_spec = {3, 1, 3};
  c.test_spec = {5, 1, 5};
  c.seed = 11;
  c.train_samples = 5000;
  c.eval_samples = 200;
  c.batch_size = 16;
  c.eval_batch_size = 100;
  c.steps_per_epoch = 200;
  return c;
}

std::unique_ptr<CopyTrainTask> MakeTask(model::LanguageModel model, CopyTaskConfig config, Shard shard = {}) {
  auto task = CopyTrainTask::Create(model, config, shard, fixtures::LmMeta("copy", model->config()));
  EXPECT_TRUE(task.ok()) << task.status();
  return task.ok() ? std::move(*task) : nullptr;
}

TrainerConfig AdamConfig(int64_t batch) {
  TrainerConfig c = fixtures::QuietConfig(batch);
  c.optimizer = OptimizerKind::kAdam;
  c.lr = {LrScheduleKind::kConstant, 0.01, 1.0, 0};
  c.clip_value = 1.0;
  c.clip_norm = 1.0;
  return c;
}

// Adam training of `task` on one process for `epochs`, metrics and checkpoints in `run_dir`.
absl::StatusOr<TrainResult> TrainWithRunDir(CopyTrainTask& task, int64_t batch, int64_t epochs,
                                            const std::string& run_dir) {
  TrainerConfig tc = AdamConfig(batch);
  tc.max_epochs = epochs;
  tc.run_dir = run_dir;
  comm::LocalCommunicator comm;
  return Trainer(comm, task, tc).Run();
}

TEST(CopyTrainIndicesTest, RanksSplitTheSameGlobalBatchWhateverTheWorldSize) {
  for (int64_t step : {0, 1, 7, 1000}) {
    auto whole = CopyTrainIndices(step, 6, 50, 0, 1);
    ASSERT_TRUE(whole.ok()) << whole.status();
    ASSERT_EQ(whole->size(), 6u);
    for (int world : {2, 3, 6}) {
      std::vector<int64_t> joined;
      for (int rank = 0; rank < world; ++rank) {
        auto part = CopyTrainIndices(step, 6, 50, rank, world);
        ASSERT_TRUE(part.ok()) << part.status();
        EXPECT_EQ(part->size(), static_cast<size_t>(6 / world));
        joined.insert(joined.end(), part->begin(), part->end());
      }
      EXPECT_EQ(joined, *whole) << "step " << step << ", world " << world;
    }
  }
}

TEST(CopyTrainIndicesTest, CyclesOverTheTrainingSamples) {
  // Step 8 of batch 6 over 50 samples starts at 48: 48, 49, 0, 1, 2, 3.
  EXPECT_EQ(*CopyTrainIndices(8, 6, 50, 0, 1), (std::vector<int64_t>{48, 49, 0, 1, 2, 3}));
  EXPECT_EQ(*CopyTrainIndices(8, 6, 50, 1, 2), (std::vector<int64_t>{1, 2, 3}));
  // Huge step counts do not overflow.
  auto far = CopyTrainIndices(int64_t{1} << 60, 6, 50, 0, 1);
  ASSERT_TRUE(far.ok());
  for (int64_t i : *far) EXPECT_TRUE(i >= 0 && i < 50);
  EXPECT_FALSE(CopyTrainIndices(0, 6, 50, 0, 4).ok());  // 6 not divisible by 4
  EXPECT_FALSE(CopyTrainIndices(-1, 6, 50, 0, 1).ok());
}

TEST(CopyTaskConfigTest, Validate) {
  EXPECT_TRUE(TinyCopy().Validate().ok());
  CopyTaskConfig c = TinyCopy();
  c.train_spec = {3, 0, 4};  // L > K
  EXPECT_FALSE(c.Validate().ok());
  c = TinyCopy();
  c.train_samples = 0;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
  c = TinyCopy();
  c.stop_accuracy = 1.5;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TinyCopy().EffectiveStepsPerEpoch(), 200);
  c = TinyCopy();
  c.steps_per_epoch = 0;
  EXPECT_EQ(c.EffectiveStepsPerEpoch(), 313);  // ceil(5000 / 16)
  // The global batch must split over world size x micro-batches.
  torch::manual_seed(1);
  model::LanguageModel model(CopyLstm(8));
  EXPECT_EQ(CopyTrainTask::Create(model, TinyCopy(), {0, 3, 1}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CopyCurriculumTest, ValidateNamesTheFlag) {
  const data::CopyTaskSpec full{10, 1, 10};
  EXPECT_TRUE(CopyCurriculum{}.Validate(full).ok());  // off
  EXPECT_TRUE((CopyCurriculum{10, 1, 1.0, 1.0}).Validate(full).ok());
  auto message = [&](CopyCurriculum c) { return std::string(c.Validate(full).message()); };
  EXPECT_NE(message({11, 5, 0.95, 0.25}).find("--copy_curriculum_start must be in [0, 10]"), std::string::npos);
  EXPECT_NE(message({-1, 5, 0.95, 0.25}).find("--copy_curriculum_start"), std::string::npos);
  EXPECT_NE(message({2, 0, 0.95, 0.25}).find("--copy_curriculum_step"), std::string::npos);
  EXPECT_NE(message({2, 5, -0.1, 0.25}).find("--copy_curriculum_threshold"), std::string::npos);
  EXPECT_NE(message({2, 5, 1.5, 0.25}).find("--copy_curriculum_threshold"), std::string::npos);
  EXPECT_NE(message({2, 5, 0.95, 1.5}).find("--copy_curriculum_mix"), std::string::npos);
  CopyTaskConfig c = TinyCopy();
  c.curriculum.start = 4;  // K is 3
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
}

TEST(CopyCurriculumTest, SpecWithSymbolsKeepsTheDelayAndCopiesAtMostL) {
  const data::CopyTaskSpec full{100, 3, 80};
  const data::CopyTaskSpec small = SpecWithSymbols(full, 10);
  EXPECT_EQ(small.symbols, 10);
  EXPECT_EQ(small.delimiters, 3);
  EXPECT_EQ(small.copy_length, 10);
  EXPECT_EQ(SpecWithSymbols(full, 90).copy_length, 80);
}

// K_k is a function of (seed, step) and the level alone; a share `mix` of the steps is
// uniform over [1, K], the rest at the level.
TEST(CopyCurriculumTest, SymbolsPerStepFollowTheLevelAndTheMix) {
  const data::CopyTaskSpec full{20, 1, 20};
  EXPECT_EQ(CurriculumSymbols({}, 0, full, 1, 5), 20);  // no curriculum: always K
  const CopyCurriculum pure{4, 2, 0.9, 0.0};
  for (int64_t step = 0; step < 100; ++step) EXPECT_EQ(CurriculumSymbols(pure, 6, full, 1, step), 6);

  const CopyCurriculum mixed{4, 2, 0.9, 0.25};
  constexpr int kSteps = 20000;
  int at_level = 0, differs_by_seed = 0;
  std::vector<int> seen(21, 0);
  for (int64_t step = 0; step < kSteps; ++step) {
    const int64_t k = CurriculumSymbols(mixed, 6, full, 1, step);
    ASSERT_GE(k, 1);
    ASSERT_LE(k, 20);
    EXPECT_EQ(k, CurriculumSymbols(mixed, 6, full, 1, step));  // the same on every call (every rank)
    ++seen[k];
    at_level += k == 6;
    differs_by_seed += k != CurriculumSymbols(mixed, 6, full, 2, step);
  }
  // 0.75 + 0.25 / 20 of the steps at the level; the uniform part reaches every K.
  EXPECT_NEAR(static_cast<double>(at_level) / kSteps, 0.7625, 0.015);
  for (int k = 1; k <= 20; ++k) {
    if (k != 6) EXPECT_NEAR(seen[k], kSteps * 0.25 / 20, 60) << "K=" << k;  // 250 expected, sd ~15
  }
  EXPECT_GT(differs_by_seed, kSteps / 5);
}

TEST(CopyCurriculumTest, LevelGrowsOnlyWhenLearntAndStopsAtK) {
  const data::CopyTaskSpec full{12, 1, 12};
  const CopyCurriculum c{2, 4, 0.9, 0.25};
  EXPECT_EQ(NextCurriculumLevel(c, 2, full, 0.89), 2);
  EXPECT_EQ(NextCurriculumLevel(c, 2, full, 0.9), 6);
  EXPECT_EQ(NextCurriculumLevel(c, 10, full, 1.0), 12);
  EXPECT_EQ(NextCurriculumLevel(c, 12, full, 1.0), 12);
  EXPECT_EQ(NextCurriculumLevel({}, 0, full, 1.0), 0);  // off
  EXPECT_EQ(NextCurriculumLevel({2, 4, 0.0, 0.25}, 2, full, 0.0), 6);  // threshold 0: every epoch
}

// EvaluateCopy against the definition: argmax per step scored by hand, mean cross
// entropy over all positions; and the result does not depend on the eval batch size.
TEST(EvaluateCopyTest, MatchesHandComputationAndIgnoresBatchSize) {
  torch::manual_seed(3);
  model::LanguageModel model(CopyLstm(8));
  const data::CopyTaskSpec spec{4, 2, 3};
  auto eval = EvaluateCopy(model, spec, 5, 100, 7, 3);
  auto eval_one_batch = EvaluateCopy(model, spec, 5, 100, 7, 64);
  ASSERT_TRUE(eval.ok()) << eval.status();
  ASSERT_TRUE(eval_one_batch.ok()) << eval_one_batch.status();
  EXPECT_TRUE(model->is_training());  // restored after the pass

  torch::NoGradGuard no_grad;
  model->eval();
  int64_t correct_steps = 0, correct_copies = 0, correct_sequences = 0, correct_positions = 0;
  double nll = 0.0;
  for (int64_t i = 100; i < 107; ++i) {
    const data::CopySample s = data::MakeCopySample(spec, 5, i);
    auto [logits, state] = model->forward(torch::tensor(s.inputs).unsqueeze(1));
    torch::Tensor log_probs = torch::log_softmax(logits.squeeze(1).to(torch::kDouble), 1);
    bool copy_right = true, all_right = true;
    for (int64_t t = 0; t < spec.length(); ++t) {
      nll -= log_probs[t][s.targets[t]].item<double>();
      const bool right = log_probs[t].argmax().item<int64_t>() == s.targets[t];
      all_right &= right;
      correct_positions += right;
      if (t >= spec.copy_begin()) {
        correct_steps += right;
        copy_right &= right;
      }
    }
    correct_copies += copy_right;
    correct_sequences += all_right;
  }
  EXPECT_EQ(eval->accuracy.total_steps, 7 * 3);
  EXPECT_EQ(eval->accuracy.total_sequences, 7);
  EXPECT_EQ(eval->accuracy.total_positions, 7 * spec.length());
  EXPECT_EQ(eval->accuracy.correct_positions, correct_positions);
  EXPECT_EQ(eval->accuracy.correct_steps, correct_steps);
  EXPECT_EQ(eval->accuracy.correct_copies, correct_copies);
  EXPECT_EQ(eval->accuracy.correct_sequences, correct_sequences);
  EXPECT_NEAR(eval->loss, nll / (7.0 * spec.length()), 1e-5);
  EXPECT_EQ(eval_one_batch->accuracy.correct_steps, eval->accuracy.correct_steps);
  EXPECT_NEAR(eval_one_batch->loss, eval->loss, 1e-5);
}

// The differentiated loss is the mean cross entropy over all T*G positions of the global
// batch: step 1's loss is that of the initial model on samples 0..G-1, and step 2 trains
// on samples G..2G-1.
TEST(CopyTrainerTest, StepLossIsTheMeanCrossEntropyOfTheGlobalBatch) {
  torch::manual_seed(4);
  model::LanguageModel model(CopyLstm(8));
  const CopyTaskConfig config = TinyCopy();
  auto expected = EvaluateCopy(model, config.train_spec, config.seed, 0, config.batch_size, config.batch_size);
  ASSERT_TRUE(expected.ok());
  auto task = MakeTask(model, config, {0, 1, 4});
  TrainerConfig tc = AdamConfig(config.batch_size);
  tc.micro_batches = 4;  // four micro-batches of 4 samples: still the mean over all 16
  tc.max_steps = 1;
  tc.log_every = 1;
  distrnn::testing::TempDir dir;
  tc.run_dir = dir.Join("run");
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->step_losses.size(), 1u);
  EXPECT_NEAR(result->step_losses[0], expected->loss, 1e-5);
  // The logged train accuracy is over all time steps of the global batch.
  const auto progress = fixtures::ReadMetrics(tc.run_dir, "progress");
  ASSERT_EQ(progress.size(), 1u);
  ASSERT_TRUE(progress[0].contains("accuracy")) << progress[0].dump();
  EXPECT_EQ(expected->accuracy.total_positions, config.batch_size * config.train_spec.length());
  EXPECT_DOUBLE_EQ(progress[0].at("accuracy").get<double>(), expected->accuracy.position_accuracy());
  EXPECT_EQ(result->steps, 1);
  EXPECT_EQ(result->epochs, 0);
}

TEST(CopyTrainerTest, TinyLstmLearnsToCopy) {
  torch::manual_seed(7);
  model::LanguageModel model(CopyLstm(32));
  CopyTaskConfig config = TinyCopy();
  auto untrained = EvaluateCopy(model, config.train_spec, config.seed, config.train_samples, config.eval_samples, 100);
  ASSERT_TRUE(untrained.ok());
  // Chance on the copied segment is 1/9; an untrained model is near it.
  EXPECT_LT(untrained->accuracy.step_accuracy(), 0.3);

  auto task = MakeTask(model, config);
  TrainerConfig tc = AdamConfig(config.batch_size);
  tc.max_epochs = 4;
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 800);
  EXPECT_FALSE(result->stopped_early);
  EXPECT_GT(result->last_valid.at("valid_step_accuracy"), 0.85);
  EXPECT_GT(result->last_valid.at("valid_sequence_accuracy"), 0.5);
  EXPECT_LT(result->step_losses.back(), 0.5 * result->step_losses.front());
  // The longer test length (5 symbols, never trained on) is scored too.
  EXPECT_GT(result->last_valid.at("test_length_step_accuracy"), 0.0);
  EXPECT_LE(result->last_valid.at("test_length_sequence_accuracy"),
            result->last_valid.at("test_length_copy_accuracy"));
  EXPECT_TRUE(result->test.empty());  // the copy task has no test split
}

// Rank 0 decides to stop after the first epoch whose valid sequence accuracy reaches the
// target, and every epoch before it stayed below.
TEST(CopyTrainerTest, StopsAfterTheFirstEpochReachingTheTargetAccuracy) {
  torch::manual_seed(7);
  model::LanguageModel model(CopyLstm(32));
  CopyTaskConfig config = TinyCopy();
  config.train_spec = {2, 1, 2};
  config.steps_per_epoch = 50;
  config.stop_accuracy = 0.9;
  auto task = MakeTask(model, config);
  distrnn::testing::TempDir dir;
  const std::string run_dir = dir.Join("run");
  auto result = TrainWithRunDir(*task, config.batch_size, 20, run_dir);
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->stopped_early);
  EXPECT_GT(result->epochs, 1);
  EXPECT_LT(result->epochs, 20);
  EXPECT_EQ(result->steps, result->epochs * 50);
  EXPECT_GE(result->last_valid.at("valid_sequence_accuracy"), 0.9);
  const auto valids = fixtures::ReadMetrics(run_dir, "valid");
  ASSERT_EQ(static_cast<int64_t>(valids.size()), result->epochs);
  for (size_t i = 0; i + 1 < valids.size(); ++i) {
    EXPECT_LT(valids[i]["valid_sequence_accuracy"].get<double>(), 0.9) << "epoch " << i + 1;
  }
}

// Under a curriculum each epoch is evaluated at its level, and the level grows by `step`
// exactly after the epochs whose held-out copy at that level reached the threshold.
TEST(CopyTrainerTest, CurriculumLevelFollowsTheHeldOutAccuracy) {
  torch::manual_seed(7);
  model::LanguageModel model(CopyLstm(32));
  CopyTaskConfig config = TinyCopy();
  config.train_spec = {6, 1, 6};
  config.steps_per_epoch = 60;
  config.curriculum = {1, 1, 0.9, 0.25};
  auto task = MakeTask(model, config);
  distrnn::testing::TempDir dir;
  const std::string run_dir = dir.Join("run");
  auto result = TrainWithRunDir(*task, config.batch_size, 8, run_dir);
  ASSERT_TRUE(result.ok()) << result.status();
  const auto valids = fixtures::ReadMetrics(run_dir, "valid");
  ASSERT_EQ(valids.size(), 8u);
  int grown = 0;
  for (size_t i = 0; i < valids.size(); ++i) {
    const double level = valids[i]["curriculum_level"].get<double>();
    const double accuracy = valids[i]["level_step_accuracy"].get<double>();
    const double next = i + 1 < valids.size() ? valids[i + 1]["curriculum_level"].get<double>()
                                              : static_cast<double>(task->curriculum_level());
    EXPECT_EQ(next, accuracy >= 0.9 ? std::min(level + 1, 6.0) : level) << "epoch " << i + 1;
    grown += next > level;
  }
  EXPECT_EQ(valids[0]["curriculum_level"].get<double>(), 1.0);
  EXPECT_GE(grown, 2);  // the tiny LSTM learns the short copies within a few epochs
}

}  // namespace
}  // namespace distrnn::train
