// Whole-file reads of plain or gzip-compressed files (zlib detects which), with errors
// that name the file.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace distrnn::data {

// The (decompressed) bytes of `path`. gzip is recognised by its magic bytes, not by the
// file name, so `x.tsv` and `x.tsv.gz` both work. NotFound if the file is missing;
// InvalidArgument if the gzip stream is corrupt or truncated (the content of the user's
// file: exit 2) or the file is empty and not `allow_empty`; DataLoss if reading fails
// (an I/O error) and ResourceExhausted if zlib runs out of memory.
absl::StatusOr<std::string> ReadMaybeCompressedFile(const std::string& path, bool allow_empty = false);

}  // namespace distrnn::data
