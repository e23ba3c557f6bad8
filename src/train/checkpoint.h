// Checkpoints: one file holding a JSON metadata record (format tag, task, model config,
// vocabulary, epoch, lr, ...), the model's parameters and buffers and, optionally, the
// optimizer state. Written atomically: temp file, fsync, rename, fsync of the directory,
// so a crash leaves the old file or the new one, never half of one.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distrnn::train {

inline constexpr char kCheckpointFormat[] = "distrnn-checkpoint-v1";

// `meta` gets "format" added. `optimizer` may be null.
absl::Status SaveCheckpoint(const std::string& path, const nlohmann::json& meta, torch::nn::Module& model,
                            torch::optim::Optimizer* optimizer);

// The metadata of a checkpoint; a missing, truncated or foreign file is a clear error.
absl::StatusOr<nlohmann::json> ReadCheckpointMeta(const std::string& path);

// Loads parameters (and optimizer state when `optimizer` is non-null) into a model of
// the same architecture.
absl::Status LoadCheckpoint(const std::string& path, torch::nn::Module& model, torch::optim::Optimizer* optimizer);

// Writes `contents` to `path` atomically (temp file, fsync, rename).
absl::Status WriteFileAtomically(const std::string& path, const std::string& contents);

}  // namespace distrnn::train
