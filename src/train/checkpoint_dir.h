// The checkpoints of a run directory:
//
//   <dir>/checkpoint-<global step, 9 digits>.pt   the `keep` newest step checkpoints
//   <dir>/latest                                  the file name of the newest complete one
//   <dir>/best.pt                                 the best so far (by the caller's measure)
//
// Every file is written atomically (train/checkpoint.h), and `latest` only after the
// checkpoint it names is durable, so after a crash `latest` names a complete checkpoint.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "train/checkpoint.h"

namespace distrnn::train {

class CheckpointDirectory {
 public:
  // `keep` >= 1 (a caller's config check; TORCH_CHECK here).
  CheckpointDirectory(std::string dir, int keep);

  const std::string& dir() const { return dir_; }
  int keep() const { return keep_; }
  std::string StepPath(int64_t global_step) const;
  std::string BestPath() const;
  std::string LatestPath() const;

  // Writes the checkpoint as StepPath(global_step), then `latest`, then removes step
  // checkpoints of smaller steps beyond the `keep` newest (counting the new one). Step
  // checkpoints of larger steps (left by an abandoned run that went further) and best.pt
  // are never removed. Creates the directory if needed.
  absl::Status SaveStep(int64_t global_step, const CheckpointContents& contents);
  // The same for bytes from SerializeCheckpoint, so a step checkpoint and best.pt of one
  // step are serialized once.
  absl::Status SaveStepBytes(int64_t global_step, const std::string& bytes);
  absl::Status SaveBest(const CheckpointContents& contents);
  absl::Status SaveBestBytes(const std::string& bytes);

  // The path of the checkpoint `latest` names; nullopt when there is no `latest` file.
  // InvalidArgument when `latest` is unreadable, empty, not a plain file name, or names a
  // file that does not exist.
  absl::StatusOr<std::optional<std::string>> Latest() const;

  // The step checkpoints present, as (global step, path), by increasing step.
  absl::StatusOr<std::vector<std::pair<int64_t, std::string>>> StepCheckpoints() const;

  // Creates `dir` if needed and writes and removes a probe file in it: run before training
  // starts, so a bad --run_dir fails at once rather than at the first checkpoint.
  static absl::Status CheckWritable(const std::string& dir);

 private:
  absl::Status RemoveOldSteps(int64_t global_step) const;

  std::string dir_;
  int keep_;
};

}  // namespace distrnn::train
