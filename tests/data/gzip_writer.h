// Test helper: writes a gzip file with zlib.
#pragma once

#include <zlib.h>

#include <stdexcept>
#include <string>

namespace distrnn::testing {

inline void WriteGzipFile(const std::string& path, const std::string& contents) {
  gzFile f = gzopen(path.c_str(), "wb");
  if (f == nullptr) throw std::runtime_error("gzopen failed: " + path);
  if (!contents.empty() && gzwrite(f, contents.data(), static_cast<unsigned>(contents.size())) == 0) {
    throw std::runtime_error("gzwrite failed: " + path);
  }
  gzclose(f);
}

}  // namespace distrnn::testing
