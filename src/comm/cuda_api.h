// CudaApi: the CUDA runtime calls the NCCL communicator makes (streams, events, the
// caching allocator's recordStream), behind an interface so its logic is unit-tested
// against a gmock fake on machines without a GPU (tests/comm/nccl_fakes.h), as
// torchcomms does. Handles are opaque here (no CUDA header): CudaStream is a
// cudaStream_t, CudaEvent a cudaEvent_t.
//
// MakeCudaApi() returns the real implementation (cuda_api.cc, built when libtorch has
// CUDA) or Unimplemented in a CPU-only build.
#pragma once

#include <memory>
#include <string>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distrnn::comm {

using CudaStream = void*;  // cudaStream_t
using CudaEvent = void*;   // cudaEvent_t

class CudaApi {
 public:
  virtual ~CudaApi() = default;

  virtual absl::Status SetDevice(int device) = 0;
  // libtorch's current stream on `device`: where the compute kernels run.
  virtual CudaStream CurrentStream(int device) = 0;
  // A stream for communication, from libtorch's pool (alive for the process).
  virtual absl::StatusOr<CudaStream> CreateStream(int device) = 0;
  // Events without timing (cheapest to record and query).
  virtual absl::StatusOr<CudaEvent> CreateEvent() = 0;
  virtual void DestroyEvent(CudaEvent event) = 0;
  virtual absl::Status RecordEvent(CudaEvent event, CudaStream stream) = 0;
  // Work queued on `stream` after this waits for `event` (the host does not block).
  virtual absl::Status StreamWaitEvent(CudaStream stream, CudaEvent event) = 0;
  // true once the work before the event's record has finished.
  virtual absl::StatusOr<bool> EventQuery(CudaEvent event) = 0;
  // Blocks the host until the event has completed.
  virtual absl::Status EventSynchronize(CudaEvent event) = 0;
  // Tells libtorch's caching allocator that `stream` uses `tensor`'s memory, so it is
  // not handed out again before the work queued on `stream` so far has finished.
  virtual void RecordStream(const at::Tensor& tensor, CudaStream stream, int device) = 0;
};

absl::StatusOr<std::shared_ptr<CudaApi>> MakeCudaApi();

}  // namespace distrnn::comm
