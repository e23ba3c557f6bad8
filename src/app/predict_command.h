// `distrnn predict --checkpoint=... [--text="..."]`: probability that a review is
// positive, for --text or for each line of stdin.
#pragma once

#include "absl/status/status.h"

namespace distrnn::app {

absl::Status RunPredict();

}  // namespace distrnn::app
