#include "data/compressed_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

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
  // The content of the user's file: InvalidArgument (exit 2), not a fault of the machine.
  EXPECT_EQ(truncated.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(truncated.status().message(), HasSubstr(gz));
}

// Every single-byte corruption of a gzip file is either read (a flip gzip cannot see, e.g.
// in the header's mtime) or refused as InvalidArgument naming the file; never another code.
TEST(CompressedFileTest, EveryCorruptByteIsInvalidArgumentOrHarmless) {
  TempDir dir;
  std::string text;
  for (int i = 0; i < 300; ++i) text += "line " + std::to_string(i * 7919 % 1000) + "\n";
  const std::string gz = dir.Join("c.gz");
  distrnn::testing::WriteGzipFile(gz, text);
  std::string bytes;
  {
    std::ifstream in(gz, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), {});
  }
  int refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    std::string bad = bytes;
    bad[i] ^= 0x55;
    const std::string path = dir.WriteFile("bad.gz", bad);
    auto r = ReadMaybeCompressedFile(path);
    if (r.ok()) continue;
    ++refused;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << "byte " << i << ": " << r.status();
    EXPECT_THAT(r.status().message(), HasSubstr(path));
  }
  EXPECT_GT(refused, static_cast<int>(bytes.size()) / 2);
}

}  // namespace
}  // namespace distrnn::data
