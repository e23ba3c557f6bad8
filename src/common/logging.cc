#include "common/logging.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"

namespace distrnn::common {
namespace {
int g_rank = 0;
int g_world_size = 1;
}  // namespace

void SetLogRank(int rank, int world_size) {
  g_rank = rank;
  g_world_size = world_size;
}
int LogRank() { return g_rank; }
int LogWorldSize() { return g_world_size; }

void LogLine(absl::string_view tag, absl::string_view message) {
  std::string line = absl::StrCat("[rank ", g_rank, "/", g_world_size, "] [", tag, "] ", message, "\n");
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

void Log0(absl::string_view message) {
  if (g_rank != 0) return;
  std::fwrite(message.data(), 1, message.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace distrnn::common
