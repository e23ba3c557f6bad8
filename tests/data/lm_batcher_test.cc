#include "data/lm_batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::vector<int64_t> Iota(int64_t n) {
  std::vector<int64_t> v(n);
  std::iota(v.begin(), v.end(), 0);
  return v;
}

// Tokens 0..23, G = 4, T = 2: columns of 6 tokens {0..5}, {6..11}, {12..17}, {18..23};
// row t of the [6, 4] matrix is {t, 6 + t, 12 + t, 18 + t}; 5 predictable rows.
TEST(LmBatcherTest, ExactLayoutWithPartialWindow) {
  auto b = LmBatcher::Create(Iota(24), /*global_batch=*/4, /*num_steps=*/2, 0, 1, /*full_windows_only=*/false);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->column_length(), 6);
  EXPECT_EQ(b->local_batch(), 4);
  EXPECT_EQ(b->num_windows(), 3);
  LmWindow w;
  b->FillWindow(0, w);
  EXPECT_EQ(w.steps, 2);
  EXPECT_EQ(w.batch, 4);
  EXPECT_THAT(w.inputs, ElementsAre(0, 6, 12, 18, 1, 7, 13, 19));
  EXPECT_THAT(w.targets, ElementsAre(1, 7, 13, 19, 2, 8, 14, 20));
  b->FillWindow(1, w);
  EXPECT_EQ(w.steps, 2);
  EXPECT_THAT(w.inputs, ElementsAre(2, 8, 14, 20, 3, 9, 15, 21));
  EXPECT_THAT(w.targets, ElementsAre(3, 9, 15, 21, 4, 10, 16, 22));
  b->FillWindow(2, w);  // the partial window: one step
  EXPECT_EQ(w.steps, 1);
  EXPECT_THAT(w.inputs, ElementsAre(4, 10, 16, 22));
  EXPECT_THAT(w.targets, ElementsAre(5, 11, 17, 23));
}

TEST(LmBatcherTest, FullWindowsOnlyDropsThePartialWindowAndTailIsDropped) {
  // 26 tokens: the 2 tail tokens are dropped, columns as with 24.
  auto b = LmBatcher::Create(Iota(26), 4, 2, 0, 1, /*full_windows_only=*/true);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->column_length(), 6);
  EXPECT_EQ(b->num_windows(), 2);
  LmWindow w;
  b->FillWindow(1, w);
  EXPECT_EQ(w.steps, 2);
  EXPECT_THAT(w.inputs, ElementsAre(2, 8, 14, 20, 3, 9, 15, 21));
  EXPECT_THAT(w.targets, ElementsAre(3, 9, 15, 21, 4, 10, 16, 22));
}

TEST(LmBatcherTest, ExactMultipleHasNoPartialWindow) {
  // Columns of 7: 6 predictable rows = 3 full windows of 2 either way.
  for (bool full_only : {false, true}) {
    auto b = LmBatcher::Create(Iota(28), 4, 2, 0, 1, full_only);
    ASSERT_TRUE(b.ok()) << b.status();
    EXPECT_EQ(b->num_windows(), 3);
    LmWindow w;
    b->FillWindow(2, w);
    EXPECT_EQ(w.steps, 2);
    EXPECT_THAT(w.targets, ElementsAre(5, 12, 19, 26, 6, 13, 20, 27));
  }
}

TEST(LmBatcherTest, ColumnsOfRank) {
  auto c = ColumnsOfRank(12, 2, 3);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->begin, 8);
  EXPECT_EQ(c->end, 12);
  EXPECT_EQ(c->size(), 4);
  auto bad = ColumnsOfRank(4, 0, 3);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("global batch size 4 is not divisible by the world size 3"));
  EXPECT_FALSE(ColumnsOfRank(4, 3, 3).ok());
  EXPECT_FALSE(ColumnsOfRank(4, -1, 2).ok());
  EXPECT_FALSE(ColumnsOfRank(0, 0, 1).ok());
}

// World-size invariance: N ranks together hold exactly the 1-rank matrix.
TEST(LmBatcherTest, RanksPartitionTheOneRankColumns) {
  const int64_t g = 12, t = 3;
  const std::vector<int64_t> tokens = Iota(12 * 8 + 5);
  for (bool full_only : {false, true}) {
    auto one = LmBatcher::Create(tokens, g, t, 0, 1, full_only);
    ASSERT_TRUE(one.ok()) << one.status();
    for (int world : {1, 2, 3, 4}) {
      SCOPED_TRACE(::testing::Message() << "world " << world << " full_only " << full_only);
      std::vector<int64_t> owned;
      for (int rank = 0; rank < world; ++rank) {
        auto mine = LmBatcher::Create(tokens, g, t, rank, world, full_only);
        ASSERT_TRUE(mine.ok()) << mine.status();
        ASSERT_EQ(mine->num_windows(), one->num_windows());
        ASSERT_EQ(mine->local_batch(), g / world);
        for (int64_t c = mine->columns().begin; c < mine->columns().end; ++c) owned.push_back(c);
        for (int64_t i = 0; i < one->num_windows(); ++i) {
          LmWindow full, part;
          one->FillWindow(i, full);
          mine->FillWindow(i, part);
          ASSERT_EQ(part.steps, full.steps);
          for (int64_t s = 0; s < part.steps; ++s) {
            for (int64_t j = 0; j < part.batch; ++j) {
              const int64_t col = mine->columns().begin + j;
              EXPECT_EQ(part.inputs[s * part.batch + j], full.inputs[s * g + col]);
              EXPECT_EQ(part.targets[s * part.batch + j], full.targets[s * g + col]);
            }
          }
        }
      }
      EXPECT_EQ(owned, Iota(g));  // union of the ranks' columns, in rank order
    }
  }
}

TEST(LmBatcherTest, Errors) {
  auto not_divisible = LmBatcher::Create(Iota(24), 4, 2, 0, 3, false);
  ASSERT_FALSE(not_divisible.ok());
  EXPECT_THAT(not_divisible.status().message(), HasSubstr("not divisible"));
  auto short_columns = LmBatcher::Create(Iota(7), 4, 2, 0, 1, false);
  ASSERT_FALSE(short_columns.ok());
  EXPECT_THAT(short_columns.status().message(), HasSubstr("too short"));
  auto no_full_window = LmBatcher::Create(Iota(12), 4, 5, 0, 1, true);
  ASSERT_FALSE(no_full_window.ok());
  EXPECT_THAT(no_full_window.status().message(), HasSubstr("no full window"));
  EXPECT_TRUE(LmBatcher::Create(Iota(12), 4, 5, 0, 1, false).ok());  // one partial window of 2
  EXPECT_FALSE(LmBatcher::Create(Iota(24), 4, 0, 0, 1, false).ok());
}

}  // namespace
}  // namespace distrnn::data
