#include "app/predict_command.h"

namespace distrnn::app {

absl::Status RunPredict() { return absl::UnimplementedError("predict is not built yet"); }

}  // namespace distrnn::app
