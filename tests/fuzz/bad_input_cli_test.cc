// The three defect classes the issue-8 mutation probe found, through the distrnn binary:
//   1. text that is not UTF-8 (PTB corpus, character text, IMDB reviews, GloVe) is refused
//      when it is read, naming file and line, before any training (it used to train and
//      then fail to save the first checkpoint: JSON cannot hold the vocabulary);
//   2. a corrupt or truncated .tsv.gz is bad input: exit 2 (it was 1);
//   3. a checkpoint whose weights are NaN/Inf is refused by generate and predict with one
//      line and exit 2 (it used to fail while sampling).
// Each ends with exit 2, one "distrnn: error:" line and nothing in the run directory.
#include <zlib.h>

#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fuzz/fuzz_support.h"
#include "support/temp_dir.h"

namespace distrnn::fuzz {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Corpus(int lines, int offset) {
  static const char* kWords[] = {"the", "cat", "sat", "on", "a", "mat", "dog", "ran", "<unk>", "caf\xC3\xA9"};
  std::string text;
  for (int i = 0; i < lines; ++i) {
    for (int j = 0; j < 6; ++j) absl::StrAppend(&text, " ", kWords[(i * 3 + j * 7 + offset) % 10]);
    text += "\n";
  }
  return text;
}

std::string ImdbTsv(int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    absl::StrAppend(&text, i % 2, "\t", i % 2 ? "a fine, moving film " : "a dull mess ", i, "\n");
  }
  return text;
}

class BadInputCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.WriteFile("data/ptb/ptb.train.txt", Corpus(120, 0));
    dir_.WriteFile("data/ptb/ptb.valid.txt", Corpus(20, 1));
    dir_.WriteFile("data/ptb/ptb.test.txt", Corpus(20, 2));
    WriteFileOrDie(dir_.Join("imdb/train.tsv.gz"), Gzip(ImdbTsv(40)));
    WriteFileOrDie(dir_.Join("imdb/test.tsv.gz"), Gzip(ImdbTsv(10)));
  }

  Outcome Run(const std::string& command, const std::vector<std::string>& flags) {
    std::vector<std::string> argv = {testing::DistrnnBinary(), command};
    argv.insert(argv.end(), flags.begin(), flags.end());
    return RunProcess(argv, 120);
  }
  std::vector<std::string> LmFlags(const std::string& task) {
    return {"--task=" + task, "--data_dir=" + dir_.Join("data"), "--run_dir=" + dir_.Join("run"),
            "--hidden_size=8", "--num_layers=1", "--batch_size=4", "--num_steps=5", "--eval_batch_size=2",
            "--threads=1", "--max_steps=2"};
  }
  std::vector<std::string> ImdbFlags() {
    return {"--task=imdb", "--imdb_dir=" + dir_.Join("imdb"), "--run_dir=" + dir_.Join("run"), "--hidden_size=8",
            "--embedding_size=8", "--num_layers=1", "--batch_size=4", "--eval_batch_size=4", "--vocab_size=50",
            "--max_len=20", "--valid_fraction=0.2", "--max_steps=2", "--threads=1"};
  }
  // The checkpoint the run directory's `latest` names.
  std::string LatestCheckpoint() {
    std::string name = ReadFileOrDie(dir_.Join("run/latest"));
    while (!name.empty() && (name.back() == '\n' || name.back() == '\r')) name.pop_back();
    return dir_.Join("run/" + name);
  }
  // Exit 2, one "distrnn: error:" line containing `message`, no trace, no checkpoint.
  void ExpectBadInput(const Outcome& o, const std::string& message) {
    const std::optional<std::string> problem = CleanExitProblem(o);
    EXPECT_FALSE(problem.has_value()) << *problem << "\nstderr: " << o.err;
    EXPECT_EQ(o.exit_code, 2) << o.err;
    EXPECT_THAT(o.err, HasSubstr(message));
    EXPECT_FALSE(fs::exists(dir_.Join("run/latest")));
    EXPECT_FALSE(fs::exists(dir_.Join("run/best.pt")));
  }

  testing::TempDir dir_;
};

TEST_F(BadInputCliTest, PtbCorpusWithInvalidUtf8IsRefusedBeforeTraining) {
  std::string train = Corpus(120, 0);
  train.insert(train.find('\n', train.find('\n') + 1) + 4, "\xE9t\xE9");  // Latin-1 on line 3
  const std::string path = dir_.WriteFile("data/ptb/ptb.train.txt", train);
  const Outcome o = Run("train", LmFlags("ptb_lm"));
  ExpectBadInput(o, path + ":3: invalid UTF-8");
  EXPECT_THAT(o.out, Not(HasSubstr("| epoch")));  // refused before the first step

  dir_.WriteFile("data/ptb/ptb.train.txt", Corpus(120, 0));
  dir_.WriteFile("data/ptb/ptb.test.txt", Corpus(20, 2) + "a \xC3\n");  // a sequence cut short
  ExpectBadInput(Run("train", LmFlags("ptb_lm")), "ptb.test.txt:21: invalid UTF-8");
}

TEST_F(BadInputCliTest, CharTextWithInvalidUtf8IsRefused) {
  const std::string text = dir_.WriteFile("text.txt", std::string(500, 'a') + "\nb\xED\xA0\x80" + "c\n");
  std::vector<std::string> flags = LmFlags("char_lm");
  flags.push_back("--text_file=" + text);
  ExpectBadInput(Run("train", flags), text + ":2: invalid UTF-8 at byte offset 502");
}

TEST_F(BadInputCliTest, ImdbReviewsAndGloveWithInvalidUtf8AreRefused) {
  const std::string train = dir_.Join("imdb/train.tsv.gz");
  WriteFileOrDie(train, Gzip(ImdbTsv(40) + "1\tsuperb \xFF\n"));
  ExpectBadInput(Run("train", ImdbFlags()), train + ":41: invalid UTF-8");

  WriteFileOrDie(train, Gzip(ImdbTsv(40)));
  const std::string glove = dir_.WriteFile("glove.txt", "film 1 2 3 4 5 6 7 8\nfin\xE9 1 2 3 4 5 6 7 8\n");
  std::vector<std::string> flags = ImdbFlags();
  flags.push_back("--glove_file=" + glove);
  ExpectBadInput(Run("train", flags), glove + ":2: invalid UTF-8");
}

TEST_F(BadInputCliTest, CorruptOrTruncatedTsvGzExitsTwo) {
  const std::string train = dir_.Join("imdb/train.tsv.gz");
  std::string gz = Gzip(ImdbTsv(400));
  std::string crc = gz;
  crc[crc.size() - 7] ^= 0x01;  // the trailer's CRC-32: "incorrect data check"
  WriteFileOrDie(train, crc);
  ExpectBadInput(Run("train", ImdbFlags()), train);
  WriteFileOrDie(train, gz.substr(0, gz.size() / 2));  // truncated
  ExpectBadInput(Run("train", ImdbFlags()), "corrupt or truncated");
  std::string body = gz;
  body[gz.size() / 2] ^= 0xFF;  // inside the deflate stream
  WriteFileOrDie(train, body);
  ExpectBadInput(Run("train", ImdbFlags()), train);
}

// Writes NaN into the first float of every tensor of `checkpoint` with valid zip and
// checkpoint checksums: only the value check can refuse it.
std::string WithNanWeights(const std::string& checkpoint) {
  std::optional<CheckpointParts> parts = SplitCheckpoint(checkpoint);
  if (!parts) throw std::runtime_error("not a checkpoint");
  std::string zip = parts->payload;
  int tensors = 0;
  for (const ZipEntry& e : ListZipEntries(zip)) {
    const bool tensor = e.name.find("/data/") != std::string::npos && e.name.find(".pkl") == std::string::npos;
    if (!tensor || e.method != 0 || e.size < 4) continue;
    zip[e.data] = '\x00', zip[e.data + 1] = '\x00', zip[e.data + 2] = '\xC0', zip[e.data + 3] = '\x7F';
    const std::string data = zip.substr(e.data, e.size);
    const uint32_t crc = static_cast<uint32_t>(
        crc32_z(crc32_z(0, nullptr, 0), reinterpret_cast<const Bytef*>(data.data()), data.size()));
    for (size_t at : {e.local_header + 14, e.central_header + 16}) {
      for (int i = 0; i < 4; ++i) zip[at + i] = static_cast<char>((crc >> (8 * i)) & 0xFF);
    }
    ++tensors;
  }
  if (tensors == 0) throw std::runtime_error("no tensor entries found");
  return StampCheckpoint(parts->header["meta"], zip);
}

TEST_F(BadInputCliTest, GenerateAndPredictRefuseNonFiniteWeights) {
  Outcome lm = Run("train", LmFlags("ptb_lm"));
  ASSERT_EQ(lm.exit_code, 0) << lm.err;
  const std::string lm_ok = dir_.Join("lm_ok.pt");
  fs::copy_file(LatestCheckpoint(), lm_ok);
  const std::string lm_nan = dir_.Join("lm_nan.pt");
  WriteFileOrDie(lm_nan, WithNanWeights(ReadFileOrDie(lm_ok)));
  fs::remove_all(dir_.Join("run"));
  // The untouched checkpoint samples fine: the refusal is the NaN's.
  const Outcome sampled = Run("generate", {"--checkpoint=" + lm_ok, "--length=5", "--threads=1"});
  EXPECT_EQ(sampled.exit_code, 0) << sampled.err;
  ExpectBadInput(Run("generate", {"--checkpoint=" + lm_nan, "--length=5", "--threads=1"}), "holds NaN/Inf");

  Outcome imdb = Run("train", ImdbFlags());
  ASSERT_EQ(imdb.exit_code, 0) << imdb.err;
  const std::string ok = dir_.Join("imdb_ok.pt");
  fs::copy_file(LatestCheckpoint(), ok);
  const std::string imdb_nan = dir_.Join("imdb_nan.pt");
  WriteFileOrDie(imdb_nan, WithNanWeights(ReadFileOrDie(ok)));
  fs::remove_all(dir_.Join("run"));
  const Outcome fine = Run("predict", {"--checkpoint=" + ok, "--text=a fine film", "--threads=1"});
  EXPECT_EQ(fine.exit_code, 0) << fine.err;
  ExpectBadInput(Run("predict", {"--checkpoint=" + imdb_nan, "--text=a fine film", "--threads=1"}),
                 "holds NaN/Inf");
}

// What the fuzzer found beyond the three classes, as regression tests.

// Abseil aborts on a flagfile line "-" and loops on a --flagfile cycle: main checks first.
TEST_F(BadInputCliTest, FlagfileWithALoneDashOrACycleExitsTwo) {
  const std::string dash = dir_.WriteFile("dash.flags", "--task=ptb_lm\n# comment\n  -\n--hidden_size=8\n");
  std::vector<std::string> flags = LmFlags("ptb_lm");
  flags.insert(flags.begin(), "--flagfile=" + dash);
  ExpectBadInput(Run("train", flags), dash + ":3: '-' names no flag");
  const std::string eq = dir_.WriteFile("eq.flags", "--task=ptb_lm\n-=eval_batch_size=4\n");
  flags = LmFlags("ptb_lm");
  flags.insert(flags.begin(), "--flagfile=" + eq);
  ExpectBadInput(Run("train", flags), eq + ":2: '-=eval_batch_size=4' names no flag");

  const std::string a = dir_.Join("a.flags"), b = dir_.Join("b.flags");
  dir_.WriteFile("a.flags", "--hidden_size=8\n--flagfile=" + b + "\n");
  dir_.WriteFile("b.flags", "--flagfile=" + a + "\n");
  flags = LmFlags("ptb_lm");
  flags.insert(flags.begin(), "--flagfile=" + a);
  const Outcome cycle = Run("train", flags);
  ExpectBadInput(cycle, "nested more than 16 flagfiles deep");
  EXPECT_LT(cycle.seconds, 20);
}

// Sizes no machine can hold (a mistyped flag, or a checkpoint's metadata) are refused
// before any allocation; non-finite values of flags too.
TEST_F(BadInputCliTest, ImpossibleSizesAndNonFiniteFlagsExitTwoAtOnce) {
  std::vector<std::string> flags = LmFlags("ptb_lm");
  flags.push_back("--hidden_size=123456789");
  const Outcome huge = Run("train", flags);
  ExpectBadInput(huge, "is too large for this machine");
  EXPECT_LT(huge.seconds, 20);
  for (const std::string bad : {"--dropout=nan", "--init_scale=inf", "--lr=inf", "--collective_timeout_s=nan",
                                "--lr=1e300", "--clip_value=1e300"}) {
    flags = LmFlags("ptb_lm");
    flags.push_back(bad);
    ExpectBadInput(Run("train", flags), "must be");
  }

  ASSERT_EQ(Run("train", LmFlags("ptb_lm")).exit_code, 0);
  std::optional<CheckpointParts> parts = SplitCheckpoint(ReadFileOrDie(LatestCheckpoint()));
  ASSERT_TRUE(parts.has_value());
  fs::remove_all(dir_.Join("run"));
  nlohmann::json meta = parts->header["meta"];
  meta["hidden_size"] = int64_t{1} << 31;
  const std::string big = dir_.Join("big.pt");
  WriteFileOrDie(big, StampCheckpoint(meta, parts->payload));
  ExpectBadInput(Run("generate", {"--checkpoint=" + big, "--length=5", "--threads=1"}), "is too large for this machine");
  meta = parts->header["meta"];
  meta["num_layers"] = "two";  // a field of another type
  WriteFileOrDie(big, StampCheckpoint(meta, parts->payload));
  ExpectBadInput(Run("generate", {"--checkpoint=" + big, "--length=5", "--threads=1"}), "metadata");
  meta = parts->header["meta"];
  meta["vocabulary"][0] = "<eos>x";  // generate starts from <eos>
  WriteFileOrDie(big, StampCheckpoint(meta, parts->payload));
  ExpectBadInput(Run("generate", {"--checkpoint=" + big, "--length=5", "--threads=1"}), "no <eos>");
}

// A file name read from `latest` that is not UTF-8 used to throw from the JSON of rank 0's
// broadcast status (std::terminate).
TEST_F(BadInputCliTest, LatestNamingANonUtf8FileExitsTwo) {
  std::vector<std::string> flags = LmFlags("ptb_lm");
  ASSERT_EQ(Run("train", flags).exit_code, 0);
  WriteFileOrDie(dir_.Join("run/latest"), "checkpoint-\xFF.pt\n");
  flags.push_back("--resume=auto");
  flags.push_back("--max_steps=3");
  const Outcome o = Run("train", flags);
  EXPECT_FALSE(CleanExitProblem(o).has_value()) << *CleanExitProblem(o) << o.err;
  EXPECT_EQ(o.exit_code, 2) << o.err;
  EXPECT_THAT(o.err, HasSubstr("latest"));
}

}  // namespace
}  // namespace distrnn::fuzz
