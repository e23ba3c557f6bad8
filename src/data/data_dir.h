// Where data sets are found: --data_dir, else $DISTRNN_DATA, else ../shared/data, else
// ./data (filled by launch/get_data.sh).
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace distrnn::data {

// The first existing directory of: `flag_value` (if non-empty, it must exist),
// $DISTRNN_DATA, ../shared/data, data.
absl::StatusOr<std::string> ResolveDataDir(const std::string& flag_value);

}  // namespace distrnn::data
