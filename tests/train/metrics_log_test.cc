#include "train/metrics_log.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace distrnn::testing {
namespace {

std::vector<nlohmann::json> ReadLines(const std::string& path) {
  std::vector<nlohmann::json> records;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) records.push_back(nlohmann::json::parse(line));
  return records;
}

TEST(MetricsLog, AppendsOneRecordPerLine) {
  const std::string path = (std::filesystem::path(::testing::TempDir()) / "metrics_log_test.jsonl").string();
  std::filesystem::remove(path);
  {
    auto log = train::MetricsLog::Open(path);
    ASSERT_TRUE(log.ok()) << log.status();
    log->Write({{"type", "progress"}, {"step", 1}});
    log->Write({{"type", "epoch"}, {"name", std::string("bad \xff byte")}});
    EXPECT_EQ(log->write_failures(), 0);
  }
  const auto records = ReadLines(path);
  ASSERT_EQ(records.size(), 2u);
  EXPECT_EQ(records[0]["step"], 1);
  EXPECT_EQ(records[1]["type"], "epoch");
  std::filesystem::remove(path);
}

// A full disk (/dev/full: every write fails with ENOSPC) does not stop training: one
// warning naming the file and the error, and the failures are counted.
TEST(MetricsLog, FullDiskWarnsOnceAndGoesOn) {
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  auto log = train::MetricsLog::Open("/dev/full");
  ASSERT_TRUE(log.ok()) << log.status();
  ::testing::internal::CaptureStderr();
  for (int i = 0; i < 3; ++i) log->Write({{"type", "progress"}, {"step", i}, {"pad", std::string(8192, 'x')}});
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log->write_failures(), 3);
  EXPECT_NE(err.find("cannot write to /dev/full: No space left on device"), std::string::npos) << err;
  EXPECT_EQ(err.find("cannot write"), err.rfind("cannot write")) << "warned once: " << err;
}

TEST(MetricsLog, UnopenablePathIsAnError) {
  auto log = train::MetricsLog::Open("/nonexistent-dir/metrics.jsonl");
  ASSERT_FALSE(log.ok());
  EXPECT_NE(std::string(log.status().message()).find("cannot open /nonexistent-dir/metrics.jsonl"), std::string::npos);
}

}  // namespace
}  // namespace distrnn::testing
