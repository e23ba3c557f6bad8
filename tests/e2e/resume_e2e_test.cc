// The distrnn binary end to end, one process against mpiexec -n 2 and -n 3: the same
// global batch trains the same model whatever the world size (dropout included), and a
// run checkpointed on one world size resumes on another along the same trajectory. The
// per-step losses come from each run's metrics.jsonl (--log_every=1).
#include <cmath>
#include <fstream>
#include <map>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/corpus.h"
#include "support/temp_dir.h"

namespace distrnn {
namespace {

using ::testing::HasSubstr;

// global step -> loss, and the last valid loss, from <run>/metrics.jsonl.
struct Metrics {
  std::map<int64_t, double> step_loss;
  double last_valid_loss = 0.0;
};

Metrics ReadMetrics(const std::string& path) {
  Metrics m;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const nlohmann::json record = nlohmann::json::parse(line);
    const std::string type = record.value("type", "");
    if (type == "progress") m.step_loss[record.at("global_step").get<int64_t>()] = record.at("loss").get<double>();
    if (type == "valid") m.last_valid_loss = record.at("valid_loss").get<double>();
  }
  return m;
}

class ResumeE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WritePtbCorpus(dir_, testing::TinyLmCorpus, 300, 40);
  }
  // `ranks` == 1: one process without MPI; otherwise mpiexec -n ranks.
  std::string Train(int ranks, const std::string& run, const std::string& extra) const {
    const std::string args = " train --data_dir=" + dir_.Join("data") + " --run_dir=" + dir_.Join(run) +
                             " --hidden_size=12 --num_layers=2 --dropout=0.3 --batch_size=6 --num_steps=5"
                             " --eval_batch_size=2 --threads=1 --log_every=1 --max_epochs=2 " + extra;
    if (ranks == 1) return testing::DistrnnBinary() + args;
    return std::string("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 10 120 ") + DISTRNN_MPIEXEC +
           " -n " + std::to_string(ranks) + " --oversubscribe " + testing::DistrnnBinary() + args + " --comm=mpi";
  }
  void ExpectOk(const std::string& command, std::string* output = nullptr) const {
    std::string text;
    ASSERT_EQ(testing::RunCommand(command, &text), 0) << command << "\n" << text;
    if (output != nullptr) *output = text;
  }
  // Losses of `got` at every step it logged equal the reference's (1e-4 relative).
  static void ExpectSameLosses(const Metrics& got, const Metrics& want, int64_t first_step, int64_t last_step) {
    for (int64_t s = first_step; s <= last_step; ++s) {
      ASSERT_TRUE(got.step_loss.count(s)) << "no loss at step " << s;
      ASSERT_TRUE(want.step_loss.count(s)) << "no reference loss at step " << s;
      EXPECT_NEAR(got.step_loss.at(s), want.step_loss.at(s), 1e-4 * want.step_loss.at(s)) << "step " << s;
    }
  }
  testing::TempDir dir_;
};

TEST_F(ResumeE2eTest, OneAndTwoRanksTrainTheSameModelWithDropout) {
  ExpectOk(Train(1, "one", "--max_steps=30"));
  ExpectOk(Train(2, "two", "--max_steps=30"));
  const Metrics one = ReadMetrics(dir_.Join("one/metrics.jsonl"));
  const Metrics two = ReadMetrics(dir_.Join("two/metrics.jsonl"));
  ExpectSameLosses(two, one, 1, 30);
  EXPECT_NEAR(two.last_valid_loss, one.last_valid_loss, 1e-4 * one.last_valid_loss);
}

TEST_F(ResumeE2eTest, CheckpointOnTwoRanksResumesOnThreeAndOnThreeResumesOnOne) {
  ExpectOk(Train(1, "reference", "--max_steps=40"));
  const Metrics reference = ReadMetrics(dir_.Join("reference/metrics.jsonl"));

  // 2 -> 3: killed (here: stopped) after step 13, mid-epoch, with a checkpoint every 13 steps.
  ExpectOk(Train(2, "a", "--max_steps=13 --checkpoint_every_steps=13"));
  std::string output;
  ExpectOk(Train(3, "a", "--max_steps=40 --resume=auto"), &output);
  EXPECT_THAT(output, HasSubstr("resumed from"));
  EXPECT_THAT(output, HasSubstr("world size 2 -> 3"));
  ExpectSameLosses(ReadMetrics(dir_.Join("a/metrics.jsonl")), reference, 14, 40);

  // 3 -> 1.
  ExpectOk(Train(3, "b", "--max_steps=17 --checkpoint_every_steps=17"));
  ExpectOk(Train(1, "b", "--max_steps=40 --resume=auto"), &output);
  EXPECT_THAT(output, HasSubstr("world size 3 -> 1"));
  const Metrics b = ReadMetrics(dir_.Join("b/metrics.jsonl"));
  ExpectSameLosses(b, reference, 18, 40);
  EXPECT_NEAR(b.last_valid_loss, reference.last_valid_loss, 1e-4 * reference.last_valid_loss);
}

TEST_F(ResumeE2eTest, SameWorldSizeResumeEndsExactlyWhereTheUninterruptedRunEnds) {
  ExpectOk(Train(2, "whole", "--max_steps=40"));
  ExpectOk(Train(2, "parts", "--max_steps=20 --checkpoint_every_steps=20"));
  ExpectOk(Train(2, "parts", "--max_steps=40 --resume=auto"));
  const Metrics whole = ReadMetrics(dir_.Join("whole/metrics.jsonl"));
  const Metrics parts = ReadMetrics(dir_.Join("parts/metrics.jsonl"));
  for (int64_t s = 21; s <= 40; ++s) EXPECT_EQ(parts.step_loss.at(s), whole.step_loss.at(s)) << "step " << s;
  EXPECT_EQ(parts.last_valid_loss, whole.last_valid_loss);
}

}  // namespace
}  // namespace distrnn
