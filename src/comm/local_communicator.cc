#include "comm/local_communicator.h"

#include <ATen/ATen.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/torch_status.h"

namespace distrnn::comm {

// The same argument checks as the MPI backend, so code that is wrong under mpirun is
// already wrong in one process.
absl::Status LocalCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op) {
  return ValidateAllReduce(tensor, op);  // sum, average and max over one rank are the identity
}

absl::Status LocalCommunicator::Broadcast(at::Tensor& tensor, int root) {
  return ValidateBroadcast(tensor, root, 1);
}

absl::StatusOr<std::unique_ptr<Work>> LocalCommunicator::AllReduceAsync(at::Tensor& tensor, ReduceOp op) {
  if (absl::Status s = AllReduce(tensor, op); !s.ok()) return s;
  return MakeCompletedWork();
}

absl::StatusOr<std::unique_ptr<Work>> LocalCommunicator::BroadcastAsync(at::Tensor& tensor, int root) {
  if (absl::Status s = Broadcast(tensor, root); !s.ok()) return s;
  return MakeCompletedWork();
}

absl::StatusOr<std::unique_ptr<Work>> LocalCommunicator::AllGatherAsync(const at::Tensor& input, at::Tensor& output) {
  if (absl::Status s = ValidateAllGather(input, output, 1); !s.ok()) return s;
  absl::Status copied = common::GuardTorch("all-gather", [&] {
    output.view({-1}).copy_(input.reshape({-1}));
    return absl::OkStatus();
  });
  if (!copied.ok()) return copied;
  return MakeCompletedWork();
}

void LocalCommunicator::Abort(int code) { std::exit(code); }

}  // namespace distrnn::comm
