#include "data/char_corpus.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using distrnn::testing::TempDir;

TEST(CharCorpusTest, SplitUtf8GivesCodePoints) {
  // 1-, 2-, 3- and 4-byte sequences.
  auto chars = SplitUtf8("a\xC3\xA9\xE2\x82\xAC\xF0\x9D\x84\x9E\n", "t");
  ASSERT_TRUE(chars.ok()) << chars.status();
  EXPECT_THAT(*chars, ElementsAre("a", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9D\x84\x9E", "\n"));
  EXPECT_TRUE(SplitUtf8("", "t")->empty());
}

TEST(CharCorpusTest, InvalidUtf8NamesSourceLineAndByteOffset) {
  auto bad = SplitUtf8("ab\ncd\xFF" "e", "in.txt");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("in.txt:2: invalid UTF-8 at byte offset 5 (byte 0xFF)"));

  struct Case {
    std::string text;
    size_t offset;
  };
  const std::vector<Case> cases = {
      {"\x80", 0},                      // stray continuation byte
      {"x\xC0\x80", 1},                 // overlong NUL
      {"xy\xE0\x80\xAF", 2},            // overlong '/'
      {"\xED\xA0\x80", 0},              // UTF-16 surrogate
      {"abc\xF4\x90\x80\x80", 3},       // above U+10FFFF
      {"\xE2\x82", 0},                  // truncated at the end
      {"\xE2\x28\xA1", 0},              // bad continuation
      {"\xC3\xA9\xF8\x88\x80\x80\x80", 2},  // 5-byte form
  };
  for (const Case& c : cases) {
    auto r = SplitUtf8(c.text, "f");
    ASSERT_FALSE(r.ok()) << "accepted invalid bytes at offset " << c.offset;
    EXPECT_THAT(r.status().message(), HasSubstr("f:1: invalid UTF-8 at byte offset " + std::to_string(c.offset)));
  }
  // The largest valid code point and the ones around the surrogates are fine.
  EXPECT_TRUE(SplitUtf8("\xF4\x8F\xBF\xBF\xED\x9F\xBF\xEE\x80\x80", "f").ok());
}

TEST(CharCorpusTest, VocabularyIsSortedByCodePoint) {
  Vocabulary v = BuildCharVocabulary({"b", "\xF0\x9D\x84\x9E", "\xC3\xA9", "\n", "A", "\xE2\x82\xAC", "b", "A"});
  EXPECT_THAT(v.tokens(), ElementsAre("\n", "A", "b", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9D\x84\x9E"));
}

TEST(CharCorpusTest, LoadSplitsTrainFirstValidLast) {
  TempDir dir;
  const std::string path = dir.WriteFile("t.txt", "hello world\n");  // 12 characters
  auto corpus = LoadCharCorpus(path, 0.25);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_THAT(corpus->vocab.tokens(), ElementsAre("\n", " ", "d", "e", "h", "l", "o", "r", "w"));
  EXPECT_THAT(corpus->train, ElementsAre(4, 3, 5, 5, 6, 1, 8, 6, 7));  // "hello wor"
  EXPECT_THAT(corpus->valid, ElementsAre(5, 2, 0));                    // "ld\n"
  EXPECT_EQ(DecodeChars(corpus->train, corpus->vocab).value(), "hello wor");
  EXPECT_EQ(DecodeChars(corpus->valid, corpus->vocab).value(), "ld\n");
}

TEST(CharCorpusTest, MultiByteCharactersAreSingleTokens) {
  TempDir dir;
  const std::string text = "na\xC3\xAFve caf\xC3\xA9 \xE2\x82\xAC" "5";  // 13 code points
  auto corpus = LoadCharCorpus(dir.WriteFile("u.txt", text), 0.5);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->train.size() + corpus->valid.size(), 13u);
  EXPECT_EQ(corpus->vocab.tokens().back(), "\xE2\x82\xAC");
  std::vector<int64_t> all = corpus->train;
  all.insert(all.end(), corpus->valid.begin(), corpus->valid.end());
  EXPECT_EQ(DecodeChars(all, corpus->vocab).value(), text);
}

TEST(CharCorpusTest, SplitErrors) {
  TempDir dir;
  const std::string path = dir.WriteFile("s.txt", "abcdefghij");  // 10 characters
  auto tiny_valid = LoadCharCorpus(path, 0.1);                    // 1 valid character
  ASSERT_FALSE(tiny_valid.ok());
  EXPECT_THAT(tiny_valid.status().message(), HasSubstr(path));
  EXPECT_THAT(tiny_valid.status().message(), HasSubstr("9 train and 1 valid"));
  EXPECT_THAT(tiny_valid.status().message(), HasSubstr("at least 2"));
  EXPECT_TRUE(LoadCharCorpus(path, 0.2).ok());
  auto tiny_train = LoadCharCorpus(path, 0.9);
  ASSERT_FALSE(tiny_train.ok());
  EXPECT_THAT(tiny_train.status().message(), HasSubstr("1 train and 9 valid"));
  EXPECT_FALSE(LoadCharCorpus(path, 0.5, /*min_split=*/6).ok());
  for (double bad : {0.0, 1.0, -0.5, 2.0}) {
    auto r = LoadCharCorpus(path, bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_THAT(r.status().message(), HasSubstr("valid fraction must be in (0, 1)"));
  }
}

TEST(CharCorpusTest, FileErrors) {
  TempDir dir;
  const std::string bad = dir.WriteFile("bad.txt", "line one\nline two\nok \xC3(\n");
  auto r = LoadCharCorpus(bad, 0.2);
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr(bad + ":3: invalid UTF-8 at byte offset 21"));
  auto missing = LoadCharCorpus(dir.Join("none.txt"), 0.2);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto empty = LoadCharCorpus(dir.WriteFile("e.txt", ""), 0.2);
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("empty file"));
}

TEST(CharCorpusTest, CheckCharsListsEveryMissingCharacterOnce) {
  Vocabulary vocab = BuildCharVocabulary({"a", "b", "c", "\n"});
  EXPECT_TRUE(CheckCharsInVocabulary("abc\ncab", vocab, "prompt").ok());
  absl::Status s = CheckCharsInVocabulary("ab\t\xC3\xA9\xC3\xA9\nzz\x01", vocab, "prompt");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(),
            "prompt: 4 characters are not in the vocabulary: (U+0001) first on line 2, '\\t' (U+0009) first on "
            "line 1, 'z' (U+007A) first on line 2, '\xC3\xA9' (U+00E9) first on line 1");
  absl::Status one = CheckCharsInVocabulary("abd", vocab, "x");
  EXPECT_EQ(one.message(), "x: 1 character is not in the vocabulary: 'd' (U+0064) first on line 1");
  EXPECT_THAT(CheckCharsInVocabulary("a\xFF", vocab, "p").message(), HasSubstr("invalid UTF-8"));
}

TEST(CharCorpusTest, EncodeDecodeRoundTrip) {
  Vocabulary vocab = BuildCharVocabulary({"h", "i", "\xC3\xA9", " "});
  auto ids = EncodeChars("hi \xC3\xA9h", vocab, "prompt");
  ASSERT_TRUE(ids.ok()) << ids.status();
  EXPECT_THAT(*ids, ElementsAre(1, 2, 0, 3, 1));
  EXPECT_EQ(DecodeChars(*ids, vocab).value(), "hi \xC3\xA9h");
  auto missing = EncodeChars("hix", vocab, "prompt");
  ASSERT_FALSE(missing.ok());
  EXPECT_THAT(missing.status().message(), HasSubstr("'x' (U+0078)"));
  auto out_of_range = DecodeChars({0, 4}, vocab);
  ASSERT_FALSE(out_of_range.ok());
  EXPECT_EQ(out_of_range.status().code(), absl::StatusCode::kOutOfRange);
  EXPECT_FALSE(DecodeChars({-1}, vocab).ok());
}

TEST(CharCorpusTest, FineTuneKeepsThePretrainedIdsAndGrowsTheVocabulary) {
  TempDir dir;
  Vocabulary pretrained = BuildCharVocabulary({"a", "b", "c", "d", "\n"});
  auto same = LoadCharCorpusGrowingVocabulary(dir.WriteFile("new.txt", "abba\ncab\n"), 0.25, pretrained);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->vocab.tokens(), pretrained.tokens());  // ids of the checkpoint, not of the new text
  EXPECT_THAT(same->train, ElementsAre(1, 2, 2, 1, 0, 3, 1));
  EXPECT_THAT(same->valid, ElementsAre(2, 0));

  auto grown = LoadCharCorpusGrowingVocabulary(dir.WriteFile("other.txt", "zab\nxcy\n"), 0.25, pretrained);
  ASSERT_TRUE(grown.ok()) << grown.status();
  std::vector<std::string> expected = pretrained.tokens();
  for (const char* added : {"x", "y", "z"}) expected.push_back(added);
  EXPECT_EQ(grown->vocab.tokens(), expected);
  EXPECT_THAT(grown->train, ElementsAre(7, 1, 2, 0, 5, 3));  // z a b \n x c
  EXPECT_THAT(grown->valid, ElementsAre(6, 0));              // y \n
}

}  // namespace
}  // namespace distrnn::data
