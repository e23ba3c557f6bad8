// The distrnn binary end to end: bad input gets one clear line and exit code 2, nothing
// half-written; a tiny run succeeds and leaves metrics and a checkpoint.
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

// A PTB-like corpus: lines of words from a small vocabulary.
std::string TinyCorpus(int lines, int offset) {
  static const char* kWords[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "<unk>", "N"};
  std::string text;
  for (int i = 0; i < lines; ++i) {
    text += " ";
    for (int j = 0; j < 6; ++j) text += std::string(kWords[(i * 3 + j * 7 + offset) % 10]) + " ";
    text += "\n";
  }
  return text;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.WriteFile("data/ptb/ptb.train.txt", TinyCorpus(200, 0));
    dir_.WriteFile("data/ptb/ptb.valid.txt", TinyCorpus(30, 1));
    dir_.WriteFile("data/ptb/ptb.test.txt", TinyCorpus(30, 2));
  }
  // Runs `distrnn <args>` with small defaults; returns the exit code.
  int Run(const std::string& args, std::string* output) {
    const std::string command = testing::DistrnnBinary() + " " + args;
    return testing::RunCommand(command, output);
  }
  std::string TrainArgs() const {
    return "train --data_dir=" + dir_.Join("data") + " --run_dir=" + dir_.Join("run") +
           " --hidden_size=8 --num_layers=1 --batch_size=4 --num_steps=5 --eval_batch_size=2 --threads=1";
  }
  // Bad input: exit 2, exactly one "distrnn: error:" line containing `message`, no trace,
  // nothing written to the run directory.
  void ExpectBadInput(const std::string& args, const std::string& message) {
    std::string output;
    EXPECT_EQ(Run(args, &output), 2) << output;
    EXPECT_THAT(output, HasSubstr(message));
    EXPECT_THAT(output, Not(HasSubstr("Exception raised from")));
    EXPECT_THAT(output, Not(HasSubstr("terminate called")));
    EXPECT_FALSE(std::filesystem::exists(dir_.Join("run/latest")));
  }
  testing::TempDir dir_;
};

TEST_F(CliTest, TinyRunTrainsAndWritesMetricsAndCheckpoint) {
  std::string output;
  ASSERT_EQ(Run(TrainArgs() + " --max_epochs=2", &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("| epoch   1 |"));
  EXPECT_THAT(output, HasSubstr("valid ppl"));
  EXPECT_THAT(output, HasSubstr("test ppl"));
  EXPECT_THAT(output, HasSubstr("intra-op threads=1"));
  std::ifstream metrics(dir_.Join("run/metrics.jsonl"));
  std::string line, all;
  int lines = 0;
  while (std::getline(metrics, line)) {
    ++lines;
    all += line;
  }
  EXPECT_GE(lines, 5);
  EXPECT_THAT(all, HasSubstr("\"type\":\"progress\""));
  EXPECT_THAT(all, HasSubstr("\"type\":\"valid\""));
  EXPECT_THAT(all, HasSubstr("\"type\":\"test\""));
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("run/latest")));
  EXPECT_TRUE(std::filesystem::exists(dir_.Join("run/best.pt")));
}

TEST_F(CliTest, MissingDataDirectory) {
  ExpectBadInput("train --data_dir=" + dir_.Join("nowhere"), "is not a directory");
}

TEST_F(CliTest, DataDirectoryIsAFile) {
  ExpectBadInput("train --data_dir=" + dir_.Join("data/ptb/ptb.train.txt"), "is not a directory");
}

TEST_F(CliTest, MissingDataFile) {
  std::filesystem::remove(dir_.Join("data/ptb/ptb.test.txt"));
  ExpectBadInput(TrainArgs(), "no such file: " + dir_.Join("data/ptb/ptb.test.txt"));
}

TEST_F(CliTest, EmptyDataFile) {
  dir_.WriteFile("data/ptb/ptb.valid.txt", "");
  ExpectBadInput(TrainArgs(), "empty file: " + dir_.Join("data/ptb/ptb.valid.txt"));
}

TEST_F(CliTest, OutOfVocabularyWordWithoutUnk) {
  dir_.WriteFile("data/ptb/ptb.train.txt", " the cat sat \n a dog ran \n");
  dir_.WriteFile("data/ptb/ptb.valid.txt", " the cat \n the zebra \n");
  ExpectBadInput(TrainArgs(), "ptb.valid.txt:2: word 'zebra' is not in the vocabulary");
}

TEST_F(CliTest, OutOfVocabularyWordMapsToUnkWhenPresent) {
  dir_.WriteFile("data/ptb/ptb.valid.txt", TinyCorpus(30, 1) + " the zebra \n");
  std::string output;
  EXPECT_EQ(Run(TrainArgs() + " --max_epochs=1", &output), 0) << output;
}

TEST_F(CliTest, InvalidFlagValues) {
  ExpectBadInput(TrainArgs() + " --hidden_size=-3", "--hidden_size must be positive");
  ExpectBadInput(TrainArgs() + " --num_steps=0", "--num_steps must be positive");
  ExpectBadInput(TrainArgs() + " --batch_size=0", "--batch_size must be positive");
  ExpectBadInput(TrainArgs() + " --cell=transformer", "unknown cell type 'transformer'");
  ExpectBadInput(TrainArgs() + " --dropout=1.5", "--dropout must be in [0, 1)");
  ExpectBadInput(TrainArgs() + " --loss_reduction=mean", "unknown --loss_reduction");
  ExpectBadInput(TrainArgs() + " --bucket_mb=0", "--bucket_mb must be positive");
  ExpectBadInput(TrainArgs() + " --first_bucket_mb=-1", "--first_bucket_mb must be positive");
  ExpectBadInput(TrainArgs() + " --first_bucket_mb=nan", "--first_bucket_mb must be");
  ExpectBadInput(TrainArgs() + " --free_heap_kept_mb=-1", "--free_heap_kept_mb must be >= 0");
}

TEST_F(CliTest, UnknownAndMalformedFlags) {
  ExpectBadInput(TrainArgs() + " --hiden_size=3", "hiden_size");
  ExpectBadInput(TrainArgs() + " --num_layers=two", "num_layers");
  ExpectBadInput(TrainArgs() + " --flagfile=" + dir_.Join("missing.flags"), "missing.flags");
  ExpectBadInput("frobnicate", "unknown command 'frobnicate'");
}

TEST_F(CliTest, CorpusTooShortForBatch) {
  dir_.WriteFile("data/ptb/ptb.train.txt", TinyCorpus(1, 0));  // 7 tokens, <unk> among them
  ExpectBadInput(TrainArgs() + " --batch_size=20", "too short");
}

TEST_F(CliTest, HelpListsFlagsAndExitsZero) {
  std::string output;
  EXPECT_EQ(Run("train --help", &output), 0);
  EXPECT_THAT(output, HasSubstr("--hidden_size"));
  EXPECT_THAT(output, HasSubstr("Truncated-BPTT window length"));
  output.clear();
  EXPECT_EQ(Run("--help", &output), 0);
  EXPECT_THAT(output, HasSubstr("train"));
}

}  // namespace
}  // namespace distrnn
