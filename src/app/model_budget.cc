#include "app/model_budget.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"

namespace distrnn::app {
namespace {

std::string Bytes(double bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  int unit = 0;
  while (bytes >= 1024.0 && unit < 6) bytes /= 1024.0, ++unit;
  return bytes >= 1024.0 ? absl::StrFormat("%.3g EiB", bytes) : absl::StrFormat("%.1f %s", bytes, kUnits[unit]);
}

}  // namespace

uint64_t UsableMemoryBytes() {
  uint64_t usable = UINT64_MAX;
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) usable = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  for (int resource : {RLIMIT_AS, RLIMIT_DATA}) {
    struct rlimit limit;
    if (::getrlimit(resource, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) {
      usable = std::min<uint64_t>(usable, limit.rlim_cur);
    }
  }
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");  // cgroup v2; "max" when unlimited
  std::string text;
  uint64_t cgroup_max = 0;
  if (cgroup >> text && absl::SimpleAtoi(text, &cgroup_max) && cgroup_max > 0) usable = std::min(usable, cgroup_max);
  return usable;
}

absl::Status CheckModelFitsInMemory(const model::StackConfig& stack, int64_t vocab_size, int64_t embedding_size,
                                    int64_t output_size, int copies, absl::string_view what) {
  // In double: the product of hostile sizes overflows int64.
  const double hidden = static_cast<double>(stack.hidden_size);
  const double directions = static_cast<double>(stack.num_directions());
  double parameters = static_cast<double>(vocab_size) * static_cast<double>(embedding_size) +
                      hidden * directions * static_cast<double>(output_size);
  // Layer 0 reads the embedding, every later layer the previous one's output.
  parameters += directions * hidden * (static_cast<double>(embedding_size) + hidden);
  parameters += static_cast<double>(stack.num_layers - 1) * directions * hidden * (hidden * directions + hidden);
  const double needed = parameters * 4.0 * copies;
  const double usable = static_cast<double>(UsableMemoryBytes());
  if (needed <= usable) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrFormat(
      "%s is too large for this machine: at least %.3g parameters (%d layers of %d hidden units, embedding %d, "
      "vocabulary %d) need %s%s, and this process may use %s",
      what, parameters, stack.num_layers, stack.hidden_size, embedding_size, vocab_size, Bytes(needed),
      copies > 1 ? " with their gradients" : "", Bytes(usable)));
}

}  // namespace distrnn::app
