// Keeping replicas identical: rank 0's initial parameters to everyone (invariant 2
// starts here; equal seeds are not relied on), and a cheap exact check that they stayed
// identical (--check_replicas_every).
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "comm/communicator.h"

namespace distrnn::comm {

// Overwrites `tensors` (parameters, buffers) on every rank with root's values. Tensors
// are packed into one flat buffer per dtype, so a model costs one broadcast per dtype.
// Runs without autograd (parameters are leaves that require grad); the tensors keep
// their identity, so optimizers built on them stay valid. Every rank passes the same
// list (order, shapes, dtypes).
absl::Status BroadcastParameters(Communicator& comm, const std::vector<at::Tensor>& tensors, int root = 0);

// A 64-bit hash of the exact bytes of `tensors` (in order, with their shapes), the
// same for bitwise-identical tensors whatever the thread count. Device tensors are
// copied to the host first.
int64_t ParameterChecksum(const std::vector<at::Tensor>& tensors);

// Compares ParameterChecksum across ranks (one all-gather). true when every rank
// matches rank 0; false when some do not, and then *detail (if given) says which:
// "parameters differ from rank 0's on ranks 1, 3 of 4".
absl::StatusOr<bool> ReplicasAgree(Communicator& comm, const std::vector<at::Tensor>& tensors,
                                   std::string* detail = nullptr);
// The same as a status: OK when replicas agree, Internal naming the ranks otherwise.
absl::Status CheckReplicasAgree(Communicator& comm, const std::vector<at::Tensor>& tensors);

}  // namespace distrnn::comm
