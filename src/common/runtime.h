// Process-wide runtime settings chosen deliberately per rank: CPU threads, allocator
// behaviour. Logged at start so a run's speed can be explained.
#pragma once

#include <cstddef>
#include <string>

namespace distrnn::common {

// Cores this process may run on (its affinity mask), at least 1.
int AllowedCores();

// Keeps freed heap memory for reuse instead of returning it to the kernel: in these VMs
// a freshly touched page costs ~11 us, and a training step frees and reallocates the
// same activation buffers every step. TrimFreedMemory returns what exceeds `kept_bytes`
// (0: never). Skipped when the user set MALLOC_* or GLIBC_TUNABLES' glibc.malloc.
// Returns a short description for the log.
std::string KeepFreedMemory(size_t kept_bytes);

// Returns the heap's free blocks to the kernel (malloc_trim) once they exceed both
// KeepFreedMemory's `kept_bytes` and twice the memory in use. Why: when tensor sizes change every
// step (IMDB's length buckets), a freed buffer is a hole the next, larger one does not fit,
// and the kept holes grew a BiLSTM's RSS to 20 GiB (README "IMDB memory"). With fixed
// shapes (the LM tasks) the free part stays level and this never trims. Called after
// every training step and evaluation; one mallinfo2 when nothing is trimmed. True if it
// trimmed; false without KeepFreedMemory.
bool TrimFreedMemory();

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
