// `distrnn train --task=imdb` and `distrnn predict` end to end on a tiny TSV data set the
// test writes: training leaves a checkpoint, predict answers --text and stdin with one
// probability per line, and bad input is one clear line with exit code 2.
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace distrnn {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// label<TAB>text lines: positive reviews praise, negative ones complain.
std::string TinyReviews(int n, int offset) {
  static const char* kPositive[] = {"good", "great", "wonderful", "loved"};
  static const char* kNegative[] = {"bad", "awful", "boring", "hated"};
  static const char* kFiller[] = {"the", "movie", "plot", "actors", "film", "was"};
  std::string tsv;
  for (int i = 0; i < n; ++i) {
    const int label = (i + offset) % 2;
    tsv += label ? "1\t" : "0\t";
    for (int j = 0; j < 3 + (i % 5); ++j) tsv += std::string(kFiller[(i + j) % 6]) + " ";
    tsv += label ? kPositive[i % 4] : kNegative[i % 4];
    tsv += i % 3 == 0 ? ", really.<br /><br />The end\n" : "!\n";
  }
  return tsv;
}

// The non-empty lines of `output` that parse as numbers.
std::vector<double> Probabilities(const std::string& output) {
  std::vector<double> values;
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line)) {
    char* end = nullptr;
    const double v = std::strtod(line.c_str(), &end);
    if (!line.empty() && end == line.c_str() + line.size()) values.push_back(v);
  }
  return values;
}

class ImdbCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.WriteFile("data/imdb/train.tsv", TinyReviews(80, 0));
    dir_.WriteFile("data/imdb/test.tsv", TinyReviews(20, 1));
  }
  int Run(const std::string& args, std::string* output, const std::string& stdin_text = "") {
    std::string command = testing::DistrnnBinary() + " " + args;
    if (!stdin_text.empty()) command = "printf '" + stdin_text + "' | " + command;
    output->clear();
    return testing::RunCommand(command, output);
  }
  std::string TrainArgs(const std::string& data = "data") const {
    return "train --task=imdb --data_dir=" + dir_.Join(data) + " --run_dir=" + dir_.Join("run") +
           " --cell=gru --hidden_size=8 --embedding_size=8 --num_layers=1 --batch_size=8 --eval_batch_size=16"
           " --vocab_size=40 --max_len=12 --valid_fraction=0.2 --max_epochs=2 --lr=0.01 --threads=1";
  }
  void ExpectBadInput(int code, const std::string& output, const std::string& message) {
    EXPECT_EQ(code, 2) << output;
    EXPECT_THAT(output, HasSubstr(message));
    EXPECT_THAT(output, Not(HasSubstr("Exception raised from")));
    EXPECT_THAT(output, Not(HasSubstr("terminate called")));
  }
  void ExpectBadData(const std::string& train_tsv, const std::string& where) {
    dir_.WriteFile("bad/imdb/train.tsv", train_tsv);
    dir_.WriteFile("bad/imdb/test.tsv", TinyReviews(4, 0));
    std::string output;
    ExpectBadInput(Run(TrainArgs("bad"), &output), output, where);
    EXPECT_FALSE(std::filesystem::exists(dir_.Join("run/latest")));
  }
  testing::TempDir dir_;
};

TEST_F(ImdbCliTest, TrainsThenPredictsFromTextAndStdin) {
  std::string output;
  ASSERT_EQ(Run(TrainArgs(), &output), 0) << output;
  EXPECT_THAT(output, HasSubstr("| epoch   1 |"));
  EXPECT_THAT(output, HasSubstr("valid acc"));
  EXPECT_THAT(output, HasSubstr("test acc"));
  EXPECT_THAT(output, HasSubstr("64 / 16 / 20"));  // train / valid / test reviews
  const std::string checkpoint = dir_.Join("run/best.pt");
  ASSERT_TRUE(std::filesystem::exists(checkpoint));
  ASSERT_TRUE(std::filesystem::exists(dir_.Join("run/latest")));

  ASSERT_EQ(Run("predict --checkpoint=" + checkpoint + " --text=\"A wonderful film, I loved it\"", &output), 0)
      << output;
  std::vector<double> p = Probabilities(output);
  ASSERT_EQ(p.size(), 1u) << output;
  EXPECT_GT(p[0], 0.0);
  EXPECT_LT(p[0], 1.0);

  ASSERT_EQ(Run("predict --checkpoint=" + checkpoint, &output,
                "great movie\\nawful, boring plot\\r\\nwords never seen xyzzy\\n"),
            0)
      << output;
  p = Probabilities(output);
  ASSERT_EQ(p.size(), 3u) << output;
  for (double v : p) {
    EXPECT_GT(v, 0.0);
    EXPECT_LT(v, 1.0);
  }
}

TEST_F(ImdbCliTest, MalformedTsvLinesNameFileAndLine) {
  ExpectBadData("1\tgood film\n0 bad film no tab\n", "train.tsv:2");
  ExpectBadData("1\tgood film\n1\tgreat\n2\tbad film\n", "train.tsv:3");
  ExpectBadData("1\tgood film\n0\t   \n", "train.tsv:2");
}

TEST_F(ImdbCliTest, PredictRefusesOtherCheckpointsAndEmptyReviews) {
  std::string output;
  // A character LM checkpoint: predict must refuse it, naming its task.
  std::string text;
  for (int i = 0; i < 60; ++i) text += "the cat sat on the mat. ";
  const std::string text_file = dir_.WriteFile("tiny.txt", text);
  ASSERT_EQ(Run("train --task=char_lm --text_file=" + text_file + " --run_dir=" + dir_.Join("lm") +
                    " --hidden_size=8 --num_layers=1 --batch_size=4 --num_steps=5 --eval_batch_size=2"
                    " --max_epochs=1 --threads=1",
                &output),
            0)
      << output;
  ExpectBadInput(Run("predict --checkpoint=" + dir_.Join("lm/best.pt") + " --text=good", &output), output,
                 "char_lm");
  EXPECT_THAT(output, HasSubstr("not of the imdb classifier"));

  ExpectBadInput(Run("predict --checkpoint=" + text_file + " --text=good", &output), output, "tiny.txt");
  ExpectBadInput(Run("predict --text=good", &output), output, "--checkpoint");

  ASSERT_EQ(Run(TrainArgs() + " --max_epochs=1", &output), 0) << output;
  const std::string checkpoint = dir_.Join("run/best.pt");
  ExpectBadInput(Run("predict --checkpoint=" + checkpoint + " --text=\"   \"", &output), output, "empty review");
  // An empty stdin line is refused, naming it; the lines before it were answered.
  ExpectBadInput(Run("predict --checkpoint=" + checkpoint, &output, "good\\n\\nbad\\n"), output, "stdin:2");
  EXPECT_EQ(Probabilities(output).size(), 1u) << output;
}

}  // namespace
}  // namespace distrnn
