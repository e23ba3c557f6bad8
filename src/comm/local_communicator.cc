#include "comm/local_communicator.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"

namespace distrnn::comm {

// The same argument checks as the MPI backend, so code that is wrong under mpirun is
// already wrong in one process.
absl::Status LocalCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op) {
  return ValidateAllReduce(tensor, op);  // sum, average and max over one rank are the identity
}

absl::Status LocalCommunicator::Broadcast(at::Tensor& tensor, int root) {
  return ValidateBroadcast(tensor, root, 1);
}

void LocalCommunicator::Abort(int code) { std::exit(code); }

}  // namespace distrnn::comm
