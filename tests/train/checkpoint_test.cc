#include "train/checkpoint.h"

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "model/language_model.h"
#include "support/temp_dir.h"

namespace distrnn::train {
namespace {

model::LanguageModel MakeModel(uint64_t seed) {
  torch::manual_seed(seed);
  model::LanguageModelConfig c;
  c.vocab_size = 13;
  c.embedding_size = 5;
  c.stack.input_size = 5;
  c.stack.hidden_size = 5;
  return model::LanguageModel(c);
}

TEST(CheckpointTest, RoundTripsParametersAndMetadata) {
  testing::TempDir dir;
  const std::string path = dir.Join("model.pt");
  model::LanguageModel saved = MakeModel(1), loaded = MakeModel(2);
  ASSERT_TRUE(SaveCheckpoint(path, {{"task", "ptb_lm"}, {"epoch", 3}}, *saved, nullptr).ok());
  auto meta = ReadCheckpointMeta(path);
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ((*meta)["task"], "ptb_lm");
  EXPECT_EQ((*meta)["epoch"], 3);
  EXPECT_EQ((*meta)["format"], kCheckpointFormat);
  ASSERT_TRUE(LoadCheckpoint(path, *loaded, nullptr).ok());
  auto a = saved->parameters(), b = loaded->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], b[i]));
  // Nothing but the checkpoint is left behind (no temp files).
  EXPECT_EQ(std::distance(std::filesystem::directory_iterator(dir.path()), {}), 1);
}

TEST(CheckpointTest, RoundTripsOptimizerState) {
  testing::TempDir dir;
  const std::string path = dir.Join("model.pt");
  model::LanguageModel model = MakeModel(1);
  torch::optim::SGD sgd(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  auto [logits, state] = model->forward(torch::randint(13, {4, 2}, torch::kLong));
  logits.sum().backward();
  sgd.step();  // creates momentum buffers
  ASSERT_TRUE(SaveCheckpoint(path, {}, *model, &sgd).ok());

  model::LanguageModel other = MakeModel(2);
  torch::optim::SGD other_sgd(other->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
  ASSERT_TRUE(LoadCheckpoint(path, *other, &other_sgd).ok());
  auto params = model->parameters(), other_params = other->parameters();
  for (size_t i = 0; i < params.size(); ++i) {
    auto& a = static_cast<torch::optim::SGDParamState&>(*sgd.state().at(params[i].unsafeGetTensorImpl()));
    auto& b = static_cast<torch::optim::SGDParamState&>(*other_sgd.state().at(other_params[i].unsafeGetTensorImpl()));
    EXPECT_TRUE(torch::equal(a.momentum_buffer(), b.momentum_buffer())) << "parameter " << i;
  }
}

TEST(CheckpointTest, RefusesTruncatedForeignAndMissingFiles) {
  testing::TempDir dir;
  const std::string path = dir.Join("model.pt");
  model::LanguageModel model = MakeModel(1);
  ASSERT_TRUE(SaveCheckpoint(path, {{"task", "ptb_lm"}}, *model, nullptr).ok());
  const auto size = std::filesystem::file_size(path);
  std::filesystem::resize_file(path, size / 2);
  auto truncated = ReadCheckpointMeta(path);
  ASSERT_FALSE(truncated.ok());
  EXPECT_NE(truncated.status().message().find("truncated or foreign"), std::string::npos);
  EXPECT_FALSE(LoadCheckpoint(path, *model, nullptr).ok());

  const std::string foreign = dir.WriteFile("foreign.pt", "this is not a checkpoint");
  EXPECT_FALSE(ReadCheckpointMeta(foreign).ok());

  // A valid torch archive without our metadata is foreign too.
  const std::string other = dir.Join("other.pt");
  torch::save(torch::ones({3}), other);
  auto no_meta = ReadCheckpointMeta(other);
  ASSERT_FALSE(no_meta.ok());
  EXPECT_NE(no_meta.status().message().find("not a distrnn checkpoint"), std::string::npos);

  auto missing = ReadCheckpointMeta(dir.Join("missing.pt"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
}

TEST(CheckpointTest, RefusesModelOfAnotherShape) {
  testing::TempDir dir;
  const std::string path = dir.Join("model.pt");
  model::LanguageModel model = MakeModel(1);
  ASSERT_TRUE(SaveCheckpoint(path, {}, *model, nullptr).ok());
  model::LanguageModelConfig bigger;
  bigger.vocab_size = 13;
  bigger.embedding_size = 7;
  bigger.stack.input_size = 7;
  bigger.stack.hidden_size = 7;
  model::LanguageModel other(bigger);
  EXPECT_FALSE(LoadCheckpoint(path, *other, nullptr).ok());
}

TEST(CheckpointTest, WriteFileAtomicallyReplacesContents) {
  testing::TempDir dir;
  const std::string path = dir.WriteFile("latest", "old");
  ASSERT_TRUE(WriteFileAtomically(path, "new").ok());
  std::ifstream in(path);
  std::string contents((std::istreambuf_iterator<char>(in)), {});
  EXPECT_EQ(contents, "new");
}

}  // namespace
}  // namespace distrnn::train
