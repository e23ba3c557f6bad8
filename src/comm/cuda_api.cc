// The real CudaApi: the CUDA runtime and libtorch's c10::cuda streams and caching
// allocator. Built only when libtorch has CUDA (src/comm/CMakeLists.txt).
#include "comm/cuda_api.h"

#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>

#include <mutex>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/torch_status.h"

namespace distrnn::comm {
namespace {

absl::Status CudaError(const char* call, cudaError_t rc) {
  return absl::InternalError(absl::StrCat(call, " failed: ", cudaGetErrorString(rc), " (", cudaGetErrorName(rc), ")"));
}

class RealCudaApi final : public CudaApi {
 public:
  absl::Status SetDevice(int device) override {
    return common::GuardTorch("cannot select the CUDA device", [&] {
      c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
      return absl::OkStatus();
    });
  }

  CudaStream CurrentStream(int device) override {
    return c10::cuda::getCurrentCUDAStream(static_cast<c10::DeviceIndex>(device)).stream();
  }

  absl::StatusOr<CudaStream> CreateStream(int device) override {
    CudaStream stream = nullptr;
    absl::Status status = common::GuardTorch("cannot get a CUDA stream", [&] {
      // High priority: communication should not queue behind compute kernels.
      c10::cuda::CUDAStream s = c10::cuda::getStreamFromPool(/*isHighPriority=*/true,
                                                             static_cast<c10::DeviceIndex>(device));
      stream = s.stream();
      return absl::OkStatus();
    });
    if (!status.ok()) return status;
    return stream;
  }

  absl::StatusOr<CudaEvent> CreateEvent() override {
    cudaEvent_t event = nullptr;
    const cudaError_t rc = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
    if (rc != cudaSuccess) return CudaError("cudaEventCreateWithFlags", rc);
    return static_cast<CudaEvent>(event);
  }

  void DestroyEvent(CudaEvent event) override {
    if (event != nullptr) (void)cudaEventDestroy(static_cast<cudaEvent_t>(event));
  }

  absl::Status RecordEvent(CudaEvent event, CudaStream stream) override {
    const cudaError_t rc = cudaEventRecord(static_cast<cudaEvent_t>(event), static_cast<cudaStream_t>(stream));
    return rc == cudaSuccess ? absl::OkStatus() : CudaError("cudaEventRecord", rc);
  }

  absl::Status StreamWaitEvent(CudaStream stream, CudaEvent event) override {
    const cudaError_t rc =
        cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), static_cast<cudaEvent_t>(event), 0);
    return rc == cudaSuccess ? absl::OkStatus() : CudaError("cudaStreamWaitEvent", rc);
  }

  absl::StatusOr<bool> EventQuery(CudaEvent event) override {
    const cudaError_t rc = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (rc == cudaSuccess) return true;
    if (rc == cudaErrorNotReady) {
      (void)cudaGetLastError();  // not an error: clear it
      return false;
    }
    return CudaError("cudaEventQuery", rc);
  }

  absl::Status EventSynchronize(CudaEvent event) override {
    const cudaError_t rc = cudaEventSynchronize(static_cast<cudaEvent_t>(event));
    return rc == cudaSuccess ? absl::OkStatus() : CudaError("cudaEventSynchronize", rc);
  }

  void RecordStream(const at::Tensor& tensor, CudaStream stream, int device) override {
    if (!tensor.defined() || !tensor.is_cuda()) return;
    c10::cuda::CUDACachingAllocator::recordStream(
        tensor.storage().data_ptr(),
        c10::cuda::getStreamFromExternal(static_cast<cudaStream_t>(stream), static_cast<c10::DeviceIndex>(device)));
  }
};

}  // namespace

absl::StatusOr<std::shared_ptr<CudaApi>> MakeCudaApi() { return std::make_shared<RealCudaApi>(); }

}  // namespace distrnn::comm
