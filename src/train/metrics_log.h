// MetricsLog: one JSON object per line in <run_dir>/metrics.jsonl (rank 0 only), the
// machine-readable twin of the progress lines.
#pragma once

#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace distrnn::train {

class MetricsLog {
 public:
  // Opens (appends to) path; an empty path gives a log that writes nothing.
  static absl::StatusOr<MetricsLog> Open(const std::string& path);
  MetricsLog() = default;
  MetricsLog(MetricsLog&& other) noexcept : file_(other.file_) { other.file_ = nullptr; }
  MetricsLog& operator=(MetricsLog&& other) noexcept;
  ~MetricsLog();

  // Appends `record` as one line and flushes, so a killed run keeps what it logged.
  void Write(const nlohmann::json& record);

 private:
  std::FILE* file_ = nullptr;
};

}  // namespace distrnn::train
