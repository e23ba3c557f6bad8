#include "common/runtime.h"

#include <malloc.h>
#include <sched.h>

#include <cstdlib>
#include <fstream>
#include <string>

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"

namespace distrnn::common {

int AllowedCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

std::string KeepFreedMemory() {
  // No mmap for large blocks (they would be unmapped on free and faulted in again),
  // and no trimming of the heap top.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  return "malloc: mmap off, trim threshold 1 GiB (freed buffers are reused)";
}

int SetComputeThreads(int threads) {
  if (threads < 1) threads = 1;
  at::set_num_threads(threads);
  return at::get_num_threads();
}

namespace {
bool g_flush_denormals = false;
}  // namespace

bool FlushDenormals(bool on) {
  const bool ok = at::globalContext().setFlushDenormal(on);
  g_flush_denormals = ok && on;
  return ok;
}

std::string DescribeComputeSettings() {
  const char* wait = std::getenv("OMP_WAIT_POLICY");
  return absl::StrCat("intra-op threads=", at::get_num_threads(),
                      ", OMP_WAIT_POLICY=", wait ? wait : "(unset)",
                      ", denormals ", g_flush_denormals ? "flushed" : "kept");
}

double PeakRssMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
    }
  }
  return 0.0;
}

}  // namespace distrnn::common
