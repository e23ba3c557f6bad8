#include "data/word_corpus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using distrnn::testing::TempDir;

TEST(WordCorpusTest, VocabularyHasEosAndIsSortedByCount) {
  TempDir dir;
  // counts: a 1, b 2, c 2, <eos> 2 -> ties by token ('<' < 'b').
  auto vocab = BuildWordVocabulary(dir.WriteFile("train.txt", "a b c\nb c\n"));
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  EXPECT_THAT(vocab->tokens(), ElementsAre("<eos>", "b", "c", "a"));
}

TEST(WordCorpusTest, EncodeAppendsEosPerLine) {
  TempDir dir;
  const std::string path = dir.WriteFile("train.txt", " a  b\tc \nb c\n");
  auto vocab = BuildWordVocabulary(path);
  ASSERT_TRUE(vocab.ok()) << vocab.status();
  auto ids = EncodeWordFile(path, *vocab);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(3, 1, 2, 0, 1, 2, 0));
}

TEST(WordCorpusTest, MissingFinalNewlineAndBlankLinesAndCrlf) {
  TempDir dir;
  Vocabulary vocab({"<eos>", "a", "b"});
  // No final newline: the last line still ends with <eos>.
  auto ids = EncodeWordFile(dir.WriteFile("x.txt", "a\nb"), vocab);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(1, 0, 2, 0));
  // A blank line is an empty sentence: one <eos>.
  ids = EncodeWordFile(dir.WriteFile("y.txt", "a\n\nb\n"), vocab);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(1, 0, 0, 2, 0));
  // CRLF: "\r" is a separator, not part of a word.
  ids = EncodeWordFile(dir.WriteFile("z.txt", "a b\r\nb\r\n"), vocab);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(1, 2, 0, 2, 0));
}

TEST(WordCorpusTest, OutOfVocabularyWordIsAnErrorNamingFileAndLine) {
  TempDir dir;
  Vocabulary vocab({"<eos>", "a", "b"});
  const std::string path = dir.WriteFile("valid.txt", "a b\nb zebra a\n");
  auto ids = EncodeWordFile(path, vocab);
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(ids.status().message(), HasSubstr(path + ":2:"));
  EXPECT_THAT(ids.status().message(), HasSubstr("'zebra'"));
}

TEST(WordCorpusTest, OutOfVocabularyWordMapsToUnkWhenPresent) {
  TempDir dir;
  Vocabulary vocab({"<eos>", "<unk>", "a"});
  auto ids = EncodeWordFile(dir.WriteFile("valid.txt", "a zebra\nquagga\n"), vocab);
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(2, 1, 0, 1, 0));
}

TEST(WordCorpusTest, MissingAndEmptyFiles) {
  TempDir dir;
  auto missing = BuildWordVocabulary(dir.Join("nope.txt"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr(dir.Join("nope.txt")));

  const std::string empty = dir.WriteFile("empty.txt", "");
  auto v = BuildWordVocabulary(empty);
  ASSERT_FALSE(v.ok());
  EXPECT_THAT(v.status().message(), HasSubstr("empty file: " + empty));
  auto ids = EncodeWordFile(empty, Vocabulary({"<eos>"}));
  ASSERT_FALSE(ids.ok());
  EXPECT_THAT(ids.status().message(), HasSubstr(empty));

  auto is_dir = BuildWordVocabulary(dir.path());
  ASSERT_FALSE(is_dir.ok());
  EXPECT_THAT(is_dir.status().message(), HasSubstr("directory"));
}

TEST(WordCorpusTest, LoadPtbCorpusUsesTrainVocabularyForAllSplits) {
  TempDir dir;
  dir.WriteFile("ptb.train.txt", "a b <unk>\nb\n");
  dir.WriteFile("ptb.valid.txt", "b a\n");
  dir.WriteFile("ptb.test.txt", "zebra\n");
  auto corpus = LoadPtbCorpus(dir.path());
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  // counts: b 2, <eos> 2, a 1, <unk> 1.
  EXPECT_THAT(corpus->vocab.tokens(), ElementsAre("<eos>", "b", "<unk>", "a"));
  EXPECT_THAT(corpus->train, ElementsAre(3, 1, 2, 0, 1, 0));
  EXPECT_THAT(corpus->valid, ElementsAre(1, 3, 0));
  EXPECT_THAT(corpus->test, ElementsAre(2, 0));
}

TEST(WordCorpusTest, LoadPtbCorpusNamesTheMissingSplit) {
  TempDir dir;
  dir.WriteFile("ptb.train.txt", "a\n");
  dir.WriteFile("ptb.test.txt", "a\n");
  auto corpus = LoadPtbCorpus(dir.path());
  ASSERT_FALSE(corpus.ok());
  EXPECT_THAT(corpus.status().message(), HasSubstr("ptb.valid.txt"));
}

// Invalid UTF-8 is refused when the file is read, naming file and line, in every split:
// a vocabulary that JSON cannot hold would otherwise fail the first checkpoint save.
TEST(WordCorpusTest, InvalidUtf8IsRefusedNamingFileAndLine) {
  TempDir dir;
  const std::string train = dir.WriteFile("ptb.train.txt", "a b\nc caf\xE9 d\n");  // Latin-1 'é'
  auto vocab = BuildWordVocabulary(train);
  ASSERT_FALSE(vocab.ok());
  EXPECT_EQ(vocab.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(vocab.status().message(), HasSubstr(train + ":2: invalid UTF-8 at byte offset 9 (byte 0xE9)"));
  EXPECT_EQ(EncodeWordFile(train, Vocabulary({"<eos>", "<unk>"})).status().code(),
            absl::StatusCode::kInvalidArgument);

  dir.WriteFile("ptb.train.txt", "a b <unk>\n");
  dir.WriteFile("ptb.valid.txt", "a\n\n\xC3\n");  // cut short
  dir.WriteFile("ptb.test.txt", "a\n");
  auto corpus = LoadPtbCorpus(dir.path());
  ASSERT_FALSE(corpus.ok());
  EXPECT_THAT(corpus.status().message(), HasSubstr("ptb.valid.txt:3: invalid UTF-8"));
  // Valid multi-byte UTF-8 words are fine.
  dir.WriteFile("ptb.valid.txt", "caf\xC3\xA9 \xE2\x82\xAC\n");
  EXPECT_TRUE(LoadPtbCorpus(dir.path()).ok());
}

}  // namespace
}  // namespace distrnn::data
