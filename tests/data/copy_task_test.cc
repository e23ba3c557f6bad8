#include "data/copy_task.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <numeric>

namespace distrnn::data {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string Render(const std::vector<int64_t>& ids) {
  const Vocabulary vocab = CopyTaskVocabulary();
  std::string s;
  for (int64_t id : ids) s += vocab.Token(id);
  return s;
}

TEST(CopyTaskTest, VocabularyHasFixedIds) {
  const Vocabulary v = CopyTaskVocabulary();
  EXPECT_THAT(v.tokens(), ElementsAre(" ", "$", "a", "x", "c", "r", "y", "w", "b", "t", "o"));
  EXPECT_EQ(v.size(), kCopyVocabSize);
  EXPECT_EQ(v.Find(" "), kCopyBlankId);
  EXPECT_EQ(v.Find("$"), kCopyDelimiterId);
  EXPECT_EQ(v.Find("a"), kCopyFirstSymbolId);
}

TEST(CopyTaskTest, Validate) {
  EXPECT_TRUE((CopyTaskSpec{10, 1, 10}.Validate().ok()));
  EXPECT_TRUE((CopyTaskSpec{10, 0, 3}.Validate().ok()));
  EXPECT_TRUE((CopyTaskSpec{1, 100, 1}.Validate().ok()));
  struct Case {
    CopyTaskSpec spec;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{0, 1, 1}, "K (symbols) must be >= 1 (K=0, P=1, L=1)"},
      {{5, -1, 2}, "P (delimiters) must be >= 0 (K=5, P=-1, L=2)"},
      {{5, 1, 0}, "L (copy length) must be >= 1"},
      {{3, 0, 5}, "L (copy length) must be <= K (symbols)"},
      {{3, 10, 4}, "L (copy length) must be <= K (symbols)"},
      {{kCopyMaxLength, 1, 1}, "must be <= 1048576"},
  };
  for (const Case& c : cases) {
    absl::Status s = c.spec.Validate();
    ASSERT_FALSE(s.ok()) << c.message;
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr(c.message));
  }
}

TEST(CopyTaskTest, SampleFormat) {
  const CopyTaskSpec spec{5, 2, 3};
  EXPECT_EQ(spec.length(), 10);
  EXPECT_EQ(spec.copy_begin(), 7);
  EXPECT_EQ(spec.copy_end(), 10);
  for (int64_t index = 0; index < 50; ++index) {
    const CopySample s = MakeCopySample(spec, 9, index);
    ASSERT_EQ(s.inputs.size(), 10u);
    ASSERT_EQ(s.targets.size(), 10u);
    for (int t = 0; t < 5; ++t) {
      EXPECT_GE(s.inputs[t], kCopyFirstSymbolId);
      EXPECT_LT(s.inputs[t], kCopyVocabSize);
    }
    EXPECT_EQ(s.inputs[5], kCopyDelimiterId);
    EXPECT_EQ(s.inputs[6], kCopyDelimiterId);
    for (int t = 7; t < 10; ++t) EXPECT_EQ(s.inputs[t], kCopyBlankId);
    for (int t = 0; t < 7; ++t) EXPECT_EQ(s.targets[t], kCopyBlankId);
    for (int t = 0; t < 3; ++t) EXPECT_EQ(s.targets[7 + t], s.inputs[t]);
  }
}

// The symbols follow the documented formula, computed independently in Python:
//   key = sm(seed ^ sm(i)); symbol_j = (sm(key + j) * 9) >> 64   (sm = SplitMix64)
TEST(CopyTaskTest, GoldenSamples) {
  CopySample s = MakeCopySample({12, 2, 4}, 42, 7);
  EXPECT_EQ(Render(s.inputs), "xotaowobyaca$$    ");
  EXPECT_EQ(Render(s.targets), "              xota");
  EXPECT_EQ(Render(MakeCopySample({12, 0, 1}, 0, 0).inputs), "xcwtabycaoby ");
  EXPECT_EQ(Render(MakeCopySample({12, 1, 12}, 1, 123456789).targets), "             byrwtacwaway");
}

TEST(CopyTaskTest, DeterministicFromSeedAndIndexOnly) {
  const CopyTaskSpec spec{20, 3, 10};
  EXPECT_EQ(MakeCopySample(spec, 5, 17).inputs, MakeCopySample(spec, 5, 17).inputs);
  EXPECT_NE(MakeCopySample(spec, 5, 17).inputs, MakeCopySample(spec, 5, 18).inputs);
  EXPECT_NE(MakeCopySample(spec, 5, 17).inputs, MakeCopySample(spec, 6, 17).inputs);
  // A longer test sequence (K + M) extends the train one: symbols do not depend on K, P, L.
  const CopySample train = MakeCopySample({10, 1, 10}, 5, 3);
  const CopySample test = MakeCopySample({30, 4, 10}, 5, 3);
  EXPECT_TRUE(std::equal(train.inputs.begin(), train.inputs.begin() + 10, test.inputs.begin()));
}

TEST(CopyTaskTest, SymbolsAreRoughlyUniform) {
  std::vector<int64_t> counts(kCopyVocabSize, 0);
  for (int64_t index = 0; index < 900; ++index) {
    for (int64_t id : MakeCopySample({20, 0, 1}, 1234, index).inputs) ++counts[id];
  }
  EXPECT_EQ(counts[kCopyBlankId], 900);  // the one blank per sample
  EXPECT_EQ(counts[kCopyDelimiterId], 0);
  for (int64_t id = kCopyFirstSymbolId; id < kCopyVocabSize; ++id) {
    EXPECT_NEAR(counts[id], 2000, 200) << "symbol " << id;  // 18000 draws / 9
  }
}

TEST(CopyTaskTest, BatchIsTimeMajorWithMask) {
  const CopyTaskSpec spec{4, 1, 2};
  auto b = MakeCopyBatch(spec, 3, {5, 0, 9});
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_EQ(b->steps, 7);
  EXPECT_EQ(b->batch, 3);
  EXPECT_EQ(b->copy_begin, 5);
  EXPECT_EQ(b->copy_end, 7);
  EXPECT_THAT(b->sample_indices, ElementsAre(5, 0, 9));
  const std::vector<int64_t> indices = {5, 0, 9};
  for (int64_t j = 0; j < 3; ++j) {
    const CopySample s = MakeCopySample(spec, 3, indices[j]);
    for (int64_t t = 0; t < 7; ++t) {
      EXPECT_EQ(b->inputs[t * 3 + j], s.inputs[t]);
      EXPECT_EQ(b->targets[t * 3 + j], s.targets[t]);
    }
  }
  std::vector<float> expected_mask(21, 0.0f);
  for (int64_t i = 15; i < 21; ++i) expected_mask[i] = 1.0f;
  EXPECT_EQ(b->mask, expected_mask);
}

TEST(CopyTaskTest, ShardedBatchesAreColumnsOfTheGlobalBatch) {
  const CopyTaskSpec spec{6, 2, 3};
  std::vector<int64_t> all(8);
  std::iota(all.begin(), all.end(), 40);
  auto global = MakeCopyBatch(spec, 77, all);
  ASSERT_TRUE(global.ok());
  for (int world : {2, 4}) {
    const int64_t per = 8 / world;
    for (int rank = 0; rank < world; ++rank) {
      auto part = MakeCopyBatch(spec, 77, std::vector<int64_t>(all.begin() + rank * per, all.begin() + (rank + 1) * per));
      ASSERT_TRUE(part.ok());
      for (int64_t t = 0; t < spec.length(); ++t) {
        for (int64_t j = 0; j < per; ++j) {
          EXPECT_EQ(part->inputs[t * per + j], global->inputs[t * 8 + rank * per + j]);
          EXPECT_EQ(part->targets[t * per + j], global->targets[t * 8 + rank * per + j]);
        }
      }
    }
  }
}

TEST(CopyTaskTest, ShardIndices) {
  EXPECT_THAT(CopyShardIndices(100, 8, 0, 1).value(), ElementsAre(100, 101, 102, 103, 104, 105, 106, 107));
  EXPECT_THAT(CopyShardIndices(100, 8, 1, 2).value(), ElementsAre(104, 105, 106, 107));
  EXPECT_THAT(CopyShardIndices(0, 8, 3, 4).value(), ElementsAre(6, 7));
  EXPECT_THAT(CopyShardIndices(0, 8, 0, 3).status().message(), HasSubstr("not divisible"));
  EXPECT_FALSE(CopyShardIndices(-1, 8, 0, 1).ok());
}

TEST(CopyTaskTest, BatchErrors) {
  EXPECT_THAT(MakeCopyBatch({2, 0, 3}, 1, {0}).status().message(), HasSubstr("must be <= K"));
  EXPECT_THAT(MakeCopyBatch({2, 0, 1}, 1, {}).status().message(), HasSubstr("at least one sample"));
  EXPECT_THAT(MakeCopyBatch({2, 0, 1}, 1, {0, -3}).status().message(), HasSubstr("negative sample index -3"));
}

TEST(CopyTaskTest, Accuracy) {
  const CopyTaskSpec spec{4, 1, 3};  // T = 8, copied segment t = 5, 6, 7
  auto b = MakeCopyBatch(spec, 2, {0, 1, 2, 3});
  ASSERT_TRUE(b.ok());
  auto perfect = ScoreCopyBatch(*b, b->targets);
  ASSERT_TRUE(perfect.ok());
  EXPECT_EQ(perfect->correct_steps, 12);
  EXPECT_EQ(perfect->total_steps, 12);
  EXPECT_EQ(perfect->correct_copies, 4);
  EXPECT_EQ(perfect->correct_sequences, 4);
  EXPECT_EQ(perfect->total_sequences, 4);
  EXPECT_DOUBLE_EQ(perfect->step_accuracy(), 1.0);

  std::vector<int64_t> pred = b->targets;
  pred[6 * 4 + 1] = (pred[6 * 4 + 1] == 2) ? 3 : 2;  // sequence 1: one copied step wrong
  pred[7 * 4 + 1] = kCopyBlankId;                     // and another
  pred[2 * 4 + 3] = kCopyDelimiterId;                 // sequence 3: a blank step wrong
  auto acc = ScoreCopyBatch(*b, pred);
  ASSERT_TRUE(acc.ok());
  EXPECT_EQ(acc->correct_steps, 10);
  EXPECT_EQ(acc->correct_copies, 3);
  EXPECT_EQ(acc->correct_sequences, 2);
  EXPECT_DOUBLE_EQ(acc->step_accuracy(), 10.0 / 12.0);
  EXPECT_DOUBLE_EQ(acc->copy_accuracy(), 0.75);
  EXPECT_DOUBLE_EQ(acc->sequence_accuracy(), 0.5);

  CopyAccuracy sum = *perfect;
  sum += *acc;
  EXPECT_EQ(sum.correct_steps, 22);
  EXPECT_EQ(sum.total_steps, 24);
  EXPECT_EQ(sum.correct_sequences, 6);
  EXPECT_EQ(sum.total_sequences, 8);

  auto wrong_size = ScoreCopyBatch(*b, std::vector<int64_t>(5, 0));
  ASSERT_FALSE(wrong_size.ok());
  EXPECT_THAT(wrong_size.status().message(), HasSubstr("5 predictions for a batch of 8 steps x 4 sequences"));
  EXPECT_DOUBLE_EQ(CopyAccuracy{}.step_accuracy(), 0.0);
}

}  // namespace
}  // namespace distrnn::data
