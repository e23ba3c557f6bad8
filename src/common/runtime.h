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

// Flushes denormal floats to zero (FTZ/DAZ). Why: a gradient that travels back through
// hundreds of time steps (IMDB: the loss sits on the last state only) decays into the
// denormal range, where the vector units run ~10x slower (an LSTM 256 over 300 steps: 2.6 s
// per step with them, 0.21 s flushed; README). Values below 1.2e-38 become 0. The setting
// lives in each thread's MXCSR and threads start with their creator's, so call it on the main
// thread before the first parallel op: OpenMP's pool (MKL and oneDNN use it too) then
// inherits it. False if the CPU cannot flush.
bool FlushDenormals(bool on);

// "threads=2 omp_wait_policy=passive mkl|openblas..." for the start-up table.
std::string DescribeComputeSettings();

// Peak resident memory of this process in MiB (VmHWM).
double PeakRssMiB();

}  // namespace distrnn::common
