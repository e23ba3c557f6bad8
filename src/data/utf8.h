// UTF-8 decoding and validation shared by every text reader.
//
// Note [text is UTF-8]
// Every text a user hands us (PTB corpora, character texts, IMDB reviews, GloVe files) must
// be UTF-8, and is checked when it is read. Tokens become the vocabulary, which checkpoints
// store as JSON strings, and JSON holds only valid Unicode: invalid bytes found after
// training started would fail the first checkpoint save and lose the run. We refuse such a
// file at read time (InvalidArgument, naming file, line and byte offset) rather than
// storing the vocabulary in a form any bytes survive (e.g. base64): a file that is not
// UTF-8 is almost always corrupt or in another encoding (Latin-1), and accepting it would
// silently train on mojibake and make `head -2 checkpoint` unreadable. `iconv -f latin1
// -t utf-8` converts such a file.
#pragma once

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace distrnn::data {

// Length (1-4) of the UTF-8 sequence starting at text[i] with its code point in
// *code_point, or 0 if it is invalid: a stray continuation byte, 0xF8-0xFF, a sequence cut
// short, an overlong form, a UTF-16 surrogate or a value above U+10FFFF. i < text.size().
int DecodeUtf8(absl::string_view text, size_t i, char32_t* code_point);

// OK if `text` is valid UTF-8; else InvalidArgument
//   "<source>:<line>: invalid UTF-8 at byte offset <n> (byte 0x<XX>); the file must be UTF-8 text"
// with a 1-based line and a 0-based offset from the start of `text`.
absl::Status CheckUtf8(absl::string_view text, absl::string_view source);

}  // namespace distrnn::data
