#include "train/checkpoint_dir.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <c10/util/Exception.h>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/status_macros.h"

namespace distrnn::train {
namespace {

namespace fs = std::filesystem;

constexpr char kStepPrefix[] = "checkpoint-";
constexpr char kStepSuffix[] = ".pt";

// The step of a file named checkpoint-<9 or more digits>.pt, or -1.
int64_t StepOfFileName(const std::string& name) {
  const size_t prefix = std::strlen(kStepPrefix), suffix = std::strlen(kStepSuffix);
  if (name.size() < prefix + 9 + suffix || name.compare(0, prefix, kStepPrefix) != 0 ||
      name.compare(name.size() - suffix, suffix, kStepSuffix) != 0) {
    return -1;
  }
  const std::string digits = name.substr(prefix, name.size() - prefix - suffix);
  int64_t step = 0;
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
      !absl::SimpleAtoi(digits, &step)) {
    return -1;
  }
  return step;
}

absl::Status CreateDirectory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) return absl::InvalidArgumentError(absl::StrCat("cannot create directory ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

}  // namespace

CheckpointDirectory::CheckpointDirectory(std::string dir, int keep) : dir_(std::move(dir)), keep_(keep) {
  TORCH_CHECK(keep_ >= 1, "CheckpointDirectory keeps at least one step checkpoint, got keep=", keep_);
}

std::string CheckpointDirectory::StepPath(int64_t global_step) const {
  return absl::StrFormat("%s/%s%09d%s", dir_, kStepPrefix, global_step, kStepSuffix);
}

std::string CheckpointDirectory::BestPath() const { return absl::StrCat(dir_, "/best.pt"); }

std::string CheckpointDirectory::LatestPath() const { return absl::StrCat(dir_, "/latest"); }

absl::Status CheckpointDirectory::SaveStep(int64_t global_step, const CheckpointContents& contents) {
  ASSIGN_OR_RETURN(const std::string bytes, SerializeCheckpoint(contents));
  return SaveStepBytes(global_step, bytes);
}

absl::Status CheckpointDirectory::SaveStepBytes(int64_t global_step, const std::string& bytes) {
  if (global_step < 0) return absl::InvalidArgumentError(absl::StrCat("negative global step ", global_step));
  RETURN_IF_ERROR(CreateDirectory(dir_));
  const std::string path = StepPath(global_step);
  RETURN_IF_ERROR(WriteFileAtomically(path, bytes));
  RETURN_IF_ERROR(WriteFileAtomically(LatestPath(), absl::StrCat(fs::path(path).filename().string(), "\n")));
  return RemoveOldSteps(global_step);
}

absl::Status CheckpointDirectory::RemoveOldSteps(int64_t global_step) const {
  ASSIGN_OR_RETURN(auto steps, StepCheckpoints());
  std::vector<std::string> older;  // by increasing step
  for (const auto& [step, path] : steps) {
    if (step < global_step) older.push_back(path);
  }
  const size_t keep_older = static_cast<size_t>(keep_ - 1);
  for (size_t i = 0; i + keep_older < older.size(); ++i) {
    std::error_code ec;
    fs::remove(older[i], ec);
    if (ec) {
      return absl::InternalError(absl::StrCat("saved ", StepPath(global_step), " but cannot remove the old checkpoint ",
                                              older[i], ": ", ec.message()));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckpointDirectory::SaveBest(const CheckpointContents& contents) {
  ASSIGN_OR_RETURN(const std::string bytes, SerializeCheckpoint(contents));
  return SaveBestBytes(bytes);
}

absl::Status CheckpointDirectory::SaveBestBytes(const std::string& bytes) {
  RETURN_IF_ERROR(CreateDirectory(dir_));
  return WriteFileAtomically(BestPath(), bytes);
}

absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> CheckpointDirectory::StepCheckpoints() const {
  std::vector<std::pair<int64_t, std::string>> steps;
  std::error_code ec;
  fs::directory_iterator it(dir_, ec);
  if (ec == std::errc::no_such_file_or_directory) return steps;
  for (; !ec && it != fs::directory_iterator(); it.increment(ec)) {
    const int64_t step = StepOfFileName(it->path().filename().string());
    if (step >= 0) steps.emplace_back(step, it->path().string());
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir_, ": ", ec.message()));
  std::sort(steps.begin(), steps.end());
  return steps;
}

absl::StatusOr<std::optional<std::string>> CheckpointDirectory::Latest() const {
  const std::string latest = LatestPath();
  std::error_code ec;
  if (!fs::exists(latest, ec) && !ec) return std::optional<std::string>();
  std::ifstream in(latest, std::ios::binary);
  std::stringstream text;
  if (fs::is_directory(latest, ec) || !in || !(text << in.rdbuf())) {
    return absl::InvalidArgumentError(absl::StrCat("cannot read ", latest));
  }
  const std::string name(absl::StripAsciiWhitespace(text.str()));
  if (name.empty()) return absl::InvalidArgumentError(absl::StrCat(latest, " is empty"));
  if (name.find('/') != std::string::npos || name == "." || name == ".." ||
      name.find('\0') != std::string::npos || name.find('\n') != std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(latest, " names '", absl::CEscape(name),
                                                   "', which is not a file name in ", dir_));
  }
  const std::string path = absl::StrCat(dir_, "/", name);
  if (!fs::is_regular_file(path, ec)) {
    return absl::InvalidArgumentError(absl::StrCat(latest, " names ", name, ", which does not exist"));
  }
  return std::optional<std::string>(path);
}

absl::Status CheckpointDirectory::CheckWritable(const std::string& dir) {
  RETURN_IF_ERROR(CreateDirectory(dir));
  const std::string probe = absl::StrCat(dir, "/.distrnn_write_probe.", ::getpid());
  int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (fd < 0) {
    return absl::InvalidArgumentError(absl::StrCat("directory ", dir, " is not writable: ", std::strerror(errno)));
  }
  const bool written = ::write(fd, "x", 1) == 1;
  const int write_errno = errno;
  ::close(fd);
  ::unlink(probe.c_str());
  if (!written) {
    return absl::InvalidArgumentError(absl::StrCat("directory ", dir, " is not writable: ", std::strerror(write_errno)));
  }
  return absl::OkStatus();
}

}  // namespace distrnn::train
