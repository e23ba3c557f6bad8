#include "data/utf8.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_format.h"

namespace distrnn::data {

int DecodeUtf8(absl::string_view text, size_t i, char32_t* code_point) {
  const auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
  const unsigned char b0 = byte(i);
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  int length;
  char32_t cp;
  char32_t min;
  if ((b0 & 0xE0) == 0xC0) {
    length = 2, cp = b0 & 0x1F, min = 0x80;
  } else if ((b0 & 0xF0) == 0xE0) {
    length = 3, cp = b0 & 0x0F, min = 0x800;
  } else if ((b0 & 0xF8) == 0xF0) {
    length = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return 0;  // continuation byte or 0xF8..0xFF
  }
  if (i + length > text.size()) return 0;
  for (int k = 1; k < length; ++k) {
    const unsigned char b = byte(i + k);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  *code_point = cp;
  return length;
}

absl::Status CheckUtf8(absl::string_view text, absl::string_view source) {
  size_t i = 0;
  while (i < text.size()) {
    // ASCII runs, 8 bytes at a time (most of every corpus).
    uint64_t word;
    while (i + 8 <= text.size() && (std::memcpy(&word, text.data() + i, 8), (word & 0x8080808080808080ull) == 0)) {
      i += 8;
    }
    if (i >= text.size()) break;
    char32_t cp;
    const int length = DecodeUtf8(text, i, &cp);
    if (length == 0) {
      const int64_t line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(i), '\n');
      return absl::InvalidArgumentError(
          absl::StrFormat("%s:%d: invalid UTF-8 at byte offset %d (byte 0x%02X); the file must be UTF-8 text",
                          source, line, i, static_cast<unsigned char>(text[i])));
    }
    i += static_cast<size_t>(length);
  }
  return absl::OkStatus();
}

}  // namespace distrnn::data
