#include "data/compressed_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>

#include "data/gzip_writer.h"
#include "support/temp_dir.h"

namespace distrnn::data {
namespace {

using ::testing::HasSubstr;
using distrnn::testing::TempDir;

TEST(CompressedFileTest, ReadsPlainAndGzipByContent) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 20000; ++i) text += "line " + std::to_string(i) + "\n";  // > one read buffer
  const std::string gz = dir.Join("a.gz");
  distrnn::testing::WriteGzipFile(gz, text);
  ASSERT_LT(std::filesystem::file_size(gz), text.size());  // really compressed
  auto from_gz = ReadMaybeCompressedFile(gz);
  ASSERT_TRUE(from_gz.ok()) << from_gz.status();
  EXPECT_EQ(*from_gz, text);
  // gzip detected by magic bytes, not by name.
  const std::string renamed = dir.Join("a.tsv");
  std::filesystem::copy_file(gz, renamed);
  EXPECT_EQ(ReadMaybeCompressedFile(renamed).value(), text);
  EXPECT_EQ(ReadMaybeCompressedFile(dir.WriteFile("plain.gz", "x\ty\n")).value(), "x\ty\n");
}

TEST(CompressedFileTest, Errors) {
  TempDir dir;
  auto missing = ReadMaybeCompressedFile(dir.Join("none.gz"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("none.gz"));

  auto empty = ReadMaybeCompressedFile(dir.WriteFile("empty", ""));
  ASSERT_FALSE(empty.ok());
  EXPECT_THAT(empty.status().message(), HasSubstr("empty file"));
  EXPECT_TRUE(ReadMaybeCompressedFile(dir.Join("empty"), /*allow_empty=*/true).ok());

  std::string text(50000, 'q');
  for (size_t i = 0; i < text.size(); i += 7) text[i] = static_cast<char>('a' + i % 26);
  const std::string gz = dir.Join("t.gz");
  distrnn::testing::WriteGzipFile(gz, text);
  std::filesystem::resize_file(gz, std::filesystem::file_size(gz) / 2);
  auto truncated = ReadMaybeCompressedFile(gz);
  ASSERT_FALSE(truncated.ok());
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(truncated.status().message(), HasSubstr(gz));
}

}  // namespace
}  // namespace distrnn::data
