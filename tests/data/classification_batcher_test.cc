#include "data/classification_batcher.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <set>

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Example i: length (i * 7) % 11 + 1, tokens i * 100 + t, label i % 2.
ClassificationDataset MakeData(int64_t n) {
  ClassificationDataset d;
  for (int64_t i = 0; i < n; ++i) {
    std::vector<int64_t> seq;
    for (int64_t t = 0; t < (i * 7) % 11 + 1; ++t) seq.push_back(i * 100 + t);
    d.sequences.push_back(seq);
    d.labels.push_back(i % 2);
  }
  return d;
}

ClassificationBatcher MakeBatcher(int64_t n, ClassificationBatcherOptions options, int rank = 0, int world = 1) {
  auto b = ClassificationBatcher::Create(MakeData(n), options, rank, world);
  EXPECT_TRUE(b.ok()) << b.status();
  return *std::move(b);
}

std::vector<int64_t> Flatten(const std::vector<std::vector<int64_t>>& batches) {
  std::vector<int64_t> out;
  for (const auto& b : batches) out.insert(out.end(), b.begin(), b.end());
  return out;
}

TEST(ClassificationBatcherTest, UniformBelowAndPermutation) {
  std::mt19937_64 rng = MakeEngine(3, 0);
  std::vector<int> counts(3, 0);
  for (int i = 0; i < 30000; ++i) ++counts[UniformBelow(rng, 3)];
  for (int c : counts) EXPECT_NEAR(c, 10000, 400);
  EXPECT_EQ(UniformBelow(rng, 1), 0u);

  std::mt19937_64 a = MakeEngine(1, 0), b = MakeEngine(1, 0), c = MakeEngine(1, 1), d = MakeEngine(2, 0);
  const std::vector<int64_t> p = Permutation(1000, a);
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int64_t> iota(1000);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(sorted, iota);
  EXPECT_NE(p, iota);
  EXPECT_EQ(Permutation(1000, b), p);
  EXPECT_NE(Permutation(1000, c), p);
  EXPECT_NE(Permutation(1000, d), p);
  EXPECT_TRUE(Permutation(0, a).empty());
}

// The permutation is pinned: it must not change with the standard library or platform
// (std::shuffle / uniform_int_distribution would), or runs stop being reproducible. The
// expected value comes from an independent Python implementation of MakeEngine (SplitMix64
// seeding of MT19937-64), Lemire's bounded draw and back-to-front Fisher-Yates.
TEST(ClassificationBatcherTest, PermutationIsPinned) {
  std::mt19937_64 rng = MakeEngine(1, 0);
  EXPECT_THAT(Permutation(10, rng), ElementsAre(0, 6, 1, 5, 7, 3, 8, 2, 9, 4));
}

TEST(ClassificationBatcherTest, MakeBatchIsTimeMajorAndPadded) {
  ClassificationDataset d;
  d.sequences = {{5, 6, 7}, {8}, {9, 10}};
  d.labels = {1, 0, 1};
  const ClassificationBatch b = MakeClassificationBatch(d, {1, 0, 2}, /*pad_id=*/0);
  EXPECT_EQ(b.batch, 3);
  EXPECT_EQ(b.max_len, 3);
  EXPECT_THAT(b.tokens, ElementsAre(8, 5, 9,   //
                                    0, 6, 10,  //
                                    0, 7, 0));
  EXPECT_THAT(b.lengths, ElementsAre(1, 3, 2));
  EXPECT_THAT(b.labels, ElementsAre(0, 1, 1));
  EXPECT_THAT(b.example_indices, ElementsAre(1, 0, 2));
  const ClassificationBatch c = MakeClassificationBatch(d, {2}, /*pad_id=*/-1);
  EXPECT_THAT(c.tokens, ElementsAre(9, 10));
  EXPECT_EQ(MakeClassificationBatch(d, {}, 0).batch, 0);
}

TEST(ClassificationBatcherTest, EpochCoversTheDataOnce) {
  for (bool bucket : {false, true}) {
    ClassificationBatcherOptions o;
    o.global_batch = 4;
    o.seed = 11;
    o.bucket_by_length = bucket;
    o.bucket_batches = 2;
    const ClassificationBatcher train = MakeBatcher(23, o);
    const auto plan = train.PlanEpoch(0);
    ASSERT_EQ(plan.size(), 5u);  // 23 / 4, the partial batch of 3 dropped
    for (const auto& b : plan) EXPECT_EQ(b.size(), 4u);
    std::vector<int64_t> flat = Flatten(plan);
    EXPECT_EQ(std::set<int64_t>(flat.begin(), flat.end()).size(), 20u);

    o.drop_last = false;
    const ClassificationBatcher eval = MakeBatcher(23, o);
    const auto eval_plan = eval.PlanEpoch(0);
    ASSERT_EQ(eval_plan.size(), 6u);
    EXPECT_EQ(eval_plan.back().size(), 3u);  // partial batch last
    flat = Flatten(eval_plan);
    std::sort(flat.begin(), flat.end());
    std::vector<int64_t> iota(23);
    std::iota(iota.begin(), iota.end(), 0);
    EXPECT_EQ(flat, iota);
  }
}

TEST(ClassificationBatcherTest, DeterministicAndDifferentAcrossEpochsAndSeeds) {
  for (bool bucket : {false, true}) {
    ClassificationBatcherOptions o;
    o.global_batch = 4;
    o.seed = 5;
    o.bucket_by_length = bucket;
    o.bucket_batches = 2;
    const auto a = MakeBatcher(40, o);
    const auto b = MakeBatcher(40, o);
    EXPECT_EQ(a.PlanEpoch(3), b.PlanEpoch(3));
    EXPECT_NE(a.PlanEpoch(3), a.PlanEpoch(4));
    o.seed = 6;
    EXPECT_NE(MakeBatcher(40, o).PlanEpoch(3), a.PlanEpoch(3));
  }
}

TEST(ClassificationBatcherTest, NoShuffleKeepsDataOrder) {
  ClassificationBatcherOptions o;
  o.global_batch = 4;
  o.shuffle = false;
  o.bucket_by_length = false;
  o.drop_last = false;
  const auto plan = MakeBatcher(6, o).PlanEpoch(7);
  ASSERT_EQ(plan.size(), 2u);
  EXPECT_THAT(plan[0], ElementsAre(0, 1, 2, 3));
  EXPECT_THAT(plan[1], ElementsAre(4, 5));
}

TEST(ClassificationBatcherTest, BucketingSortsChunksAndCutsPadding) {
  const ClassificationDataset data = MakeData(200);
  const auto length = [&](int64_t i) { return static_cast<int64_t>(data.sequences[i].size()); };
  const auto padding = [&](const std::vector<std::vector<int64_t>>& plan) {
    int64_t pad = 0;
    for (const auto& b : plan) {
      int64_t max_len = 0;
      for (int64_t i : b) max_len = std::max(max_len, length(i));
      for (int64_t i : b) pad += max_len - length(i);
    }
    return pad;
  };
  ClassificationBatcherOptions o;
  o.global_batch = 8;
  o.seed = 1;
  o.bucket_batches = 5;
  o.bucket_by_length = false;
  const int64_t plain = padding(MakeBatcher(200, o).PlanEpoch(0));
  o.bucket_by_length = true;
  const auto bucketed_plan = MakeBatcher(200, o).PlanEpoch(0);
  const int64_t bucketed = padding(bucketed_plan);
  EXPECT_LT(bucketed * 3, plain);
  for (const auto& b : bucketed_plan) {
    EXPECT_TRUE(std::is_sorted(b.begin(), b.end(), [&](int64_t x, int64_t y) { return length(x) < length(y); }));
  }
  // The batch order is shuffled: with one chunk of all 200 examples the batches are cut
  // from one sorted list, so their lengths would be monotonic without the shuffle.
  o.bucket_batches = 25;
  const auto one_chunk = MakeBatcher(200, o).PlanEpoch(0);
  std::vector<int64_t> firsts;
  for (const auto& b : one_chunk) firsts.push_back(length(b.front()));
  EXPECT_FALSE(std::is_sorted(firsts.begin(), firsts.end()));
  // Each batch is a run of the sorted list: batches do not overlap in length ranges.
  std::vector<std::pair<int64_t, int64_t>> ranges;
  for (const auto& b : one_chunk) ranges.emplace_back(length(b.front()), length(b.back()));
  std::sort(ranges.begin(), ranges.end());
  for (size_t i = 1; i < ranges.size(); ++i) EXPECT_LE(ranges[i - 1].second, ranges[i].first);
}

// World-size invariance: the ranks' slices of each global batch, in rank order, are the
// 1-rank batch, for training (drop_last) and evaluation (partial last batch).
TEST(ClassificationBatcherTest, RankSlicesPartitionTheOneRankBatch) {
  for (bool drop_last : {true, false}) {
    for (bool bucket : {false, true}) {
      ClassificationBatcherOptions o;
      o.global_batch = 12;
      o.seed = 9;
      o.bucket_by_length = bucket;
      o.bucket_batches = 2;
      o.drop_last = drop_last;
      ClassificationBatcher one = MakeBatcher(61, o);  // 5 full batches + 1 of 1
      one.StartEpoch(2);
      ASSERT_EQ(one.num_batches(), drop_last ? 5 : 6);
      for (int world : {1, 2, 3, 4}) {
        SCOPED_TRACE(::testing::Message() << "world " << world << " drop_last " << drop_last << " bucket " << bucket);
        std::vector<ClassificationBatcher> ranks;
        for (int r = 0; r < world; ++r) {
          ranks.push_back(MakeBatcher(61, o, r, world));
          ranks.back().StartEpoch(2);
          ASSERT_EQ(ranks.back().num_batches(), one.num_batches());
        }
        for (int64_t i = 0; i < one.num_batches(); ++i) {
          ClassificationBatch full;
          one.FillBatch(i, full);
          std::vector<int64_t> joined, joined_labels;
          for (int r = 0; r < world; ++r) {
            ClassificationBatch part;
            ranks[r].FillBatch(i, part);
            if (full.batch == 12) {
              EXPECT_EQ(part.batch, 12 / world);
            }
            for (int64_t j = 0; j < part.batch; ++j) {
              const int64_t col = static_cast<int64_t>(joined.size());
              for (int64_t t = 0; t < full.max_len; ++t) {
                const int64_t expected = full.tokens[t * full.batch + col];
                const int64_t got = t < part.max_len ? part.tokens[t * part.batch + j] : 0;
                EXPECT_EQ(got, expected);
              }
              EXPECT_EQ(part.lengths[j], full.lengths[col]);
              joined.push_back(part.example_indices[j]);
              joined_labels.push_back(part.labels[j]);
            }
          }
          EXPECT_EQ(joined, full.example_indices);
          EXPECT_EQ(joined_labels, full.labels);
        }
      }
    }
  }
}

TEST(ClassificationBatcherTest, PartialBatchSliceRule) {
  using P = std::pair<int64_t, int64_t>;
  EXPECT_EQ(ClassificationBatcher::SliceOfRank(12, 1, 3), P(4, 8));
  EXPECT_EQ(ClassificationBatcher::SliceOfRank(5, 0, 3), P(0, 1));
  EXPECT_EQ(ClassificationBatcher::SliceOfRank(5, 1, 3), P(1, 3));
  EXPECT_EQ(ClassificationBatcher::SliceOfRank(5, 2, 3), P(3, 5));
  EXPECT_EQ(ClassificationBatcher::SliceOfRank(1, 0, 2), P(0, 0));  // rank 0 empty
  EXPECT_EQ(ClassificationBatcher::SliceOfRank(1, 1, 2), P(0, 1));
}

TEST(ClassificationBatcherTest, Errors) {
  ClassificationBatcherOptions o;
  o.global_batch = 6;
  auto not_divisible = ClassificationBatcher::Create(MakeData(20), o, 0, 4);
  ASSERT_FALSE(not_divisible.ok());
  EXPECT_THAT(not_divisible.status().message(), HasSubstr("global batch size 6 is not divisible by the world size 4"));
  EXPECT_FALSE(ClassificationBatcher::Create(MakeData(20), o, 4, 4).ok());

  ClassificationDataset empty_seq = MakeData(20);
  empty_seq.sequences[13].clear();
  EXPECT_THAT(ClassificationBatcher::Create(empty_seq, o, 0, 1).status().message(), HasSubstr("example 13 has no tokens"));

  ClassificationDataset mismatch = MakeData(20);
  mismatch.labels.pop_back();
  EXPECT_THAT(ClassificationBatcher::Create(mismatch, o, 0, 1).status().message(), HasSubstr("20 sequences but 19 labels"));

  EXPECT_THAT(ClassificationBatcher::Create(MakeData(5), o, 0, 1).status().message(),
              HasSubstr("5 examples give no full global batch of 6"));
  o.drop_last = false;
  EXPECT_TRUE(ClassificationBatcher::Create(MakeData(5), o, 0, 1).ok());
  o.bucket_batches = 0;
  EXPECT_FALSE(ClassificationBatcher::Create(MakeData(20), o, 0, 1).ok());
  o.bucket_batches = 1;
  o.global_batch = 0;
  EXPECT_FALSE(ClassificationBatcher::Create(MakeData(20), o, 0, 1).ok());
}

TEST(ClassificationBatcherTest, SplitIndices) {
  auto s = SplitIndices(100, 0.2, 3);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->valid.size(), 20u);
  EXPECT_EQ(s->train.size(), 80u);
  EXPECT_TRUE(std::is_sorted(s->valid.begin(), s->valid.end()));
  std::vector<int64_t> all = s->train;
  all.insert(all.end(), s->valid.begin(), s->valid.end());
  std::sort(all.begin(), all.end());
  std::vector<int64_t> iota(100);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(all, iota);
  EXPECT_EQ(SplitIndices(100, 0.2, 3)->valid, s->valid);
  EXPECT_NE(SplitIndices(100, 0.2, 4)->valid, s->valid);
  // Not simply the first or last examples.
  EXPECT_NE(s->valid.front(), 0);
  EXPECT_NE(s->valid.back(), 99);

  auto none = SplitIndices(10, 0.0, 1);
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->valid.empty());
  EXPECT_EQ(none->train.size(), 10u);
  EXPECT_THAT(SplitIndices(10, 0.05, 1).status().message(), HasSubstr("a part would be empty"));
  EXPECT_FALSE(SplitIndices(10, 1.0, 1).ok());
  EXPECT_FALSE(SplitIndices(10, -0.1, 1).ok());
}

}  // namespace
}  // namespace distrnn::data
