// Every shipped config parses and validates, and the PTB configs carry Zaremba et al.'s
// hyperparameters: the learning rate of every epoch, sizes and the loss convention.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "app/common_flags.h"
#include "app/train_command.h"

ABSL_DECLARE_FLAG(int32_t, num_steps);
ABSL_DECLARE_FLAG(std::string, loss_reduction);

namespace distrnn::app {
namespace {

struct Parsed {
  RunOptions run;
  train::TrainerConfig trainer;
};

// Parses configs/<name> over the flags' defaults (the caller holds a FlagSaver).
Parsed ParseConfig(const std::string& name) {
  const char* source = std::getenv("DISTRNN_SOURCE_DIR");
  EXPECT_NE(source, nullptr);
  EXPECT_EQ(chdir(source), 0);  // configs are named by repo-relative path
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

// Zaremba: lr_epoch(e) = decay^max(e - max_epoch, 0), e = 1..max_max_epoch.
std::vector<double> Published(double decay, int max_epoch, int max_max_epoch) {
  std::vector<double> lrs;
  for (int e = 1; e <= max_max_epoch; ++e) lrs.push_back(std::pow(decay, std::max(e - max_epoch, 0)));
  return lrs;
}

void ExpectLrs(const std::vector<double>& got, const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << "epoch " << i + 1;
}

TEST(ConfigTest, EveryShippedConfigParsesAndValidates) {
  const std::filesystem::path dir = std::filesystem::path(std::getenv("DISTRNN_SOURCE_DIR")) / "configs";
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

TEST(ConfigTest, PtbSmallGruOnlyChangesTheCell) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("ptb_small_gru.flags");
  EXPECT_EQ(absl::GetFlag(FLAGS_cell), "gru");
  EXPECT_EQ(absl::GetFlag(FLAGS_hidden_size), 200);
  ExpectLrs(EpochLrs(p.trainer), Published(0.5, 4, 13));
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

TEST(ConfigTest, AdamTasksDefaultToAdamAndAConstantRate) {
  absl::FlagSaver saver;
  Parsed p = ParseConfig("copy_lstm.flags");
  EXPECT_EQ(p.trainer.optimizer, train::OptimizerKind::kAdam);
  EXPECT_EQ(p.trainer.lr.kind, train::LrScheduleKind::kConstant);
  EXPECT_DOUBLE_EQ(p.trainer.clip_value, 1.0);
}

}  // namespace
}  // namespace distrnn::app
