// `distrnn train --task=imdb`.
#pragma once

#include "absl/status/status.h"
#include "app/common_flags.h"
#include "comm/communicator.h"

namespace distrnn::app {

// Reads the imdb flags, trains, evaluates; rank 0 writes metrics and checkpoints.
absl::Status RunImdbTask(comm::Communicator& comm, const RunOptions& run);

}  // namespace distrnn::app
