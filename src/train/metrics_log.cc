#include "train/metrics_log.h"

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/logging.h"

namespace distrnn::train {

absl::StatusOr<MetricsLog> MetricsLog::Open(const std::string& path) {
  MetricsLog log;
  if (path.empty()) return log;
  log.path_ = path;
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
    path_ = std::move(other.path_);
    write_failures_ = other.write_failures_;
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
  errno = 0;
  const bool written = std::fwrite(line.data(), 1, line.size(), file_) == line.size();
  if (std::fflush(file_) == 0 && written) return;
  if (write_failures_++ == 0) {
    common::LogLine("metrics", absl::StrCat("warning: cannot write to ", path_, ": ",
                                            errno != 0 ? std::strerror(errno) : "short write",
                                            "; training goes on, but records are being lost"));
  }
  std::clearerr(file_);
}

}  // namespace distrnn::train
