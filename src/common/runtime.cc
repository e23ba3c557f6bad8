#include "common/runtime.h"

#include <malloc.h>
#include <sched.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>

#include <ATen/Context.h>
#include <ATen/Parallel.h>

#include "absl/strings/str_cat.h"

namespace distrnn::common {

namespace {
size_t g_kept_bytes = 0;  // 0: not keeping, or never trimming
}  // namespace

int AllowedCores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return 1;
  int n = CPU_COUNT(&set);
  return n > 0 ? n : 1;
}

std::string KeepFreedMemory(size_t kept_bytes) {
  // A user's own malloc settings win (glibc reads them at start-up; mallopt would override).
  for (const char* name : {"MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_"}) {
    if (std::getenv(name) != nullptr) return absl::StrCat("malloc: as set by ", name, " (distrnn's settings skipped)");
  }
  const char* tunables = std::getenv("GLIBC_TUNABLES");
  if (tunables != nullptr && std::string(tunables).find("glibc.malloc.") != std::string::npos) {
    return "malloc: as set by GLIBC_TUNABLES (distrnn's settings skipped)";
  }
  // No mmap for large blocks (they would be unmapped on free and faulted in again),
  // and no trimming of the heap top. TrimFreedMemory bounds what this keeps.
  mallopt(M_MMAP_MAX, 0);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  mallopt(M_TOP_PAD, 64 << 20);
  g_kept_bytes = kept_bytes;
  if (kept_bytes == 0) return "malloc: mmap off, freed blocks reused, never returned (--free_heap_kept_mb=0)";
  return absl::StrCat("malloc: mmap off, freed blocks reused, returned to the kernel beyond ", kept_bytes >> 20,
                      " MiB and twice the live heap");
}

bool TrimFreedMemory() {
  if (g_kept_bytes == 0) return false;
  const struct mallinfo2 heap = mallinfo2();
  if (heap.fordblks <= std::max<size_t>(g_kept_bytes, 2 * heap.uordblks)) return false;
  malloc_trim(0);
  return true;
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
