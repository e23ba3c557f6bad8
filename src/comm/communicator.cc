#include "comm/communicator.h"

#include <ATen/ATen.h>

#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::comm {

absl::StatusOr<double> AllReduceScalar(Communicator& comm, double value, ReduceOp op) {
  if (comm.world_size() == 1) return value;
  at::Tensor t = at::full({1}, value, at::kDouble);
  RETURN_IF_ERROR(comm.AllReduce(t, op));
  return t.item<double>();
}

absl::Status BroadcastValues(Communicator& comm, std::vector<double>& values, int root) {
  if (comm.world_size() == 1) return absl::OkStatus();
  at::Tensor t = at::from_blob(values.data(), {static_cast<int64_t>(values.size())}, at::kDouble);
  return comm.Broadcast(t, root);  // from_blob aliases `values`, so it is filled in place
}

}  // namespace distrnn::comm
