// Every shipped config parses and validates, and the PTB configs carry Zaremba et al.'s
// hyperparameters: the learning rate of every epoch, sizes and the loss convention.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "app/common_flags.h"
#include "app/train_command.h"
#include "support/temp_dir.h"

ABSL_DECLARE_FLAG(int32_t, num_steps);
ABSL_DECLARE_FLAG(std::string, loss_reduction);
ABSL_DECLARE_FLAG(int32_t, copy_train_symbols);
ABSL_DECLARE_FLAG(int32_t, copy_delimiters);
ABSL_DECLARE_FLAG(int32_t, copy_train_length);
ABSL_DECLARE_FLAG(int32_t, copy_test_symbols);
ABSL_DECLARE_FLAG(int32_t, copy_test_length);
ABSL_DECLARE_FLAG(int64_t, copy_train_samples);
ABSL_DECLARE_FLAG(int32_t, vocab_size);
ABSL_DECLARE_FLAG(int32_t, copy_curriculum_start);
ABSL_DECLARE_FLAG(int32_t, copy_curriculum_step);
ABSL_DECLARE_FLAG(double, copy_curriculum_threshold);
ABSL_DECLARE_FLAG(int32_t, max_len);

namespace distrnn::app {
namespace {

struct Parsed {
  RunOptions run;
  train::TrainerConfig trainer;
};

// Parses configs/<name> over the flags' defaults (the caller holds a FlagSaver).
Parsed ParseConfig(const std::string& name) {
  EXPECT_EQ(chdir(testing::SourceDir().c_str()), 0);  // configs are named by repo-relative path
  std::string flagfile = "--flagfile=configs/" + name;
  std::vector<char*> argv = {const_cast<char*>("distrnn"), flagfile.data()};
  absl::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  Parsed p;
  auto run = RunOptionsFromFlags();
  EXPECT_TRUE(run.ok()) << name << ": " << run.status();
  if (!run.ok()) return p;
  p.run = *run;
  auto entry = FindTask(run->task);
  EXPECT_TRUE(entry.ok()) << name << ": " << entry.status();
  if (!entry.ok()) return p;
  auto trainer = TrainerConfigFromFlags(*run, **entry);
  EXPECT_TRUE(trainer.ok()) << name << ": " << trainer.status();
  if (trainer.ok()) p.trainer = *trainer;
  auto prepared = (*entry)->prepare(*run);  // the task's own flags
  EXPECT_TRUE(prepared.ok()) << name << ": " << prepared.status();
  return p;
}

std::vector<double> EpochLrs(const train::TrainerConfig& t) {
  train::LrSchedule schedule(t.lr);
  std::vector<double> lrs = {schedule.lr()};
  for (int64_t e = 1; e < t.max_epochs; ++e) lrs.push_back(schedule.NextAfterEpoch(e, 1.0));
  return lrs;
}

// Zaremba: lr_epoch(e) = base * decay^max(e - max_epoch, 0), e = 1..max_max_epoch.
std::vector<double> Published(double decay, int max_epoch, int max_max_epoch, double base = 1.0) {
  std::vector<double> lrs;
  for (int e = 1; e <= max_max_epoch; ++e)
    lrs.push_back(base * std::pow(decay, std::max(e - max_epoch, 0)));
  return lrs;
}

void ExpectLrs(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "epoch " << i + 1;
}

TEST(ConfigTest, EveryShippedConfigParsesAndValidates) {
  const std::filesystem::path dir = std::filesystem::path(testing::SourceDir()) / "configs";
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".flags") continue;
    absl::FlagSaver saver;
    Parsed p = ParseConfig(entry.path().filename().string());
    EXPECT_FALSE(p.run.run_dir.empty()) << entry.path() << " names no --run_dir";
    ++checked;
  }
  EXPECT_GE(checked, 14);
}

TEST(ConfigTest, PtbSmall) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("ptb_small.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_num_layers), 2);
  EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 200);
  EXPECT_EQ(absl::GetFlag(FLAGS_num_steps), 20);
  EXPECT_EQ(p.trainer.batch_size, 20);
  EXPECT_EQ(p.trainer.optimizer, train::OptimizerKind::kSgd);
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_init_scale), 0.1);
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_dropout), 0.0);
  EXPECT_DOUBLE_EQ(p.trainer.clip_norm, 5.0);
  EXPECT_EQ(absl::GetFlag(FLAGS_loss_reduction), "sum_steps_mean_batch");
  ExpectLrs(EpochLrs(p.trainer), Published(0.5, 4, 13));
  EXPECT_DOUBLE_EQ(EpochLrs(p.trainer)[4], 0.5);  // epoch 5
}

// The GRU keeps ptb_small's sizes and schedule at a third of its lr (lr 1 diverged).
TEST(ConfigTest, PtbSmallGruChangesTheCellAndTheBaseLr) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("ptb_small_gru.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_cell), "gru");
  EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 200);
  EXPECT_EQ(absl::GetFlag(FLAGS_num_steps), 20);
  ExpectLrs(EpochLrs(p.trainer), Published(0.5, 4, 13, 0.33));
}

TEST(ConfigTest, PtbMedium) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("ptb_medium.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 650);
  EXPECT_EQ(absl::GetFlag(FLAGS_num_steps), 35);
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_init_scale), 0.05);
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_dropout), 0.5);
  EXPECT_DOUBLE_EQ(p.trainer.clip_norm, 5.0);
  ExpectLrs(EpochLrs(p.trainer), Published(1 / 1.2, 6, 39));
}

TEST(ConfigTest, PtbLarge) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("ptb_large.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 1500);
  EXPECT_EQ(absl::GetFlag(FLAGS_num_steps), 35);
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_init_scale), 0.04);
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_dropout), 0.65);
  EXPECT_DOUBLE_EQ(p.trainer.clip_norm, 10.0);
  ExpectLrs(EpochLrs(p.trainer), Published(1 / 1.15, 14, 55));
}

// The x0.8-per-epoch variants of ptb_small_dropout: lr 1 for 12 epochs (gentle), for 16
// (late), or lr 2 for 12 (lr2, the original's 2:1 ratio of its dropout and plain LSTMs).
TEST(ConfigTest, PtbSmallDropoutVariantsDecayByPoint8) {
  struct Variant {
    const char* name;
    int last_epoch_at_base_lr;
    double base_lr;
  };
  for (const Variant& v : {Variant{"ptb_small_dropout_gentle.flags", 12, 1.0},
                           Variant{"ptb_small_dropout_late.flags", 16, 1.0},
                           Variant{"ptb_small_dropout_lr2.flags", 12, 2.0}}) {
    absl::FlagSaver saver;
    Parsed p = ParseConfig(v.name);
    EXPECT_EQ(absl::GetFlag(FLAGS_cell), "lstm") << v.name;
    EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_dropout), 0.33) << v.name;
    EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 200) << v.name;
    EXPECT_TRUE(p.trainer.test_each_epoch) << v.name;
    ExpectLrs(EpochLrs(p.trainer), Published(0.8, v.last_epoch_at_base_lr, 30, v.base_lr));
  }
}

TEST(ConfigTest, PtbSmallDropoutKeepsTheSmallModelAndDecaysFromEpoch20) {
  for (const auto& [name, base_lr] :
       {std::pair{"ptb_small_dropout.flags", 1.0}, std::pair{"ptb_small_gru_dropout.flags", 0.33}}) {
    absl::FlagSaver saver;
    Parsed p = ParseConfig(name);
    EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 200) << name;
    EXPECT_EQ(absl::GetFlag(FLAGS_num_steps), 20) << name;
    EXPECT_TRUE(p.trainer.test_each_epoch) << name;
    ExpectLrs(EpochLrs(p.trainer), Published(0.5, 19, 30, base_lr));
  }
  absl::FlagSaver saver;
  ParseConfig("ptb_small_dropout.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_cell), "lstm");
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_dropout), 0.33);
  ParseConfig("ptb_small_gru_dropout.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_cell), "gru");
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_dropout), 0.30);
}

// The original projects' copy task: train 100 symbols / 3 delimiters / copy 100, test 500 /
// copy 200, embedding 16, hidden 256, batch 64, Adam 5e-3, clip by value 1, 10 epochs of
// 10,000 samples.
TEST(ConfigTest, CopyConfigsHaveTheOriginalScale) {
  for (const char* cell : {"rnn", "lstm", "gru", "mlstm", "mgru"}) {
    absl::FlagSaver saver;
    Parsed p = ParseConfig(absl::StrCat("copy_", cell, ".flags"));
    EXPECT_EQ(absl::GetFlag(FLAGS_copy_train_symbols), 100) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_copy_delimiters), 3) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_copy_train_length), 100) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_copy_test_symbols), 500) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_copy_test_length), 200) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_copy_train_samples), 10000) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_embedding_size), 16) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 256) << cell;
    EXPECT_EQ(p.trainer.batch_size, 64) << cell;
    EXPECT_EQ(p.trainer.max_epochs, 10) << cell;
    EXPECT_EQ(p.trainer.optimizer, train::OptimizerKind::kAdam) << cell;
    EXPECT_DOUBLE_EQ(p.trainer.lr.base_lr, 0.005) << cell;
    EXPECT_DOUBLE_EQ(p.trainer.clip_value, 1.0) << cell;
    EXPECT_TRUE(absl::StrContains(absl::GetFlag(FLAGS_cell), cell)) << cell;
  }
}

// The curriculum run keeps the original task and model and adds the curriculum.
TEST(ConfigTest, CopyLstmCurriculumIsTheOriginalTaskWithACurriculum) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("copy_lstm_curriculum.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_cell), "lstm");
  EXPECT_EQ(absl::GetFlag(FLAGS_copy_train_symbols), 100);
  EXPECT_EQ(absl::GetFlag(FLAGS_copy_train_length), 100);
  EXPECT_EQ(absl::GetFlag(FLAGS_copy_test_symbols), 500);
  EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 256);
  EXPECT_EQ(p.trainer.batch_size, 64);
  EXPECT_DOUBLE_EQ(p.trainer.lr.base_lr, 0.005);
  EXPECT_EQ(absl::GetFlag(FLAGS_copy_curriculum_start), 5);
  EXPECT_EQ(absl::GetFlag(FLAGS_copy_curriculum_step), 5);
  EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_copy_curriculum_threshold), 0.95);
}

// The original projects' small IMDB models: embedding 100, one layer of 10, dropout 0.5,
// vocabulary 20,000, whole reviews, Adam 1e-3, 5 epochs, the last epoch tested.
TEST(ConfigTest, ImdbSmallConfigsHaveTheOriginalModels) {
  for (const char* cell : {"rnn", "gru", "lstm", "bilstm"}) {
    absl::FlagSaver saver;
    Parsed p = ParseConfig(absl::StrCat("imdb_small_", cell, ".flags"));
    EXPECT_EQ(p.run.task, "imdb") << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_num_layers), 1) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 10) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_embedding_size), 100) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_vocab_size), 20000) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_max_len), 0) << cell;
    EXPECT_DOUBLE_EQ(absl::GetFlag(FLAGS_dropout), 0.5) << cell;
    EXPECT_EQ(absl::GetFlag(FLAGS_bidirectional), std::string(cell) == "bilstm") << cell;
    EXPECT_EQ(p.trainer.optimizer, train::OptimizerKind::kAdam) << cell;
    EXPECT_DOUBLE_EQ(p.trainer.lr.base_lr, 1e-3) << cell;
    EXPECT_EQ(p.trainer.max_epochs, 5) << cell;
    EXPECT_EQ(p.trainer.batch_size, 4) << cell;
    EXPECT_TRUE(p.trainer.test_each_epoch) << cell;
  }
}

TEST(ConfigTest, AdamTasksDefaultToAdamAndAConstantRate) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("copy_lstm_tiny.flags");
  EXPECT_EQ(p.trainer.optimizer, train::OptimizerKind::kAdam);
  EXPECT_EQ(p.trainer.lr.kind, train::LrScheduleKind::kConstant);
  EXPECT_DOUBLE_EQ(p.trainer.clip_value, 1.0);
}

}  // namespace
}  // namespace distrnn::app
