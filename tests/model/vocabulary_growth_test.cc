#include "model/vocabulary_growth.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace distrnn::model {
namespace {

LanguageModelConfig Config(int64_t vocab, bool tie, CellType cell = CellType::kLstm) {
  LanguageModelConfig c;
  c.vocab_size = vocab;
  c.embedding_size = 6;
  c.stack.cell = cell;
  c.stack.hidden_size = 6;
  c.stack.num_layers = 2;
  c.tie_weights = tie;
  EXPECT_TRUE(c.Validate().ok());
  return c;
}

// Rows of the old tokens come from the pretrained model, rows of the new ones keep the
// grown model's initialisation, everything else is copied: the grown model scores a
// sequence of old tokens exactly as the pretrained one on their columns.
TEST(VocabularyGrowthTest, CopiesOldRowsKeepsNewRowsAndPredictsAlike) {
  for (bool tie : {false, true}) {
    for (CellType cell : {CellType::kLstm, CellType::kMlstm}) {
      torch::manual_seed(1);
      LanguageModel old_model(Config(7, tie, cell));
      torch::manual_seed(2);
      LanguageModel grown(Config(10, tie, cell));
      std::map<std::string, torch::Tensor> before;
      for (const auto& item : grown->named_parameters()) before[item.key()] = item.value().clone();
      ASSERT_TRUE(CopyGrowingVocabulary(old_model, grown).ok());
      const auto old_params = old_model->named_parameters();
      int grown_params = 0;
      for (const auto& item : grown->named_parameters()) {
        const torch::Tensor& old = old_params[item.key()];
        if (old.sizes() == item.value().sizes()) {
          EXPECT_TRUE(torch::equal(item.value(), old)) << item.key();
          continue;
        }
        ++grown_params;
        EXPECT_TRUE(torch::equal(item.value().narrow(0, 0, 7), old)) << item.key();
        EXPECT_TRUE(torch::equal(item.value().narrow(0, 7, 3), before[item.key()].narrow(0, 7, 3))) << item.key();
      }
      EXPECT_EQ(grown_params, tie ? 2 : 3) << "embedding, decoder weight (untied) and bias";
      old_model->eval();
      grown->eval();
      torch::NoGradGuard no_grad;
      const torch::Tensor tokens = torch::randint(7, {5, 2}, torch::kInt64);
      auto [old_logits, s1] = old_model->forward(tokens);
      auto [new_logits, s2] = grown->forward(tokens);
      EXPECT_TRUE(torch::allclose(new_logits.narrow(-1, 0, 7), old_logits, 1e-6, 1e-6));
    }
  }
}

TEST(VocabularyGrowthTest, RefusesOtherArchitecturesAndAShrinkingVocabulary) {
  LanguageModel small(Config(7, false)), smaller(Config(5, false));
  EXPECT_FALSE(CopyGrowingVocabulary(small, smaller).ok());
  LanguageModelConfig wider = Config(9, false);
  wider.stack.hidden_size = 8;
  wider.embedding_size = 8;
  LanguageModel other(wider);
  const absl::Status status = CopyGrowingVocabulary(small, other);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find("parameter '"), absl::string_view::npos) << status;
}

}  // namespace
}  // namespace distrnn::model
