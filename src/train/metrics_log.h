// MetricsLog: one JSON object per line in <run_dir>/metrics.jsonl (rank 0 only), the
// machine-readable twin of the progress lines.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace distrnn::train {

class MetricsLog {
 public:
  // Opens (appends to) path; an empty path gives a log that writes nothing.
  static absl::StatusOr<MetricsLog> Open(const std::string& path);
  MetricsLog() = default;
  MetricsLog(MetricsLog&& other) noexcept
      : file_(other.file_), path_(std::move(other.path_)), write_failures_(other.write_failures_) {
    other.file_ = nullptr;
  }
  MetricsLog& operator=(MetricsLog&& other) noexcept;
  ~MetricsLog();

  // Appends `record` as one line and flushes, so a killed run keeps what it logged.
  // A failed write (a full disk) does not stop training: the first one logs a warning
  // naming the error, and write_failures() counts them.
  void Write(const nlohmann::json& record);
  int64_t write_failures() const { return write_failures_; }

 private:
  std::FILE* file_ = nullptr;
  std::string path_;
  int64_t write_failures_ = 0;
};

}  // namespace distrnn::train
