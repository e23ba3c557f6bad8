// Rank-aware log lines: "[rank r/W] [tag] message" on stderr, and rank-0-only output.
// Not named LOG/CHECK: c10 and glog own those names.
#pragma once

#include "absl/strings/string_view.h"

namespace distrnn::common {

// Set once after the communicator is up; before that lines say [rank 0/1].
void SetLogRank(int rank, int world_size);
int LogRank();
int LogWorldSize();

// One line to stderr from this rank, prefixed with the rank and tag.
void LogLine(absl::string_view tag, absl::string_view message);
// The same, only on rank 0 (progress, tables, summaries) and to stdout.
void Log0(absl::string_view message);

}  // namespace distrnn::common
