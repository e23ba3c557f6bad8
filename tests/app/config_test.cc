// The shipped PTB configs carry Zaremba et al.'s hyperparameters: the learning rate of
// every epoch, sizes and the loss convention.
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/flags/parse.h"
#include "app/lm_task.h"

namespace distrnn::app {
namespace {

LmTaskOptions ParseConfig(const std::string& name) {
  const char* source = std::getenv("DISTRNN_SOURCE_DIR");
  EXPECT_NE(source, nullptr);
  EXPECT_EQ(chdir(source), 0);  // configs include each other by repo-relative path
  std::string flagfile = "--flagfile=configs/" + name;
  std::vector<char*> argv = {const_cast<char*>("distrnn"), flagfile.data()};
  absl::ParseCommandLine(static_cast<int>(argv.size()), argv.data());
  auto run = RunOptionsFromFlags();
  EXPECT_TRUE(run.ok()) << run.status();
  auto options = LmTaskOptionsFromFlags(*run);
  EXPECT_TRUE(options.ok()) << options.status();
  return *options;
}

std::vector<double> EpochLrs(const LmTaskOptions& o) {
  train::LrSchedule schedule(o.trainer.lr);
  std::vector<double> lrs = {schedule.lr()};
  for (int64_t e = 1; e < o.trainer.max_epochs; ++e) lrs.push_back(schedule.NextAfterEpoch(e, 1.0));
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

TEST(ConfigTest, PtbSmall) {
  LmTaskOptions o = ParseConfig("ptb_small.flags");
  EXPECT_EQ(o.lm.stack.num_layers, 2);
  EXPECT_EQ(o.lm.stack.hidden_size, 200);
  EXPECT_EQ(o.trainer.num_steps, 20);
  EXPECT_EQ(o.trainer.batch_size, 20);
  EXPECT_DOUBLE_EQ(o.lm.init_scale, 0.1);
  EXPECT_DOUBLE_EQ(o.lm.dropout, 0.0);
  EXPECT_DOUBLE_EQ(o.trainer.clip_norm, 5.0);
  EXPECT_EQ(o.trainer.loss_reduction, train::LossReduction::kSumStepsMeanBatch);
  ExpectLrs(EpochLrs(o), Published(0.5, 4, 13));
  EXPECT_DOUBLE_EQ(EpochLrs(o)[4], 0.5);  // epoch 5
}

TEST(ConfigTest, PtbSmallGruOnlyChangesTheCell) {
  LmTaskOptions o = ParseConfig("ptb_small_gru.flags");
  EXPECT_EQ(o.lm.stack.cell, model::CellType::kGru);
  EXPECT_EQ(o.lm.stack.hidden_size, 200);
  ExpectLrs(EpochLrs(o), Published(0.5, 4, 13));
}

TEST(ConfigTest, PtbMedium) {
  LmTaskOptions o = ParseConfig("ptb_medium.flags");
  EXPECT_EQ(o.lm.stack.hidden_size, 650);
  EXPECT_EQ(o.trainer.num_steps, 35);
  EXPECT_DOUBLE_EQ(o.lm.init_scale, 0.05);
  EXPECT_DOUBLE_EQ(o.lm.dropout, 0.5);
  EXPECT_DOUBLE_EQ(o.trainer.clip_norm, 5.0);
  ExpectLrs(EpochLrs(o), Published(1 / 1.2, 6, 39));
}

TEST(ConfigTest, PtbLarge) {
  LmTaskOptions o = ParseConfig("ptb_large.flags");
  EXPECT_EQ(o.lm.stack.hidden_size, 1500);
  EXPECT_EQ(o.trainer.num_steps, 35);
  EXPECT_DOUBLE_EQ(o.lm.init_scale, 0.04);
  EXPECT_DOUBLE_EQ(o.lm.dropout, 0.65);
  EXPECT_DOUBLE_EQ(o.trainer.clip_norm, 10.0);
  ExpectLrs(EpochLrs(o), Published(1 / 1.15, 14, 55));
}

}  // namespace
}  // namespace distrnn::app
