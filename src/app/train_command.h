// `distrnn train`: flags -> the task's options and the TrainerConfig (checked before any
// communicator starts) -> communicator -> task -> Trainer -> closing line.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "app/common_flags.h"
#include "app/task_registry.h"
#include "train/trainer.h"

namespace distrnn::app {

// The shared training flags, with the task's default optimizer and lr schedule where
// --optimizer / --lr_schedule are not given.
absl::StatusOr<train::TrainerConfig> TrainerConfigFromFlags(const RunOptions& run, const TaskEntry& task);

absl::Status RunTrain();

}  // namespace distrnn::app
