// MakeNcclApi() of a build without NCCL (DISTRNN_WITH_NCCL=OFF, no NCCL found, or a
// libtorch without CUDA).
#include "comm/nccl_api.h"

namespace distrnn::comm {

absl::StatusOr<std::shared_ptr<NcclApi>> MakeNcclApi() {
  return absl::UnimplementedError(
      "this build has no NCCL (DISTRNN_WITH_NCCL=OFF, or AUTO without a CUDA libtorch and its NCCL); "
      "rebuild on a GPU node with -DDISTRNN_WITH_NCCL=ON");
}

}  // namespace distrnn::comm
