// Checkpointing and resume through the binary: --max_steps counts from the start of the
// run, the start-up table says what was resumed, and every bad resume input is one
// clear line with exit code 2 that leaves the run directory as it was.
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/corpus.h"
#include "support/temp_dir.h"

namespace distrnn {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

class ResumeCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WritePtbCorpus(dir_, testing::SmallWordCorpus, 200, 30);
  }
  int Train(const std::string& extra, std::string* output, const std::string& run = "run") const {
    return testing::RunCommand(testing::DistrnnBinary() + " train --data_dir=" + dir_.Join("data") + " --run_dir=" +
                                   dir_.Join(run) + " --hidden_size=8 --num_layers=1 --batch_size=4 --num_steps=5"
                                   " --eval_batch_size=2 --threads=1 --max_epochs=3 " + extra,
                               output);
  }
  // A run of 20 steps with a checkpoint every 10 (latest: step 20).
  void TrainTwentySteps() const {
    std::string output;
    ASSERT_EQ(Train("--max_steps=20 --checkpoint_every_steps=10", &output), 0) << output;
  }
  // Exit 2, one error line holding `message`, and the run directory untouched.
  void ExpectRefused(const std::string& extra, const std::string& message) const {
    const std::string latest = ReadAll(dir_.Join("run/latest"));
    const std::string checkpoint = ReadAll(dir_.Join("run/checkpoint-000000020.pt"));
    std::string output;
    EXPECT_EQ(Train(extra, &output), 2) << output;
    EXPECT_THAT(output, HasSubstr("distrnn: error: "));
    EXPECT_THAT(output, HasSubstr(message));
    EXPECT_THAT(output, Not(HasSubstr("| epoch   1 |")));
    EXPECT_THAT(output, Not(HasSubstr("Exception raised from")));
    EXPECT_EQ(ReadAll(dir_.Join("run/latest")), latest);
    EXPECT_EQ(ReadAll(dir_.Join("run/checkpoint-000000020.pt")), checkpoint);
  }
  testing::TempDir dir_;
};

TEST_F(ResumeCliTest, MaxStepsCountFromTheStartOfTheRun) {
  TrainTwentySteps();
  std::string output;
  ASSERT_EQ(Train("--max_steps=40 --resume=auto", &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("| resume "));
  EXPECT_THAT(output, HasSubstr("from " + dir_.Join("run/checkpoint-000000020.pt")));
  EXPECT_THAT(output, HasSubstr("global step 20"));
  EXPECT_THAT(output, HasSubstr("| done | epochs 0 | steps 40 |"));
  EXPECT_THAT(output, HasSubstr("max_steps changed from 20 to 40"));
  EXPECT_EQ(ReadAll(dir_.Join("run/latest")), "checkpoint-000000040.pt\n");
}

TEST_F(ResumeCliTest, AutoWithoutCheckpointStartsFresh) {
  std::string output;
  ASSERT_EQ(Train("--max_steps=5 --resume=auto", &output, "fresh"), 0) << output;
  EXPECT_THAT(output, HasSubstr("fresh start (no checkpoint in the run dir)"));
}

TEST_F(ResumeCliTest, BadResumeInputIsRefusedAndChangesNothing) {
  TrainTwentySteps();
  ExpectRefused("--resume=" + dir_.Join("nowhere.pt"), "no such checkpoint");
  ExpectRefused("--resume=auto --hidden_size=9 --embedding_size=8", "'hidden_size' differs");
  ExpectRefused("--resume=auto --batch_size=2", "'batch_size'");
  ExpectRefused("--resume=auto --cell=gru", "'cell' differs");
  ExpectRefused("--resume=" + dir_.Join("data/ptb/ptb.train.txt"), "is not a distrnn checkpoint");
}

TEST_F(ResumeCliTest, CorruptCheckpointAndDanglingLatestAreRefused) {
  TrainTwentySteps();
  // One flipped bit in the payload.
  const std::string path = dir_.Join("run/checkpoint-000000020.pt");
  std::string bytes = ReadAll(path);
  bytes[bytes.size() - 100] ^= 0x10;
  dir_.WriteFile("run/flipped.pt", bytes);
  ExpectRefused("--resume=" + dir_.Join("run/flipped.pt"), "checksum mismatch");
  // A truncated copy.
  dir_.WriteFile("run/short.pt", bytes.substr(0, bytes.size() / 2));
  ExpectRefused("--resume=" + dir_.Join("run/short.pt"), "truncated");
  // latest names a file that is gone.
  std::filesystem::rename(path, dir_.Join("run/moved.pt"));
  std::string output;
  EXPECT_EQ(Train("--resume=auto", &output), 2) << output;
  EXPECT_THAT(output, HasSubstr("which does not exist"));
}

TEST_F(ResumeCliTest, CheckpointOfAnotherTaskIsRefused) {
  TrainTwentySteps();
  std::string output;
  ASSERT_EQ(testing::RunCommand(testing::DistrnnBinary() + " train --task=copy --copy_train_symbols=3"
                                " --copy_train_length=3 --copy_test_symbols=4 --copy_test_length=4"
                                " --copy_train_samples=64 --copy_test_samples=8 --batch_size=4 --eval_batch_size=8"
                                " --steps_per_epoch=3 --max_epochs=1 --hidden_size=8 --num_layers=1 --threads=1"
                                " --run_dir=" + dir_.Join("copy"),
                                &output),
            0)
      << output;
  ExpectRefused("--resume=" + dir_.Join("copy/best.pt"), "'task' differs");
}

TEST_F(ResumeCliTest, UnwritableRunDirectoryIsReportedBeforeTraining) {
  const std::string file = dir_.WriteFile("plain_file", "x");
  std::string output;
  EXPECT_EQ(Train("--max_steps=5", &output, "plain_file/run"), 2) << output;
  EXPECT_THAT(output, HasSubstr("distrnn: error: "));
  EXPECT_THAT(output, Not(HasSubstr("| epoch   1 |")));
}

}  // namespace
}  // namespace distrnn
