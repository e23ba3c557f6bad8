// Process-wide runtime settings chosen deliberately per rank: CPU threads, allocator
// behaviour. Logged at start so a run's speed can be explained.
#pragma once

#include <string>

namespace distrnn::common {

// Cores this process may run on (its affinity mask), at least 1.
int AllowedCores();

// Keeps freed heap memory for reuse instead of returning it to the kernel: in these VMs
// a freshly touched page costs ~11 us, and a training step frees and reallocates the
// same large activation buffers every step. Returns a short description for the log.
std::string KeepFreedMemory();

// Sets libtorch intra-op threads (inter-op to 1: we run no parallel graph). Returns
// the number set.
int SetComputeThreads(int threads);

// "threads=2 omp_wait_policy=passive mkl|openblas..." for the start-up table.
std::string DescribeComputeSettings();

// Peak resident memory of this process in MiB (VmHWM).
double PeakRssMiB();

}  // namespace distrnn::common
