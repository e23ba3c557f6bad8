#include "train/checkpoint_dir.h"

#include <filesystem>
#include <fstream>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace distrnn::train {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> FileNames(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), {});
}

class CheckpointDirectoryTest : public ::testing::Test {
 protected:
  CheckpointContents Contents(int64_t step) {
    CheckpointContents contents;
    contents.meta = {{"global_step", step}};
    contents.model = model_.get();
    return contents;
  }

  testing::TempDir temp_;
  torch::nn::Linear model_{3, 2};
};

TEST_F(CheckpointDirectoryTest, PathsAreNamedAfterTheStep) {
  CheckpointDirectory dir("/runs/a", 2);
  EXPECT_EQ(dir.StepPath(1200), "/runs/a/checkpoint-000001200.pt");
  EXPECT_EQ(dir.StepPath(1234567890), "/runs/a/checkpoint-1234567890.pt");
  EXPECT_EQ(dir.BestPath(), "/runs/a/best.pt");
  EXPECT_EQ(dir.LatestPath(), "/runs/a/latest");
}

TEST_F(CheckpointDirectoryTest, LatestNamesTheNewestAndKeepBoundsTheStepFiles) {
  const std::string run = temp_.Join("run");  // created by the first save
  CheckpointDirectory dir(run, 2);
  auto none = dir.Latest();
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  for (int64_t step : {100, 200, 300, 400, 500}) {
    ASSERT_TRUE(dir.SaveStep(step, Contents(step)).ok());
    if (step == 300) ASSERT_TRUE(dir.SaveBest(Contents(step)).ok());
    auto latest = dir.Latest();
    ASSERT_TRUE(latest.ok()) << latest.status();
    ASSERT_TRUE(latest->has_value());
    EXPECT_EQ(**latest, dir.StepPath(step));
    EXPECT_EQ((*ReadCheckpointMeta(**latest))["global_step"], step);
  }
  EXPECT_EQ(ReadAll(dir.LatestPath()), "checkpoint-000000500.pt\n");
  // Exactly the two newest step files, best.pt (of step 300) and latest; no temp files.
  EXPECT_EQ(FileNames(run), (std::vector<std::string>{"best.pt", "checkpoint-000000400.pt",
                                                      "checkpoint-000000500.pt", "latest"}));
  EXPECT_EQ((*ReadCheckpointMeta(dir.BestPath()))["global_step"], 300);
  auto steps = dir.StepCheckpoints();
  ASSERT_TRUE(steps.ok());
  ASSERT_EQ(steps->size(), 2u);
  EXPECT_EQ((*steps)[0].first, 400);
  EXPECT_EQ((*steps)[1].second, dir.StepPath(500));
}

TEST_F(CheckpointDirectoryTest, KeepOneAndSharedBytes) {
  CheckpointDirectory dir(temp_.path(), 1);
  for (int64_t step : {1, 2, 3}) {
    auto bytes = SerializeCheckpoint(Contents(step));
    ASSERT_TRUE(bytes.ok());
    ASSERT_TRUE(dir.SaveStepBytes(step, *bytes).ok());
    ASSERT_TRUE(dir.SaveBestBytes(*bytes).ok());
    EXPECT_EQ(ReadAll(dir.StepPath(step)), ReadAll(dir.BestPath()));
  }
  EXPECT_EQ(FileNames(temp_.path()), (std::vector<std::string>{"best.pt", "checkpoint-000000003.pt", "latest"}));
}

TEST_F(CheckpointDirectoryTest, OnlyOlderStepsArePrunedAndOtherFilesAreLeftAlone) {
  CheckpointDirectory dir(temp_.path(), 2);
  // Left by an abandoned run that went further, and files that only look similar.
  ASSERT_TRUE(dir.SaveStep(900, Contents(900)).ok());
  temp_.WriteFile("checkpoint-12.pt", "x");
  temp_.WriteFile("checkpoint-000000001.pt.tmp.1.0", "x");
  temp_.WriteFile("notes.txt", "x");
  for (int64_t step : {10, 20, 30}) ASSERT_TRUE(dir.SaveStep(step, Contents(step)).ok());
  EXPECT_EQ(FileNames(temp_.path()),
            (std::vector<std::string>{"checkpoint-000000001.pt.tmp.1.0", "checkpoint-000000020.pt",
                                      "checkpoint-000000030.pt", "checkpoint-000000900.pt", "checkpoint-12.pt",
                                      "latest", "notes.txt"}));
  EXPECT_EQ(**dir.Latest(), dir.StepPath(30));
}

TEST_F(CheckpointDirectoryTest, BadLatestIsAnError) {
  CheckpointDirectory dir(temp_.path(), 2);
  temp_.WriteFile("latest", "checkpoint-000000042.pt\n");
  auto missing = dir.Latest();
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(missing.status().message(),
            temp_.path() + "/latest names checkpoint-000000042.pt, which does not exist");

  temp_.WriteFile("latest", " \n");
  EXPECT_EQ(dir.Latest().status().message(), temp_.path() + "/latest is empty");
  temp_.WriteFile("latest", "../elsewhere.pt");
  EXPECT_EQ(dir.Latest().status().code(), absl::StatusCode::kInvalidArgument);
  fs::remove(dir.LatestPath());
  fs::create_directory(dir.LatestPath());
  EXPECT_EQ(dir.Latest().status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CheckpointDirectoryTest, NegativeStepIsRefused) {
  CheckpointDirectory dir(temp_.path(), 2);
  EXPECT_EQ(dir.SaveStep(-1, Contents(0)).code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(CheckpointDirectoryTest, CheckWritable) {
  const std::string nested = temp_.Join("a/b/c");
  ASSERT_TRUE(CheckpointDirectory::CheckWritable(nested).ok());
  EXPECT_TRUE(fs::is_directory(nested));
  EXPECT_TRUE(FileNames(nested).empty());  // the probe is gone

  // Tests run as root, where permissions do not stop writes: a path under a regular file
  // cannot be created by anyone.
  const std::string file = temp_.WriteFile("file", "x");
  auto status = CheckpointDirectory::CheckWritable(file + "/sub");
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(status.message().find(file + "/sub"), absl::string_view::npos) << status;
  EXPECT_FALSE(CheckpointDirectory::CheckWritable(file).ok());  // a file, not a directory
}

}  // namespace
}  // namespace distrnn::train
