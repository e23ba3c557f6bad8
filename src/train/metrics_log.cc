#include "train/metrics_log.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"

namespace distrnn::train {

absl::StatusOr<MetricsLog> MetricsLog::Open(const std::string& path) {
  MetricsLog log;
  if (path.empty()) return log;
  log.file_ = std::fopen(path.c_str(), "a");
  if (log.file_ == nullptr) {
    return absl::PermissionDeniedError(absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  return log;
}

MetricsLog& MetricsLog::operator=(MetricsLog&& other) noexcept {
  if (this != &other) {
    if (file_ != nullptr) std::fclose(file_);
    file_ = other.file_;
    other.file_ = nullptr;
  }
  return *this;
}

MetricsLog::~MetricsLog() {
  if (file_ != nullptr) std::fclose(file_);
}

void MetricsLog::Write(const nlohmann::json& record) {
  if (file_ == nullptr) return;
  // Paths and messages in a record may hold bytes that are not UTF-8 (a Linux file name
  // may): replaced by U+FFFD instead of an exception.
  const std::string line = record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
  std::fwrite(line.data(), 1, line.size(), file_);
  std::fflush(file_);
}

}  // namespace distrnn::train
