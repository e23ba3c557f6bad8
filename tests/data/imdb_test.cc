#include "data/imdb.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/gzip_writer.h"
#include "support/temp_dir.h"

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using distrnn::testing::TempDir;

std::vector<int64_t> Labels(const std::vector<LabeledText>& v) {
  std::vector<int64_t> out;
  for (const auto& x : v) out.push_back(x.label);
  return out;
}
std::vector<std::string> Texts(const std::vector<LabeledText>& v) {
  std::vector<std::string> out;
  for (const auto& x : v) out.push_back(x.text);
  return out;
}

// Tabs inside the text, CRLF, empty and whitespace-only lines, no final newline.
const char kTsv[] = "1\tGreat movie\twith a tab\n0\tBad.\r\n\n  \r\n1\tok <br />fine\n0\tlast";

TEST(ImdbTest, ReadsPlainTsv) {
  TempDir dir;
  auto r = ReadLabeledTsv(dir.WriteFile("train.tsv", kTsv));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Labels(*r), ElementsAre(1, 0, 1, 0));
  EXPECT_THAT(Texts(*r), ElementsAre("Great movie\twith a tab", "Bad.", "ok <br />fine", "last"));
}

TEST(ImdbTest, ReadsGzipTsv) {
  TempDir dir;
  const std::string path = dir.Join("train.tsv.gz");
  distrnn::testing::WriteGzipFile(path, kTsv);
  auto r = ReadLabeledTsv(path);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Texts(*r), ElementsAre("Great movie\twith a tab", "Bad.", "ok <br />fine", "last"));
}

TEST(ImdbTest, MalformedLinesNameFileAndLine) {
  TempDir dir;
  struct Case {
    std::string contents;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"1\tgood\n\nno tab here\n", ":3: expected 'label<TAB>text', found no tab"},
      {"1\tgood\n2\tbad label\n", ":2: label must be 0 or 1, found '2'"},
      {"pos\tgood\n", ":1: label must be 0 or 1, found 'pos'"},
      {" 1\tgood\n", ":1: label must be 0 or 1, found ' 1'"},
      {"0\tfine\n1\t   \r\n", ":2: empty review text"},
      {"0\tfine\n1\t\n", ":2: empty review text"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir.WriteFile("bad" + std::to_string(i) + ".tsv", cases[i].contents);
    auto r = ReadLabeledTsv(path);
    ASSERT_FALSE(r.ok()) << cases[i].message;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(), HasSubstr(path + cases[i].message));
  }
  // The same in a gzip file: line numbers count decompressed lines.
  const std::string gz = dir.Join("bad.tsv.gz");
  distrnn::testing::WriteGzipFile(gz, "0\ta\n1\tb\n\n7\tc\n");
  EXPECT_THAT(ReadLabeledTsv(gz).status().message(), HasSubstr(gz + ":4: label must be 0 or 1"));
}

TEST(ImdbTest, FileErrors) {
  TempDir dir;
  auto missing = ReadLabeledTsv(dir.Join("none.tsv.gz"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  auto only_blank = ReadLabeledTsv(dir.WriteFile("blank.tsv", "\n\r\n \n"));
  ASSERT_FALSE(only_blank.ok());
  EXPECT_THAT(only_blank.status().message(), HasSubstr("no reviews"));
}

TEST(ImdbTest, ReadsAclImdbLayoutNegThenPosByNumericId) {
  TempDir dir;
  dir.WriteFile("aclImdb/train/pos/10_9.txt", "ten");
  dir.WriteFile("aclImdb/train/pos/2_8.txt", "two\n");
  dir.WriteFile("aclImdb/train/pos/1_7.txt", "one\r\n");
  dir.WriteFile("aclImdb/train/pos/notes.md", "ignored");
  dir.WriteFile("aclImdb/train/neg/11_2.txt", "eleven\twith tab");
  dir.WriteFile("aclImdb/train/neg/0_1.txt", "zero");
  auto r = ReadAclImdbSplit(dir.Join("aclImdb/train"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(Labels(*r), ElementsAre(0, 0, 1, 1, 1));
  EXPECT_THAT(Texts(*r), ElementsAre("zero", "eleven\twith tab", "one", "two", "ten"));
}

TEST(ImdbTest, AclImdbErrors) {
  TempDir dir;
  dir.WriteFile("train/pos/0_9.txt", "fine");
  const std::string empty = dir.WriteFile("train/neg/3_1.txt", " \n");
  auto r = ReadAclImdbSplit(dir.Join("train"));
  ASSERT_FALSE(r.ok());
  EXPECT_THAT(r.status().message(), HasSubstr(empty + ": empty review text"));
  auto missing = ReadAclImdbSplit(dir.Join("test"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("test/neg"));
}

TEST(ImdbTest, LoadImdbFindsEitherLayout) {
  TempDir tsv;
  distrnn::testing::WriteGzipFile(tsv.Join("train.tsv.gz"), "1\ta\n0\tb\n");
  distrnn::testing::WriteGzipFile(tsv.Join("test.tsv.gz"), "0\tc\n");
  auto a = LoadImdb(tsv.path());
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_THAT(Texts(a->train), ElementsAre("a", "b"));
  EXPECT_THAT(Texts(a->test), ElementsAre("c"));

  TempDir acl;
  for (const char* split : {"train", "test"}) {
    acl.WriteFile(std::string("aclImdb/") + split + "/pos/0_10.txt", std::string(split) + " pos");
    acl.WriteFile(std::string("aclImdb/") + split + "/neg/0_1.txt", std::string(split) + " neg");
  }
  auto b = LoadImdb(acl.path());
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_THAT(Texts(b->train), ElementsAre("train neg", "train pos"));
  EXPECT_THAT(Texts(b->test), ElementsAre("test neg", "test pos"));

  TempDir none;
  auto c = LoadImdb(none.path());
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(c.status().message(), HasSubstr("train,test}.tsv.gz"));
}

TEST(ImdbTest, Tokenizer) {
  EXPECT_THAT(TokenizeReview("I didn't like it<br /><br />It's BAD... 'Really'!"),
              ElementsAre("i", "didn't", "like", "it", "it's", "bad", ".", ".", ".", "'", "really", "'", "!"));
  EXPECT_THAT(TokenizeReview("well-known 10/10,great<BR>end<br/>x"),
              ElementsAre("well", "-", "known", "10", "/", "10", ",", "great", "end", "x"));
  EXPECT_THAT(TokenizeReview("  rock'n'roll\t(1999)\r\n\"quote\" dogs' "),
              ElementsAre("rock'n'roll", "(", "1999", ")", "\"", "quote", "\"", "dogs", "'"));
  // UTF-8 stays inside words; only ASCII is lower-cased.
  EXPECT_THAT(TokenizeReview("Caf\xC3\xA9 CAF\xC3\x89!"), ElementsAre("caf\xC3\xA9", "caf\xC3\x89", "!"));
  EXPECT_THAT(TokenizeReview("a <b>tag</b> <br"), ElementsAre("a", "<", "b", ">", "tag", "<", "/", "b", ">", "<", "br"));
  EXPECT_TRUE(TokenizeReview(" \t<br />").empty());
}

TEST(ImdbTest, VocabularyIsPadUnkThenTopWords) {
  const std::vector<std::vector<std::string>> tokenized = {{"b", "a", "b"}, {"c", "a", "b", "d"}};
  auto v = BuildImdbVocabulary(tokenized, 2);
  ASSERT_TRUE(v.ok());
  EXPECT_THAT(v->tokens(), ElementsAre("<pad>", "<unk>", "b", "a"));
  EXPECT_EQ(v->Find("<pad>"), kPadId);
  EXPECT_EQ(v->Find("<unk>"), kImdbUnkId);
  auto all = BuildImdbVocabulary(tokenized, 100);
  ASSERT_TRUE(all.ok());
  EXPECT_THAT(all->tokens(), ElementsAre("<pad>", "<unk>", "b", "a", "c", "d"));
  EXPECT_THAT(BuildImdbVocabulary(tokenized, 0).status().message(), HasSubstr("vocab size must be >= 1"));
}

TEST(ImdbTest, EncodeTruncatesAndMapsUnknown) {
  auto v = BuildImdbVocabulary({{"b", "a", "b"}}, 10);
  ASSERT_TRUE(v.ok());
  EXPECT_THAT(EncodeTokens({"b", "zebra", "a", "b"}, *v, 3), ElementsAre(2, 1, 3));
  EXPECT_THAT(EncodeTokens({"b", "zebra", "a", "b"}, *v, 0), ElementsAre(2, 1, 3, 2));
  EXPECT_THAT(EncodeTokens({"a"}, *v, 5), ElementsAre(3));
  EXPECT_TRUE(EncodeTokens({}, *v, 5).empty());
}

// Invalid UTF-8 and corrupt gzip streams are bad input (InvalidArgument: exit 2) naming
// the file, in both layouts.
TEST(ImdbTest, InvalidUtf8AndCorruptGzipAreInvalidArgument) {
  TempDir dir;
  const std::string tsv = dir.WriteFile("train.tsv", "1\tgood\n0\tbad \xFF byte\n");
  auto r = ReadLabeledTsv(tsv);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr(tsv + ":2: invalid UTF-8 at byte offset 13"));

  const std::string gz = dir.Join("test.tsv.gz");
  std::string text;
  for (int i = 0; i < 2000; ++i) text += std::to_string(i % 2) + "\treview number " + std::to_string(i) + "\n";
  distrnn::testing::WriteGzipFile(gz, text);
  std::ifstream in(gz, std::ios::binary);
  std::string bytes(std::istreambuf_iterator<char>(in), {});
  bytes[bytes.size() - 6] ^= 0x40;  // inside the CRC-32 of the trailer: "incorrect data check"
  dir.WriteFile("test.tsv.gz", bytes);
  auto crc = ReadLabeledTsv(gz);
  EXPECT_EQ(crc.status().code(), absl::StatusCode::kInvalidArgument) << crc.status();
  EXPECT_THAT(crc.status().message(), HasSubstr(gz));
  dir.WriteFile("test.tsv.gz", bytes.substr(0, bytes.size() / 2));
  auto cut = ReadLabeledTsv(gz);
  EXPECT_EQ(cut.status().code(), absl::StatusCode::kInvalidArgument) << cut.status();
  EXPECT_THAT(cut.status().message(), HasSubstr("corrupt or truncated"));

  const std::string review = dir.WriteFile("acl/train/pos/0_9.txt", "fine\nthen \xC0\x80 overlong");
  dir.WriteFile("acl/train/neg/0_1.txt", "fine");
  auto acl = ReadAclImdbSplit(dir.Join("acl/train"));
  EXPECT_EQ(acl.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(acl.status().message(), HasSubstr(review + ":2: invalid UTF-8"));
}

// Found by the fuzzer: a review that is a link to itself threw filesystem_error. A broken
// *.txt entry (a dangling link or a loop) is an error naming it; a folder is skipped.
TEST(ImdbTest, AclImdbBrokenLinksAreErrorsNamingThem) {
  TempDir dir;
  dir.WriteFile("train/pos/0_9.txt", "fine");
  dir.WriteFile("train/neg/0_1.txt", "dull");
  std::filesystem::create_directories(dir.Join("train/neg/5_1.txt"));
  auto r = ReadAclImdbSplit(dir.Join("train"));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->size(), 2u);
  const std::string loop = dir.Join("train/pos/1_9.txt");
  std::filesystem::create_symlink(loop, loop);
  const std::string dangling = dir.Join("train/neg/1_1.txt");
  std::filesystem::create_symlink(dir.Join("nowhere"), dangling);
  for (const std::string& broken : {dangling, loop}) {
    auto bad = ReadAclImdbSplit(dir.Join("train"));
    ASSERT_FALSE(bad.ok());
    EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(bad.status().message(), HasSubstr(broken + ": not a readable review"));
    std::filesystem::remove(broken);
  }
}

}  // namespace
}  // namespace distrnn::data
