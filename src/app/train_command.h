// `distrnn train`: builds the communicator, data, model and trainer from TrainOptions.
#pragma once

#include "absl/status/status.h"
#include "app/train_flags.h"

namespace distrnn::app {

absl::Status RunTrain(const TrainOptions& options);

}  // namespace distrnn::app
