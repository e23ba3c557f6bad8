#include "train/copy_trainer.h"

#include <cmath>
#include <fstream>
#include <string>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "support/temp_dir.h"
#include "train/checkpoint.h"

namespace distrnn::train {
namespace {

model::LanguageModelConfig TinyLstm(int64_t hidden) {
  model::LanguageModelConfig c;
  c.vocab_size = data::kCopyVocabSize;
  c.embedding_size = 16;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = 16;
  c.stack.hidden_size = hidden;
  c.stack.num_layers = 1;
  c.init_scale = 0.3;
  return c;
}

CopyTrainConfig TinyConfig() {
  CopyTrainConfig c;
  c.train_spec = {3, 1, 3};
  c.test_spec = {5, 1, 5};
  c.seed = 11;
  c.train_samples = 5000;
  c.eval_samples = 200;
  c.batch_size = 16;
  c.eval_batch_size = 64;
  c.steps_per_epoch = 200;
  c.max_epochs = 2;
  c.lr = 0.01;
  c.clip_value = 1.0;
  c.clip_norm = 1.0;
  c.run_dir = "";
  return c;
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
}

TEST(CopyTrainConfigTest, Validate) {
  EXPECT_TRUE(TinyConfig().Validate().ok());
  CopyTrainConfig c = TinyConfig();
  c.train_spec = {3, 0, 4};  // L > K
  EXPECT_FALSE(c.Validate().ok());
  c = TinyConfig();
  c.clip_value = -1;
  EXPECT_EQ(c.Validate().code(), absl::StatusCode::kInvalidArgument);
  c = TinyConfig();
  c.train_samples = 0;
  EXPECT_FALSE(c.Validate().ok());
  c = TinyConfig();
  c.stop_accuracy = 1.5;
  EXPECT_FALSE(c.Validate().ok());
  EXPECT_EQ(TinyConfig().EffectiveStepsPerEpoch(), 200);
  c = TinyConfig();
  c.steps_per_epoch = 0;
  EXPECT_EQ(c.EffectiveStepsPerEpoch(), 313);  // ceil(5000 / 16)
}

// EvaluateCopy against the definition: argmax per step scored by hand, mean cross
// entropy over all positions; and the result does not depend on the eval batch size.
TEST(EvaluateCopyTest, MatchesHandComputationAndIgnoresBatchSize) {
  torch::manual_seed(3);
  model::LanguageModel model(TinyLstm(8));
  const data::CopyTaskSpec spec{4, 2, 3};
  auto eval = EvaluateCopy(model, spec, 5, 100, 7, 3);
  auto eval_one_batch = EvaluateCopy(model, spec, 5, 100, 7, 64);
  ASSERT_TRUE(eval.ok()) << eval.status();
  ASSERT_TRUE(eval_one_batch.ok()) << eval_one_batch.status();
  EXPECT_TRUE(model->is_training());  // restored after the pass

  torch::NoGradGuard no_grad;
  model->eval();
  int64_t correct_steps = 0, correct_copies = 0, correct_sequences = 0;
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
  EXPECT_EQ(eval->accuracy.correct_steps, correct_steps);
  EXPECT_EQ(eval->accuracy.correct_copies, correct_copies);
  EXPECT_EQ(eval->accuracy.correct_sequences, correct_sequences);
  EXPECT_NEAR(eval->loss, nll / (7.0 * spec.length()), 1e-5);
  EXPECT_EQ(eval_one_batch->accuracy.correct_steps, eval->accuracy.correct_steps);
  EXPECT_NEAR(eval_one_batch->loss, eval->loss, 1e-5);
}

// The differentiated loss is the mean cross entropy over all T*G positions of the
// global batch (Note [copy loss]): step 1's loss is that of the initial model on
// samples 0..G-1.
TEST(CopyTrainerTest, FirstStepLossIsTheMeanCrossEntropyOfTheFirstGlobalBatch) {
  torch::manual_seed(4);
  model::LanguageModel model(TinyLstm(8));
  CopyTrainConfig config = TinyConfig();
  config.max_steps = 1;
  auto expected = EvaluateCopy(model, config.train_spec, config.seed, 0, config.batch_size, config.batch_size);
  ASSERT_TRUE(expected.ok());
  comm::LocalCommunicator comm;
  CopyTrainer trainer(comm, model, config, {});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->step_losses.size(), 1u);
  EXPECT_NEAR(result->step_losses[0], expected->loss, 1e-5);
  EXPECT_EQ(result->steps, 1);
  EXPECT_EQ(result->epochs, 1);
}

TEST(CopyTrainerTest, TinyLstmLearnsToCopy) {
  torch::manual_seed(7);
  model::LanguageModel model(TinyLstm(32));
  CopyTrainConfig config = TinyConfig();
  auto untrained = EvaluateCopy(model, config.train_spec, config.seed, config.train_samples, config.eval_samples, 64);
  ASSERT_TRUE(untrained.ok());
  // Chance on the copied segment is 1/9; an untrained model is near it.
  EXPECT_LT(untrained->accuracy.step_accuracy(), 0.3);

  testing::TempDir dir;
  config.run_dir = dir.Join("run");
  config.max_epochs = 4;
  comm::LocalCommunicator comm;
  CopyTrainer trainer(comm, model, config, {{"cell", "lstm"}});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 800);
  EXPECT_GT(result->train_length.step_accuracy, 0.85);
  EXPECT_GT(result->train_length.sequence_accuracy, 0.6);
  EXPECT_LT(result->step_losses.back(), 0.5 * result->step_losses.front());
  // The test length (5 symbols, never seen in training) is scored and reported.
  EXPECT_GT(result->test_length.step_accuracy, 0.0);
  EXPECT_LE(result->test_length.sequence_accuracy, result->test_length.copy_accuracy);

  auto meta = ReadCheckpointMeta(dir.Join("run/model.pt"));
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ((*meta)["task"], "copy");
  EXPECT_EQ((*meta)["cell"], "lstm");
  EXPECT_EQ((*meta)["train_spec"]["symbols"], 3);
  EXPECT_EQ((*meta)["test_spec"]["copy_length"], 5);
  std::ifstream metrics(dir.Join("run/metrics.jsonl"));
  std::string line, all;
  while (std::getline(metrics, line)) all += line + "\n";
  EXPECT_NE(all.find("\"type\":\"eval\""), std::string::npos);
  EXPECT_NE(all.find("\"seq_per_s\""), std::string::npos);
}

TEST(CopyTrainerTest, StopsWhenRankZeroSaysTheTargetAccuracyIsReached) {
  torch::manual_seed(7);
  model::LanguageModel model(TinyLstm(32));
  CopyTrainConfig config = TinyConfig();
  config.max_epochs = 10;
  config.stop_accuracy = 0.5;
  comm::LocalCommunicator comm;
  CopyTrainer trainer(comm, model, config, {});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->stopped_early);
  EXPECT_LT(result->epochs, 10);
  EXPECT_GE(result->train_length.sequence_accuracy, 0.5);
}

TEST(CopyTrainerTest, RefusesAnInvalidConfigBeforeAnyStep) {
  torch::manual_seed(1);
  model::LanguageModel model(TinyLstm(8));
  CopyTrainConfig config = TinyConfig();
  config.lr = 0;
  comm::LocalCommunicator comm;
  CopyTrainer trainer(comm, model, config, {});
  auto result = trainer.Run();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace distrnn::train
