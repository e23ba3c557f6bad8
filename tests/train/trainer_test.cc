// The Trainer's run state: bit-exact resume for every task (mid-epoch and end of epoch,
// max_epochs counted from the run's start), what checkpoints hold, and refusals of bad
// input that leave the run directory as it was.
#include "train/trainer.h"

#include <filesystem>
#include <functional>

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "model/classifier.h"
#include "model/language_model.h"
#include "fuzz/fuzz_support.h"
#include "support/temp_dir.h"
#include "train/checkpoint.h"
#include "train/checkpoint_dir.h"
#include "train/classification_train_task.h"
#include "train/copy_train_task.h"
#include "train/lm_train_task.h"
#include "train/resume.h"
#include "train/train_test_util.h"

namespace distrnn::train {
namespace {

using ::testing::HasSubstr;
using fixtures::AllEqual;
using fixtures::CloneParams;

// A task with its model initialised from `init_seed`.
using TaskFactory = std::function<std::unique_ptr<TrainTask>(uint64_t init_seed)>;

struct Outcome {
  absl::Status status;
  TrainResult result;
  std::vector<torch::Tensor> params;
};

Outcome RunTask(const TaskFactory& make, uint64_t init_seed, const TrainerConfig& config) {
  std::unique_ptr<TrainTask> task = make(init_seed);
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, config).Run();
  Outcome out;
  out.status = result.status();
  if (result.ok()) out.result = *result;
  out.params = CloneParams(task->model());
  return out;
}

// ---- the three tasks, tiny -----------------------------------------------------------

// LM: 4 columns of 26 tokens, windows of 5: 5 steps per epoch; 2-layer LSTM, dropout 0.3.
const std::vector<int64_t>& LmTrain() {
  static const auto* tokens = new std::vector<int64_t>(fixtures::RandomTokens(4 * 26 + 1, 12, 61));
  return *tokens;
}
const std::vector<int64_t>& LmValid() {
  static const auto* tokens = new std::vector<int64_t>(fixtures::RandomTokens(30, 12, 62));
  return *tokens;
}

// Embedding size 8 whatever the hidden size, so a model of another hidden size differs
// from the checkpoint's in 'hidden_size' first.
model::LanguageModelConfig LmModel(int64_t hidden = 8) {
  model::LanguageModelConfig c = fixtures::TinyLm(12, hidden, 2, 0.3);
  c.embedding_size = 8;
  c.stack.input_size = 8;
  return c;
}

TaskFactory LmFactory(int64_t batch = 4, int64_t hidden = 8) {
  return [=](uint64_t init_seed) -> std::unique_ptr<TrainTask> {
    torch::manual_seed(init_seed);
    model::LanguageModel model(LmModel(hidden));
    LmTaskConfig config;
    config.batch_size = batch;
    config.num_steps = 5;
    config.eval_batch_size = 2;
    config.seed = 3;
    auto task = LmTrainTask::Create(model, config, {&LmTrain(), &LmValid(), &LmValid()}, {},
                                    fixtures::LmMeta("ptb", model->config()));
    EXPECT_TRUE(task.ok()) << task.status();
    return std::move(*task);
  };
}

TrainerConfig LmConfig() {
  TrainerConfig c = fixtures::QuietConfig(4);
  c.max_epochs = 2;
  c.lr = {LrScheduleKind::kZaremba, 1.0, 0.5, 1};  // epoch 2 at 0.5: the lr must survive a resume
  c.clip_norm = 1.0;
  c.evaluate_test = true;
  return c;
}

// Copy: the same architecture as LmModel but the copy vocabulary, Adam (whose moments
// must survive a resume), 4 steps per epoch.
// With `curriculum`, K grows from 1 by one symbol per epoch (threshold 0) and a quarter of
// the steps draw a random K: the level must survive a resume too.
TaskFactory CopyFactory(bool curriculum = false) {
  return [=](uint64_t init_seed) -> std::unique_ptr<TrainTask> {
    torch::manual_seed(init_seed);
    model::LanguageModelConfig lm = LmModel();
    lm.vocab_size = data::kCopyVocabSize;
    model::LanguageModel model(lm);
    CopyTaskConfig config;
    config.train_spec = {3, 1, 3};
    config.test_spec = {4, 1, 4};
    config.seed = 5;
    config.train_samples = 200;
    config.eval_samples = 20;
    config.batch_size = 8;
    config.eval_batch_size = 20;
    config.steps_per_epoch = 4;
    if (curriculum) config.curriculum = {1, 1, 0.0, 0.25};
    auto task = CopyTrainTask::Create(model, config, {}, fixtures::LmMeta("copy", model->config()));
    EXPECT_TRUE(task.ok()) << task.status();
    return std::move(*task);
  };
}

TrainerConfig AdamConfig(int64_t batch) {
  TrainerConfig c = fixtures::QuietConfig(batch);
  c.max_epochs = 2;
  c.optimizer = OptimizerKind::kAdam;
  c.lr = {LrScheduleKind::kConstant, 0.01, 1.0, 0};
  c.clip_value = 1.0;
  c.clip_norm = 1.0;
  c.evaluate_test = true;
  return c;
}

// Classification: 48 examples in batches of 8: 6 steps per epoch, data order per epoch.
TaskFactory ClassificationFactory() {
  static const auto* train = new data::ClassificationDataset(fixtures::MarkerTask(50, 71));
  static const auto* valid = new data::ClassificationDataset(fixtures::MarkerTask(20, 72));
  static const auto* test = new data::ClassificationDataset(fixtures::MarkerTask(20, 73));
  return [](uint64_t init_seed) -> std::unique_ptr<TrainTask> {
    torch::manual_seed(init_seed);
    model::Classifier model(fixtures::TinyClassifier(8, 2, 0.2));
    ClassificationTaskConfig config;
    config.batch_size = 8;
    config.eval_batch_size = 16;
    config.bucket_batches = 2;
    config.seed = 9;
    auto task = ClassificationTrainTask::Create(model, config, {train, valid, test}, {},
                                                fixtures::ClassifierMeta(model->config()));
    EXPECT_TRUE(task.ok()) << task.status();
    return std::move(*task);
  };
}

// ---- bit-exact resume -----------------------------------------------------------------

void ExpectSameRun(const Outcome& resumed, const Outcome& full) {
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  ASSERT_TRUE(full.status.ok()) << full.status;
  EXPECT_TRUE(AllEqual(resumed.params, full.params))
      << "max |diff| " << fixtures::MaxAbsDiff(resumed.params, full.params);
  EXPECT_EQ(resumed.result.steps, full.result.steps);
  EXPECT_EQ(resumed.result.epochs, full.result.epochs);
  EXPECT_EQ(resumed.result.last_valid, full.result.last_valid);
  EXPECT_EQ(resumed.result.test, full.result.test);
  EXPECT_EQ(resumed.result.best_epoch, full.result.best_epoch);
  EXPECT_EQ(resumed.result.best_valid, full.result.best_valid);
  // This invocation's steps are the uninterrupted run's last ones, loss for loss.
  const auto& all = full.result.step_losses;
  const auto& tail = resumed.result.step_losses;
  ASSERT_LE(tail.size(), all.size());
  EXPECT_EQ(tail, std::vector<double>(all.end() - static_cast<std::ptrdiff_t>(tail.size()), all.end()));
}

// Run A: uninterrupted. Run B: stopped by max_steps after `interrupt_at` steps (inside
// epoch 1), then resumed with `auto` by a fresh model of another initialisation.
void ExpectBitExactResume(const TaskFactory& make, const TrainerConfig& base, int64_t interrupt_at) {
  distrnn::testing::TempDir dir;
  TrainerConfig config = base;
  config.checkpoint_every_steps = 2;
  config.run_dir = dir.Join("a");
  const Outcome full = RunTask(make, 1, config);
  ASSERT_TRUE(full.status.ok()) << full.status;
  ASSERT_GT(full.result.steps, interrupt_at);

  config.run_dir = dir.Join("b");
  config.max_steps = interrupt_at;
  const Outcome cut = RunTask(make, 1, config);
  ASSERT_TRUE(cut.status.ok()) << cut.status;
  ASSERT_EQ(cut.result.steps, interrupt_at);
  ASSERT_EQ(cut.result.epochs, 0);  // inside epoch 1
  const std::string checkpoint = CheckpointDirectory(config.run_dir, 1).StepPath(interrupt_at);
  ASSERT_TRUE(std::filesystem::exists(checkpoint));

  // Another initialisation: everything must come from the checkpoint.
  ASSERT_FALSE(AllEqual(CloneParams(make(2)->model()), CloneParams(make(1)->model())));
  config.max_steps = full.result.steps;
  config.resume = "auto";
  const Outcome resumed = RunTask(make, 2, config);
  EXPECT_EQ(resumed.result.resumed_from, checkpoint);
  EXPECT_EQ(resumed.result.step_losses.size(), static_cast<size_t>(full.result.steps - interrupt_at));
  EXPECT_EQ(resumed.result.epoch_lrs.size(), full.result.epoch_lrs.size());  // epoch 1 continues
  ExpectSameRun(resumed, full);
  EXPECT_EQ(fixtures::ReadMetrics(config.run_dir, "resume").size(), 1u);
}

// From the checkpoint written at the end of epoch 1; and max_epochs counts epochs from
// the start of the run, not of this invocation.
void ExpectResumeFromEpochEnd(const TaskFactory& make, const TrainerConfig& base, int64_t steps_per_epoch) {
  distrnn::testing::TempDir dir;
  TrainerConfig config = base;
  config.run_dir = dir.Join("a");
  const Outcome full = RunTask(make, 1, config);
  ASSERT_TRUE(full.status.ok()) << full.status;
  ASSERT_EQ(full.result.epochs, 2);

  config.run_dir = dir.Join("b");
  config.max_epochs = 1;
  const Outcome first = RunTask(make, 1, config);
  ASSERT_TRUE(first.status.ok()) << first.status;
  ASSERT_EQ(first.result.steps, steps_per_epoch);

  // max_epochs 1 again: the run already did it, so nothing is trained.
  config.resume = "auto";
  const Outcome again = RunTask(make, 2, config);
  ASSERT_TRUE(again.status.ok()) << again.status;
  EXPECT_EQ(again.result.steps, steps_per_epoch);
  EXPECT_EQ(again.result.epochs, 1);
  EXPECT_TRUE(again.result.step_losses.empty());
  EXPECT_TRUE(again.result.epoch_lrs.empty());
  EXPECT_EQ(again.result.test, first.result.test);

  config.max_epochs = 2;
  const Outcome resumed = RunTask(make, 2, config);
  const std::vector<double> epoch2_on(full.result.epoch_lrs.begin() + 1, full.result.epoch_lrs.end());
  EXPECT_EQ(resumed.result.epoch_lrs, epoch2_on);
  ExpectSameRun(resumed, full);
}

TEST(TrainerResumeTest, LmWithDropoutResumesBitExactlyInsideAnEpoch) {
  ExpectBitExactResume(LmFactory(), LmConfig(), 3);
}

TEST(TrainerResumeTest, LmResumesBitExactlyFromAnEpochEnd) {
  ExpectResumeFromEpochEnd(LmFactory(), LmConfig(), 5);
}

// max_epochs 1 on a run stopped inside epoch 1 finishes epoch 1 and no more.
TEST(TrainerResumeTest, MaxEpochsCountsFromTheRunStartInsideAnEpoch) {
  distrnn::testing::TempDir dir;
  TrainerConfig config = LmConfig();
  config.max_epochs = 1;
  config.run_dir = dir.Join("b");
  config.max_steps = 2;
  ASSERT_TRUE(RunTask(LmFactory(), 1, config).status.ok());
  config.max_steps = 0;
  config.resume = "auto";
  const Outcome resumed = RunTask(LmFactory(), 2, config);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_EQ(resumed.result.steps, 5);
  EXPECT_EQ(resumed.result.epochs, 1);
  EXPECT_EQ(resumed.result.step_losses.size(), 3u);
}

TEST(TrainerResumeTest, CopyWithAdamResumesBitExactlyInsideAnEpoch) {
  ExpectBitExactResume(CopyFactory(), AdamConfig(8), 3);
}

TEST(TrainerResumeTest, CopyResumesBitExactlyFromAnEpochEnd) {
  ExpectResumeFromEpochEnd(CopyFactory(), AdamConfig(8), 4);
}

TEST(TrainerResumeTest, CopyCurriculumResumesBitExactlyInsideAndAfterAnEpoch) {
  TrainerConfig config = AdamConfig(8);
  ExpectBitExactResume(CopyFactory(/*curriculum=*/true), config, 3);
  // Epoch 2 trains at level 2, which only the checkpoint of epoch 1 knows: restarted at
  // the start level the resumed losses would differ.
  ExpectResumeFromEpochEnd(CopyFactory(/*curriculum=*/true), config, 4);
}

// A copy run (no curriculum, lr 0.01) trained for one epoch, then resumed for
// `max_epochs` by `resumed_task` under `config` with --resume=auto.
Outcome ResumeAfterOneCopyEpoch(const TaskFactory& resumed_task, TrainerConfig config, int64_t max_epochs,
                                const distrnn::testing::TempDir& dir) {
  TrainerConfig first = AdamConfig(8);
  first.max_epochs = 1;
  first.run_dir = config.run_dir = dir.Join("run");
  EXPECT_TRUE(RunTask(CopyFactory(), 1, first).status.ok());
  config.max_epochs = max_epochs;
  config.resume = "auto";
  return RunTask(resumed_task, 1, config);
}

// --lr changed on resume (constant schedule): the resumed epoch keeps the checkpoint's lr
// (already decided at the end of epoch 1), the epochs after it take the new one.
TEST(TrainerResumeTest, ChangedLrAppliesFromTheEpochAfterTheResume) {
  distrnn::testing::TempDir dir;
  TrainerConfig config = AdamConfig(8);
  config.lr.base_lr = 0.002;
  const Outcome resumed = ResumeAfterOneCopyEpoch(CopyFactory(), config, 3, dir);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_EQ(resumed.result.epoch_lrs, (std::vector<double>{0.01, 0.002}));
}

// A checkpoint of a run without a curriculum resumed with one: the curriculum starts at
// its first level (logged), and epoch 2 is evaluated there.
TEST(TrainerResumeTest, CopyCurriculumStartsAtItsFirstLevelFromACheckpointWithoutOne) {
  distrnn::testing::TempDir dir;
  const Outcome resumed = ResumeAfterOneCopyEpoch(CopyFactory(/*curriculum=*/true), AdamConfig(8), 2, dir);
  ASSERT_TRUE(resumed.status.ok()) << resumed.status;
  EXPECT_EQ(resumed.result.last_valid.at("curriculum_level"), 1.0);
}

TEST(TrainerResumeTest, ClassificationResumesBitExactlyInsideAnEpoch) {
  ExpectBitExactResume(ClassificationFactory(), AdamConfig(8), 4);
}

TEST(TrainerResumeTest, ClassificationResumesBitExactlyFromAnEpochEnd) {
  ExpectResumeFromEpochEnd(ClassificationFactory(), AdamConfig(8), 6);
}

// ---- checkpoint contents ----------------------------------------------------------------

TEST(TrainerCheckpointTest, HoldsTheTrainingStateAndKeepsTheNewest) {
  distrnn::testing::TempDir dir;
  TrainerConfig config = LmConfig();
  config.run_dir = dir.Join("run");
  config.checkpoint_every_steps = 1;
  config.keep_checkpoints = 2;
  const Outcome run = RunTask(LmFactory(), 1, config);
  ASSERT_TRUE(run.status.ok()) << run.status;
  ASSERT_EQ(run.result.steps, 10);
  EXPECT_EQ(fixtures::StepFiles(config.run_dir),
            (std::vector<std::string>{"checkpoint-000000009.pt", "checkpoint-000000010.pt"}));
  auto latest = CheckpointDirectory(config.run_dir, 2).Latest();
  ASSERT_TRUE(latest.ok() && latest->has_value()) << latest.status();
  EXPECT_EQ(**latest, config.run_dir + "/checkpoint-000000010.pt");

  auto reader = CheckpointReader::FromFile(**latest);
  ASSERT_TRUE(reader.ok()) << reader.status();
  const nlohmann::json& meta = reader->meta();
  EXPECT_EQ(meta.at("task"), "ptb");
  EXPECT_EQ(meta.at("hidden_size"), 8);
  EXPECT_EQ(meta.at("world_size"), 1);
  EXPECT_EQ(meta.at("trainer").at("batch_size"), 4);
  EXPECT_EQ(meta.at("trainer").at("optimizer"), "sgd");
  EXPECT_EQ(meta.at("trainer").at("lr_schedule"), "zaremba");
  EXPECT_EQ(meta.at("progress").at("global_step"), 10);
  EXPECT_EQ(meta.at("progress").at("epoch"), 3);  // epochs 1 and 2 done
  EXPECT_EQ(meta.at("progress").at("step"), 0);
  EXPECT_DOUBLE_EQ(meta.at("progress").at("lr").get<double>(), 0.25);  // zaremba after epoch 2
  EXPECT_EQ(meta.at("progress").at("best_epoch"), run.result.best_epoch);
  EXPECT_TRUE(reader->has_optimizer());
  EXPECT_EQ(reader->tensor_names(), (std::vector<std::string>{"lm_state_c", "lm_state_h", kRngStateTensor}));
  auto h = reader->Tensor("lm_state_h");
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->sizes(), (std::vector<int64_t>{2, 4, 8}));  // [layers, G, hidden]

  // best.pt: the full state of the best epoch, loadable into a fresh model.
  auto best = CheckpointReader::FromFile(config.run_dir + "/best.pt");
  ASSERT_TRUE(best.ok()) << best.status();
  EXPECT_TRUE(best->has_optimizer());
  EXPECT_EQ(best->tensor_names(), reader->tensor_names());
  EXPECT_EQ(best->meta().at("progress").at("best_epoch"), run.result.best_epoch);
  EXPECT_EQ(best->meta().at("progress").at("global_step"), 5 * run.result.best_epoch);
  torch::manual_seed(123);
  model::LanguageModel fresh(LmModel());
  EXPECT_TRUE(best->LoadModel(*fresh).ok());

  // Machine-readable log: progress, train_epoch, valid and test records.
  for (const char* type : {"progress", "train_epoch", "valid", "test"}) {
    EXPECT_FALSE(fixtures::ReadMetrics(config.run_dir, type).empty()) << type;
  }
  EXPECT_EQ(fixtures::ReadMetrics(config.run_dir, "valid").size(), 2u);
  // One process: no all-reduce, so no all-reduce time in the progress records.
  for (const auto& record : fixtures::ReadMetrics(config.run_dir, "progress")) {
    EXPECT_FALSE(record.contains("allreduce_ms_per_step")) << record.dump();
  }
}

// --test_each_epoch: the test figures of each whole epoch beside its valid figures, those
// of the best epoch equal to the final test of the best model, and the training untouched.
TEST(TrainerTest, TestEachEpochLogsTestFiguresWithoutChangingTheRun) {
  distrnn::testing::TempDir dir;
  TrainerConfig plain = LmConfig();
  plain.run_dir = dir.Join("plain");
  TrainerConfig each = LmConfig();
  each.test_each_epoch = true;
  each.run_dir = dir.Join("each");
  const Outcome a = RunTask(LmFactory(), 1, plain);
  const Outcome b = RunTask(LmFactory(), 1, each);
  ASSERT_TRUE(a.status.ok()) << a.status;
  ASSERT_TRUE(b.status.ok()) << b.status;
  EXPECT_EQ(a.result.step_losses, b.result.step_losses);
  EXPECT_TRUE(AllEqual(a.params, b.params));
  for (const auto& record : fixtures::ReadMetrics(plain.run_dir, "valid")) EXPECT_FALSE(record.contains("test_loss"));
  const auto valid = fixtures::ReadMetrics(each.run_dir, "valid");
  ASSERT_EQ(valid.size(), 2u);
  const auto test = fixtures::ReadMetrics(each.run_dir, "test");
  ASSERT_EQ(test.size(), 1u);
  const int64_t best_epoch = test[0].at("best_epoch");
  ASSERT_GE(best_epoch, 1);
  for (const auto& record : valid) {
    ASSERT_TRUE(record.contains("test_loss")) << record.dump();
    if (record.at("epoch") == best_epoch) {
      EXPECT_DOUBLE_EQ(record.at("test_loss").get<double>(), test[0].at("test_loss").get<double>());
    }
  }
  EXPECT_NE(valid[0].at("test_loss"), valid[1].at("test_loss"));
}

// ---- bad input: a clear refusal, nothing written --------------------------------------

// A finished LM run (2 steps, a checkpoint each) and a copy run of the same architecture.
class TrainerBadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TrainerConfig config = LmConfig();
    config.max_steps = 2;
    config.checkpoint_every_steps = 1;
    config.run_dir = lm_dir();
    ASSERT_TRUE(RunTask(LmFactory(), 1, config).status.ok());
    TrainerConfig copy = AdamConfig(8);
    copy.max_steps = 1;
    copy.run_dir = copy_dir();
    ASSERT_TRUE(RunTask(CopyFactory(), 1, copy).status.ok());
  }

  std::string lm_dir() const { return dir_.Join("lm"); }
  std::string copy_dir() const { return dir_.Join("copy"); }
  std::string lm_checkpoint() const { return lm_dir() + "/checkpoint-000000002.pt"; }

  // Runs `make` with `config` on the LM run dir: refused with `code` and a message
  // containing `words`, no file of either run dir changed, the model untouched.
  void ExpectRefused(const TaskFactory& make, TrainerConfig config, absl::StatusCode code, const std::string& words) {
    if (config.run_dir.empty()) config.run_dir = lm_dir();
    const auto lm_before = fixtures::SnapshotDir(lm_dir());
    const auto copy_before = fixtures::SnapshotDir(copy_dir());
    std::unique_ptr<TrainTask> task = make(7);
    const std::vector<torch::Tensor> init = CloneParams(task->model());
    comm::LocalCommunicator comm;
    auto result = Trainer(comm, *task, config).Run();
    ASSERT_FALSE(result.ok());
    EXPECT_EQ(result.status().code(), code) << result.status();
    EXPECT_THAT(std::string(result.status().message()), HasSubstr(words));
    EXPECT_TRUE(fixtures::SnapshotDir(lm_dir()) == lm_before) << "the LM run dir changed";
    EXPECT_TRUE(fixtures::SnapshotDir(copy_dir()) == copy_before) << "the copy run dir changed";
    EXPECT_TRUE(AllEqual(CloneParams(task->model()), init));
  }

  distrnn::testing::TempDir dir_;
};

TEST_F(TrainerBadInputTest, ResumePathThatDoesNotExist) {
  TrainerConfig config = LmConfig();
  config.resume = dir_.Join("nowhere/checkpoint-000000002.pt");
  ExpectRefused(LmFactory(), config, absl::StatusCode::kNotFound, "nowhere/checkpoint-000000002.pt");
}

TEST_F(TrainerBadInputTest, CheckpointOfAnotherTask) {
  TrainerConfig config = LmConfig();
  config.resume = copy_dir() + "/checkpoint-000000001.pt";
  ExpectRefused(LmFactory(), config, absl::StatusCode::kInvalidArgument, "'task'");
}

TEST_F(TrainerBadInputTest, AnotherModelShapeNamesTheField) {
  TrainerConfig config = LmConfig();
  config.resume = "auto";
  ExpectRefused(LmFactory(4, /*hidden=*/12), config, absl::StatusCode::kInvalidArgument, "'hidden_size'");
}

TEST_F(TrainerBadInputTest, AnotherGlobalBatchNamesTheField) {
  TrainerConfig config = LmConfig();
  config.batch_size = 8;
  config.resume = lm_checkpoint();
  ExpectRefused(LmFactory(/*batch=*/8), config, absl::StatusCode::kInvalidArgument, "'batch_size'");
}

TEST_F(TrainerBadInputTest, BitFlippedCheckpointFailsItsChecksum) {
  std::string bytes = fixtures::ReadBytes(lm_checkpoint());
  ASSERT_GT(bytes.size(), 4096u);
  bytes[bytes.size() - 2000] ^= 0x10;  // inside the payload
  fixtures::WriteBytes(lm_checkpoint(), bytes);
  TrainerConfig config = LmConfig();
  config.resume = "auto";  // `latest` names the flipped file
  ExpectRefused(LmFactory(), config, absl::StatusCode::kInvalidArgument, "checksum");
}

TEST_F(TrainerBadInputTest, LatestNamingAMissingFile) {
  fixtures::WriteBytes(lm_dir() + "/latest", "checkpoint-000000099.pt\n");
  TrainerConfig config = LmConfig();
  config.resume = "auto";
  ExpectRefused(LmFactory(), config, absl::StatusCode::kInvalidArgument, "checkpoint-000000099.pt");
}

// Checksums catch corruption, not a header edited by hand or written by another tool:
// each value below is re-stamped with valid CRCs and must be refused before any step
// (exit 2), naming what is wrong, not fail later (a negative step indexed out of range,
// a step of 2^31 ran for minutes, a string world size threw from the JSON library).
TEST_F(TrainerBadInputTest, HandEditedTrainingStateIsRefusedBeforeAnyStep) {
  const std::string original = fixtures::ReadBytes(lm_checkpoint());
  const std::optional<fuzz::CheckpointParts> parts = fuzz::SplitCheckpoint(original);
  ASSERT_TRUE(parts.has_value());
  const nlohmann::json meta = parts->header["meta"];
  struct Edit {
    std::string pointer;  // JSON pointer into the metadata
    nlohmann::json value;
    std::string words;    // in the refusal
  };
  const std::vector<Edit> edits = {
      {"/progress/step", -1, "step -1 outside"},
      {"/progress/step", int64_t{1} << 31, "step 2147483648 outside"},
      {"/progress/epoch", 0, "epoch 0 < 1"},
      {"/progress/global_step", 0, "global_step 0 < step"},
      {"/progress/lr", -1e308, "lr -1e+308"},
      {"/progress/lr", 0.0, "lr 0"},
      {"/progress/best_epoch", 5, "best_epoch 5"},
      {"/progress/skipped_steps", -3, "skipped_steps -3"},
      {"/progress/epoch_units", -1.0, "negative running counts"},
      {"/progress/step", "two", "malformed training state"},
      {"/trainer", "sgd", "'trainer' is not an object"},
      {"/trainer/batch_size", "4", "'batch_size'"},
  };
  for (const Edit& edit : edits) {
    SCOPED_TRACE(edit.pointer + " := " + edit.value.dump());
    nlohmann::json edited = meta;
    edited[nlohmann::json::json_pointer(edit.pointer)] = edit.value;
    fixtures::WriteBytes(lm_checkpoint(), fuzz::StampCheckpoint(edited, parts->payload));
    TrainerConfig config = LmConfig();
    config.resume = lm_checkpoint();
    ExpectRefused(LmFactory(), config, absl::StatusCode::kInvalidArgument, edit.words);
  }
  // A world size of another type is only logged (any world size may resume): it resumes.
  nlohmann::json edited = meta;
  edited["world_size"] = "two";
  fixtures::WriteBytes(lm_checkpoint(), fuzz::StampCheckpoint(edited, parts->payload));
  TrainerConfig config = LmConfig();
  config.resume = lm_checkpoint();
  config.max_steps = 2;
  config.run_dir = dir_.Join("resumed");
  std::unique_ptr<TrainTask> task = LmFactory()(7);
  comm::LocalCommunicator comm;
  EXPECT_TRUE(Trainer(comm, *task, config).Run().ok());
}

// Run() reports it before the first step (Note: a run dir under a regular file).
TEST_F(TrainerBadInputTest, UnwritableRunDirBeforeAnyStep) {
  const std::string file = dir_.WriteFile("plain", "not a directory");
  TrainerConfig config = LmConfig();
  config.run_dir = file + "/run";
  ExpectRefused(LmFactory(), config, absl::StatusCode::kInvalidArgument, file);
  EXPECT_EQ(fixtures::ReadBytes(file), "not a directory");
}

// ---- configuration ----------------------------------------------------------------------

TEST(TrainerConfigTest, ValidateRefusesBadValues) {
  EXPECT_TRUE(LmConfig().Validate().ok());
  auto refused = [](std::function<void(TrainerConfig&)> change) {
    TrainerConfig c = LmConfig();
    change(c);
    return c.Validate().code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.batch_size = 0; }));
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.micro_batches = 3; }));  // 4 % 3 != 0
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.max_epochs = 0; }));
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.max_steps = -1; }));
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.lr.base_lr = 0.0; }));
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.lr.decay = 1.5; }));
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.clip_norm = -1.0; }));
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.keep_checkpoints = 0; }));
  EXPECT_TRUE(refused([](TrainerConfig& c) { c.resume = ""; }));
  EXPECT_EQ(*ParseOptimizer("adam"), OptimizerKind::kAdam);
  EXPECT_EQ(ParseOptimizer("rmsprop").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TrainerConfigTest, RunRefusesABadConfigBeforeAnyStep) {
  TrainerConfig config = LmConfig();
  config.micro_batches = 3;
  const Outcome run = RunTask(LmFactory(), 1, config);
  EXPECT_EQ(run.status.code(), absl::StatusCode::kInvalidArgument);
  std::unique_ptr<TrainTask> fresh = LmFactory()(1);
  EXPECT_TRUE(AllEqual(run.params, CloneParams(fresh->model())));
}

TEST(TrainerConfigTest, ResolveResume) {
  distrnn::testing::TempDir dir;
  TrainerConfig config = LmConfig();
  EXPECT_EQ(*Trainer::ResolveResume(config), "");  // resume none
  config.resume = "auto";
  EXPECT_EQ(*Trainer::ResolveResume(config), "");  // no run dir
  config.run_dir = dir.Join("empty");
  EXPECT_EQ(*Trainer::ResolveResume(config), "");  // no `latest` yet: a fresh start
  config.resume = "/some/file.pt";
  EXPECT_EQ(*Trainer::ResolveResume(config), "/some/file.pt");
}

}  // namespace
}  // namespace distrnn::train
