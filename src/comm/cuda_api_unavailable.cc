// MakeCudaApi() of a build whose libtorch has no CUDA.
#include "comm/cuda_api.h"

namespace distrnn::comm {

absl::StatusOr<std::shared_ptr<CudaApi>> MakeCudaApi() {
  return absl::UnimplementedError("this build's libtorch has no CUDA support");
}

}  // namespace distrnn::comm
