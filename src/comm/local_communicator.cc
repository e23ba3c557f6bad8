#include "comm/local_communicator.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace distrnn::comm {

absl::Status LocalCommunicator::AllReduce(at::Tensor& tensor, ReduceOp /*op*/) {
  if (tensor.defined() && !tensor.is_contiguous()) {
    return absl::InvalidArgumentError("all-reduce needs a contiguous tensor");
  }
  return absl::OkStatus();  // sum, average and max over one rank are the identity
}

absl::Status LocalCommunicator::Broadcast(at::Tensor& tensor, int root) {
  if (root != 0) return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " >= world size 1"));
  if (tensor.defined() && !tensor.is_contiguous()) {
    return absl::InvalidArgumentError("broadcast needs a contiguous tensor");
  }
  return absl::OkStatus();
}

void LocalCommunicator::Abort(int code) { std::exit(code); }

}  // namespace distrnn::comm
