#include "data/glove.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "data/gzip_writer.h"
#include "support/temp_dir.h"

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using distrnn::testing::TempDir;

const Vocabulary& Vocab() {
  static const Vocabulary v({"<pad>", "<unk>", "the", "cat", "dog"});
  return v;
}

TEST(GloveTest, FillsRowsOfVocabularyWords) {
  TempDir dir;
  const std::string path = dir.WriteFile("g.txt", "the 0.1 0.2 0.3\nfoo 1 2 3\ncat -1.5 2e-1 3\n");
  auto e = LoadGloveEmbeddings(path, Vocab());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->rows, 5);
  EXPECT_EQ(e->dim, 3);
  EXPECT_EQ(e->num_found, 2);
  EXPECT_THAT(e->found, ElementsAre(0, 0, 1, 1, 0));
  EXPECT_THAT(e->values, ElementsAre(0, 0, 0,              //
                                     0, 0, 0,              //
                                     0.1f, 0.2f, 0.3f,     //
                                     -1.5f, 0.2f, 3.0f,    //
                                     0, 0, 0));
}

TEST(GloveTest, HeaderCrlfGzipDuplicatesAndBlankLines) {
  TempDir dir;
  const std::string path = dir.Join("g.txt.gz");
  distrnn::testing::WriteGzipFile(path, "3 2\r\ndog 1 2\r\n\r\ndog 5 6\r\nthe 3 4");
  auto e = LoadGloveEmbeddings(path, Vocab());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->dim, 2);
  EXPECT_EQ(e->num_found, 2);
  EXPECT_THAT(e->found, ElementsAre(0, 0, 1, 0, 1));
  EXPECT_THAT(e->values, ElementsAre(0, 0, 0, 0, 3, 4, 0, 0, 1, 2));  // first "dog" wins
}

TEST(GloveTest, NoWordFoundGivesZeros) {
  TempDir dir;
  auto e = LoadGloveEmbeddings(dir.WriteFile("g.txt", "zebra 1 2 3 4\n"), Vocab());
  ASSERT_TRUE(e.ok()) << e.status();
  EXPECT_EQ(e->num_found, 0);
  EXPECT_EQ(e->values, std::vector<float>(20, 0.0f));
}

TEST(GloveTest, ErrorsNameFileAndLine) {
  TempDir dir;
  struct Case {
    std::string contents;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"the 1 2 3\nfoo 1 2 3\ncat 1 2\n", ":3: expected a word and 3 values, found 2 values"},
      {"the 1 2 3\ndog 1 2 3 4\n", ":2: expected a word and 3 values, found 4 values"},
      {"the 1 2 3\nfoo 1 abc 3\n", ":2: value 2 'abc' is not a finite number"},
      {"the 1 2 nan\n", ":1: value 3 'nan' is not a finite number"},
      {"the 1 2 3x\n", ":1: value 3 '3x' is not a finite number"},
      {"the 1  2\n", ":1: value 2 '' is not a finite number"},
      {"lonely\n", ":1: expected 'word v1 ... vD'"},
  };
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string path = dir.WriteFile("bad" + std::to_string(i) + ".txt", cases[i].contents);
    auto e = LoadGloveEmbeddings(path, Vocab());
    ASSERT_FALSE(e.ok()) << cases[i].message;
    EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(e.status().message(), HasSubstr(path + cases[i].message));
  }
  const std::string ok = dir.WriteFile("ok.txt", "the 1 2 3\n");
  auto wrong_dim = LoadGloveEmbeddings(ok, Vocab(), /*expected_dim=*/4);
  ASSERT_FALSE(wrong_dim.ok());
  EXPECT_THAT(wrong_dim.status().message(), HasSubstr(ok + ":1: expected a word and 4 values, found 3 values"));
  EXPECT_TRUE(LoadGloveEmbeddings(ok, Vocab(), 3).ok());

  EXPECT_EQ(LoadGloveEmbeddings(dir.Join("none.txt"), Vocab()).status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(LoadGloveEmbeddings(dir.WriteFile("blank.txt", "\n\n"), Vocab()).status().message(),
              HasSubstr("no word vectors"));
}

TEST(GloveTest, InvalidUtf8IsRefusedNamingFileAndLine) {
  TempDir dir;
  const std::string path = dir.WriteFile("g.txt", "the 1 2 3\n\xFF\xFE 1 2 3\n");
  auto e = LoadGloveEmbeddings(path, Vocab());
  EXPECT_EQ(e.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(e.status().message(), HasSubstr(path + ":2: invalid UTF-8"));
}

}  // namespace
}  // namespace distrnn::data
