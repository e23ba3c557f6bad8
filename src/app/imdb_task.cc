#include "app/imdb_task.h"

namespace distrnn::app {

absl::Status RunImdbTask(comm::Communicator& /*comm*/, const RunOptions& /*run*/) {
  return absl::UnimplementedError("--task=imdb is not built yet");
}

}  // namespace distrnn::app
