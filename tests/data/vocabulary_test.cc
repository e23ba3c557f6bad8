#include "data/vocabulary.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;

TEST(VocabularyTest, IdsFollowTheGivenOrderAndIgnoreDuplicates) {
  Vocabulary v({"c", "a", "c", "b", "a"});
  EXPECT_EQ(v.size(), 3);
  EXPECT_THAT(v.tokens(), ElementsAre("c", "a", "b"));
  EXPECT_EQ(v.Find("c"), 0);
  EXPECT_EQ(v.Find("a"), 1);
  EXPECT_EQ(v.Find("b"), 2);
  EXPECT_EQ(v.Token(2), "b");
  EXPECT_TRUE(v.Contains("a"));
  EXPECT_FALSE(v.Contains("d"));
  EXPECT_EQ(v.Find("d"), std::nullopt);
  EXPECT_THROW(v.Token(3), std::out_of_range);
}

TEST(VocabularyTest, TokensAreExactBytes) {
  Vocabulary v({"a", "A", "é", " "});
  EXPECT_EQ(v.Find("A"), 1);
  EXPECT_EQ(v.Find("é"), 2);
  EXPECT_EQ(v.Find(" "), 3);
  EXPECT_FALSE(v.Contains(""));
  EXPECT_FALSE(v.Contains("a "));
}

TEST(VocabularyTest, FromCountsSortsByDescendingCountThenToken) {
  Vocabulary v = Vocabulary::FromCounts({{"the", 5}, {"cat", 2}, {"a", 2}, {"zebra", 9}, {"b", 2}});
  EXPECT_THAT(v.tokens(), ElementsAre("zebra", "the", "a", "b", "cat"));
  for (int64_t id = 0; id < v.size(); ++id) EXPECT_EQ(v.Find(v.Token(id)), id);
}

TEST(VocabularyTest, EmptyVocabulary) {
  Vocabulary v;
  EXPECT_EQ(v.size(), 0);
  EXPECT_FALSE(v.Contains("a"));
  EXPECT_EQ(Vocabulary::FromCounts({}).size(), 0);
}

}  // namespace
}  // namespace distrnn::data
