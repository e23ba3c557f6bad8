// `distrnn train --task=copy` end to end: nonsensical sequence lengths and counts get one
// clear line and exit code 2 before anything is written; a tiny run trains, evaluates at
// both lengths and leaves metrics and a checkpoint.
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace distrnn {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Case-insensitive count (Abseil's flag parser says "ERROR:", ours "error:").
int Occurrences(std::string text, const std::string& word) {
  for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  int n = 0;
  for (size_t at = text.find(word); at != std::string::npos; at = text.find(word, at + 1)) ++n;
  return n;
}

class CopyCliTest : public ::testing::Test {
 protected:
  int Run(const std::string& args, std::string* output) {
    return testing::RunCommand(testing::DistrnnBinary() + " " + args, output);
  }
  std::string TrainArgs() const {
    return "train --task=copy --run_dir=" + dir_.Join("run") +
           " --hidden_size=8 --num_layers=1 --batch_size=4 --eval_batch_size=8 --lr=0.01 --threads=1"
           " --copy_train_symbols=3 --copy_train_length=3 --copy_test_symbols=5 --copy_test_length=5"
           " --copy_train_samples=40 --copy_test_samples=8 --steps_per_epoch=5 --max_epochs=1";
  }
  void ExpectBadInput(const std::string& args, const std::string& message) {
    std::string output;
    EXPECT_EQ(Run(args, &output), 2) << output;
    EXPECT_THAT(output, HasSubstr(message));
    EXPECT_EQ(Occurrences(output, "error"), 1) << output;  // one error line
    EXPECT_THAT(output, Not(HasSubstr("Exception raised from")));
    EXPECT_FALSE(std::filesystem::exists(dir_.Join("run/latest")));
  }
  testing::TempDir dir_;
};

TEST_F(CopyCliTest, TinyRunTrainsAndReportsBothLengths) {
  std::string output;
  ASSERT_EQ(Run(TrainArgs(), &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("K=3 P=1 L=3 (T=7)"));
  EXPECT_THAT(output, HasSubstr("K=5 P=1 L=5 (T=11)"));
  EXPECT_THAT(output, HasSubstr("| valid_step_accuracy "));
  EXPECT_THAT(output, HasSubstr("| test_length_step_accuracy "));
  EXPECT_THAT(output, HasSubstr("train length: step acc"));
  EXPECT_THAT(output, HasSubstr("test length: step acc"));
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("run/latest")));
  std::ifstream metrics(dir_.Join("run/metrics.jsonl"));
  std::string all((std::istreambuf_iterator<char>(metrics)), std::istreambuf_iterator<char>());
  EXPECT_THAT(all, HasSubstr("\"type\":\"valid\""));
  EXPECT_THAT(all, HasSubstr("\"test_length_sequence_accuracy\""));
}

TEST_F(CopyCliTest, NonsensicalLengths) {
  // P = 0 with L > K: there is nothing to copy beyond the K symbols.
  ExpectBadInput(TrainArgs() + " --copy_delimiters=0 --copy_train_length=4",
                 "train sequences (--copy_train_symbols, --copy_delimiters, --copy_train_length): copy task: "
                 "L (copy length) must be <= K");
  ExpectBadInput(TrainArgs() + " --copy_train_length=0", "L (copy length) must be >= 1");
  ExpectBadInput(TrainArgs() + " --copy_train_symbols=0", "K (symbols) must be >= 1");
  ExpectBadInput(TrainArgs() + " --copy_delimiters=-1", "P (delimiters) must be >= 0");
  ExpectBadInput(TrainArgs() + " --copy_test_length=6", "test sequences (--copy_test_symbols");
  ExpectBadInput(TrainArgs() + " --copy_test_symbols=2000000", "must be <=");
}

TEST_F(CopyCliTest, BadCountsAndOptimizerSettings) {
  ExpectBadInput(TrainArgs() + " --copy_train_samples=0", "--copy_train_samples must be positive");
  ExpectBadInput(TrainArgs() + " --copy_test_samples=-5", "--copy_test_samples must be positive");
  ExpectBadInput(TrainArgs() + " --steps_per_epoch=-1", "--steps_per_epoch must be >= 0");
  ExpectBadInput(TrainArgs() + " --clip_value=-0.5", "--clip_value must be >= 0");
  ExpectBadInput(TrainArgs() + " --copy_stop_accuracy=2", "--copy_stop_accuracy must be in [0, 1]");
  ExpectBadInput(TrainArgs() + " --bidirectional", "--bidirectional is for classification");
  ExpectBadInput(TrainArgs() + " --copy_train_symbols=x", "copy_train_symbols");
  ExpectBadInput(TrainArgs() + " --init=xavier", "--init must be uniform or torch, got 'xavier'");
  ExpectBadInput(TrainArgs() + " --copy_curriculum_start=4", "--copy_curriculum_start must be in [0, 3]");
  ExpectBadInput(TrainArgs() + " --copy_curriculum_start=1 --copy_curriculum_step=0",
                 "--copy_curriculum_step must be >= 1");
  ExpectBadInput(TrainArgs() + " --copy_curriculum_start=1 --copy_curriculum_threshold=1.5",
                 "--copy_curriculum_threshold must be in [0, 1]");
  ExpectBadInput(TrainArgs() + " --copy_curriculum_start=1 --copy_curriculum_mix=-0.1",
                 "--copy_curriculum_mix must be in [0, 1]");
}

TEST_F(CopyCliTest, TorchInitIsUsedAndShown) {
  std::string output;
  ASSERT_EQ(Run(TrainArgs() + " --init=torch", &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("| init / dropout               | libtorch defaults (embedding N(0, 1)"));
}

// A curriculum from K=1 in steps of 1 with threshold 0 (a fixed schedule): the level
// grows after each epoch, is logged, and the held-out figures at its length are reported.
TEST_F(CopyCliTest, CurriculumGrowsTheLevelAfterEachLearntEpoch) {
  std::string output;
  ASSERT_EQ(Run(TrainArgs() + " --max_epochs=3 --copy_curriculum_start=1 --copy_curriculum_step=1"
                              " --copy_curriculum_threshold=0 --copy_curriculum_mix=0",
                &output),
            0)
      << output;
  EXPECT_THAT(output, HasSubstr("from K=1, +1 when"));
  EXPECT_THAT(output, HasSubstr("| curriculum_level 1.0000 |"));
  EXPECT_THAT(output, HasSubstr("curriculum: K=1 -> K=2 (held-out copied symbols at K=1: "));
  EXPECT_THAT(output, HasSubstr("curriculum: K=2 -> K=3"));
  EXPECT_THAT(output, HasSubstr("| level_step_accuracy "));
  // At the full K (3, reached after two epochs) the level's figures are the valid ones.
  EXPECT_THAT(output, HasSubstr("| curriculum_level 3.0000 |"));
}

}  // namespace
}  // namespace distrnn
