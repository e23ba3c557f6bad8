#include "data/utf8.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

namespace distrnn::data {
namespace {

using ::testing::HasSubstr;

TEST(Utf8Test, DecodesEachLength) {
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80";  // a é € 😀
  char32_t cp = 0;
  EXPECT_EQ(DecodeUtf8(text, 0, &cp), 1);
  EXPECT_EQ(cp, U'a');
  EXPECT_EQ(DecodeUtf8(text, 1, &cp), 2);
  EXPECT_EQ(cp, U'\u00E9');
  EXPECT_EQ(DecodeUtf8(text, 3, &cp), 3);
  EXPECT_EQ(cp, U'\u20AC');
  EXPECT_EQ(DecodeUtf8(text, 6, &cp), 4);
  EXPECT_EQ(cp, U'\U0001F600');
  EXPECT_TRUE(CheckUtf8(text, "t").ok());
  EXPECT_TRUE(CheckUtf8("", "t").ok());
  EXPECT_TRUE(CheckUtf8(std::string("nul\0inside", 10), "t").ok());  // U+0000 is valid
}

TEST(Utf8Test, RefusesEveryKindOfInvalidSequence) {
  for (const std::string bad : {"\x80", "\xBF", "\xC0\xAF", "\xC1\xBF", "\xE0\x80\xAF", "\xF0\x80\x80\xAF",
                                "\xED\xA0\x80", "\xED\xBF\xBF", "\xF4\x90\x80\x80", "\xF8\x88\x80\x80\x80", "\xFF",
                                "\xC3", "\xE2\x82", "\xF0\x9F\x98", "\xC3\x41"}) {
    char32_t cp;
    EXPECT_EQ(DecodeUtf8(bad, 0, &cp), 0) << ::testing::PrintToString(bad);
    const absl::Status s = CheckUtf8("ok " + bad, "f.txt");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << ::testing::PrintToString(bad);
    EXPECT_THAT(s.message(), HasSubstr("f.txt:1: invalid UTF-8 at byte offset 3")) << s;
  }
}

// The ASCII fast path reads 8 bytes at a time: a bad byte at any position of a long ASCII
// text, and near its end, is found with the right line and offset.
TEST(Utf8Test, FindsTheFirstBadByteAtAnyOffset) {
  for (size_t n : {1u, 7u, 8u, 9u, 15u, 16u, 17u, 40u}) {
    for (size_t at = 0; at < n; ++at) {
      std::string text(n, 'x');
      for (size_t k = 4; k < n; k += 5) text[k] = '\n';
      text[at] = '\xFE';
      const int64_t line = 1 + std::count(text.begin(), text.begin() + at, '\n');
      const absl::Status s = CheckUtf8(text, "src");
      EXPECT_THAT(s.message(), HasSubstr("src:" + std::to_string(line) + ": invalid UTF-8 at byte offset " +
                                         std::to_string(at) + " (byte 0xFE)"))
          << "n=" << n << " at=" << at;
    }
  }
}

}  // namespace
}  // namespace distrnn::data
