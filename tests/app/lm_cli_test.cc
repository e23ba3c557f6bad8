// char_lm training, fine-tuning with --init_from, and `distrnn generate`, end to end.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace distrnn {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

class LmCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string text;
    for (int i = 0; i < 60; ++i) text += "to be or not to be, that is the question.\n";
    text_ = dir_.WriteFile("text.txt", text);
  }
  int Run(const std::string& args, std::string* output) const {
    return testing::RunCommand(testing::DistrnnBinary() + " " + args, output);
  }
  std::string TrainArgs(const std::string& text, const std::string& run) const {
    return "train --task=char_lm --text_file=" + text + " --run_dir=" + dir_.Join(run) +
           " --hidden_size=16 --num_layers=1 --batch_size=4 --num_steps=10 --eval_batch_size=2 --threads=1"
           " --max_epochs=2 --lr=0.5";
  }
  // Trains a tiny char model; returns the checkpoint path.
  std::string TrainTiny() const {
    std::string output;
    EXPECT_EQ(Run(TrainArgs(text_, "run"), &output), 0) << output;
    return dir_.Join("run/best.pt");
  }
  void ExpectBadInput(const std::string& args, const std::string& message) const {
    std::string output;
    EXPECT_EQ(Run(args, &output), 2) << output;
    EXPECT_THAT(output, HasSubstr(message));
    EXPECT_THAT(output, Not(HasSubstr("Exception raised from")));
  }
  testing::TempDir dir_;
  std::string text_;
};

TEST_F(LmCliTest, GenerateIsDeterministicForASeedAndContinuesThePrompt) {
  const std::string checkpoint = TrainTiny();
  const std::string args = "generate --checkpoint=" + checkpoint + " --prompt='to be' --length=40 --temperature=0.8";
  std::string a, b, c;
  ASSERT_EQ(Run(args + " --seed=5", &a), 0) << a;
  ASSERT_EQ(Run(args + " --seed=5", &b), 0) << b;
  ASSERT_EQ(Run(args + " --seed=6", &c), 0) << c;
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  EXPECT_EQ(a.rfind("to be", 0), 0u) << a;
  EXPECT_EQ(a.size(), std::string("to be").size() + 40 + 1) << a;  // 40 one-byte characters + newline
}

TEST_F(LmCliTest, GenerateRejectsPromptOutsideVocabulary) {
  const std::string checkpoint = TrainTiny();
  ExpectBadInput("generate --checkpoint=" + checkpoint + " --prompt='to be ZQ'", "not in the vocabulary");
  ExpectBadInput("generate --checkpoint=" + checkpoint + " --length=0", "--length must be positive");
  ExpectBadInput("generate --checkpoint=" + checkpoint + " --temperature=0", "--temperature must be positive");
  ExpectBadInput("generate --checkpoint=" + dir_.Join("missing.pt"), "no such checkpoint");
  ExpectBadInput("generate --checkpoint=" + text_, "is not a distrnn checkpoint");
  ExpectBadInput("generate", "--checkpoint");
}

TEST_F(LmCliTest, FineTuneContinuesFromCheckpointAndGrowsTheVocabulary) {
  const std::string checkpoint = TrainTiny();
  std::string more;
  for (int i = 0; i < 40; ++i) more += "that is the question, to be or not.\n";
  const std::string same_chars = dir_.WriteFile("more.txt", more);
  std::string output;
  EXPECT_EQ(Run(TrainArgs(same_chars, "tuned") + " --init_from=" + checkpoint, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr(checkpoint));  // the config table names the starting point

  // New characters grow the vocabulary (model/vocabulary_growth.h), say so, and can be
  // generated from the fine-tuned checkpoint.
  const std::string new_chars = dir_.WriteFile("new.txt", more + "XYZ!\n");
  EXPECT_EQ(Run(TrainArgs(new_chars, "tuned2") + " --init_from=" + checkpoint, &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("4 characters the pretrained model lacks ('!' 'X' 'Y' 'Z')")) << output;
  std::string sample;
  EXPECT_EQ(Run("generate --checkpoint=" + dir_.Join("tuned2/best.pt") + " --prompt='XYZ' --length=5", &sample), 0)
      << sample;
}

TEST_F(LmCliTest, GenerateRefusesACheckpointOfAnotherTask) {
  std::string output;
  ASSERT_EQ(Run("train --task=copy --run_dir=" + dir_.Join("copy") +
                    " --hidden_size=8 --num_layers=1 --batch_size=4 --eval_batch_size=8 --lr=0.01 --threads=1"
                    " --copy_train_symbols=3 --copy_train_length=3 --copy_test_symbols=5 --copy_test_length=5"
                    " --copy_train_samples=40 --copy_test_samples=8 --steps_per_epoch=5 --max_epochs=1",
                &output),
            0)
      << output;
  ExpectBadInput("generate --checkpoint=" + dir_.Join("copy/best.pt"),
                 "is a checkpoint of task 'copy', not of a language model");
}

TEST_F(LmCliTest, CharLmBadInput) {
  ExpectBadInput(TrainArgs(dir_.Join("missing.txt"), "r"), "no such file");
  ExpectBadInput(TrainArgs(dir_.WriteFile("bad.txt", std::string("ab\xff\xfe cd\n", 8)), "r"), "invalid UTF-8");
  ExpectBadInput(TrainArgs(text_, "r") + " --valid_fraction=1.5", "valid_fraction");
  ExpectBadInput(TrainArgs(text_, "r") + " --bidirectional", "--bidirectional");
}

}  // namespace
}  // namespace distrnn
