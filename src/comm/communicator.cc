#include "comm/communicator.h"

#include <ATen/ATen.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::comm {

const char* ReduceOpName(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return "sum";
    case ReduceOp::kAverage: return "average";
    case ReduceOp::kMax: return "max";
  }
  return "?";
}

namespace {

class CompletedWork final : public Work {
 public:
  explicit CompletedWork(absl::Status status) : status_(std::move(status)) {}
  absl::Status Wait() override { return status_; }
  bool IsCompleted() override { return true; }
  absl::Status error() const override { return status_; }

 private:
  absl::Status status_;
};

}  // namespace

std::unique_ptr<Work> MakeCompletedWork(absl::Status status) {
  return std::make_unique<CompletedWork>(std::move(status));
}

absl::Status Communicator::AllGatherTensor(const at::Tensor& input, at::Tensor& output) {
  ASSIGN_OR_RETURN(std::unique_ptr<Work> work, AllGatherAsync(input, output));
  return work->Wait();
}

absl::Status ValidateAllReduce(const at::Tensor& tensor, ReduceOp op, bool half_precision) {
  if (!tensor.defined()) return absl::InvalidArgumentError("all-reduce of an undefined tensor");
  if (!tensor.is_contiguous()) return absl::InvalidArgumentError("all-reduce needs a contiguous tensor");
  const at::ScalarType t = tensor.scalar_type();
  const bool half = t == at::kHalf || t == at::kBFloat16;
  const bool floating = t == at::kFloat || t == at::kDouble || (half_precision && half);
  const bool integral = t == at::kInt || t == at::kLong;
  if (!floating && !integral) {
    return absl::InvalidArgumentError(absl::StrCat(
        "all-reduce supports float, double, int32, int64", half_precision ? ", float16, bfloat16" : "", "; got ",
        c10::toString(t), half && !half_precision ? " (16-bit floats need --comm=nccl and CUDA tensors)" : ""));
  }
  if (integral && op == ReduceOp::kAverage) {
    return absl::InvalidArgumentError(absl::StrCat(
        "all-reduce average of an integer tensor (", c10::toString(t),
        ") is refused: it would truncate; reduce with sum and divide"));
  }
  return absl::OkStatus();
}

absl::Status ValidateBroadcast(const at::Tensor& tensor, int root, int world_size) {
  if (root < 0 || root >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " outside world of size ", world_size));
  }
  if (!tensor.defined()) return absl::InvalidArgumentError("broadcast of an undefined tensor");
  if (!tensor.is_contiguous()) return absl::InvalidArgumentError("broadcast needs a contiguous tensor");
  return absl::OkStatus();
}

absl::Status ValidateAllGather(const at::Tensor& input, const at::Tensor& output, int world_size) {
  if (!input.defined() || !output.defined()) return absl::InvalidArgumentError("all-gather of an undefined tensor");
  if (!input.is_contiguous() || !output.is_contiguous()) {
    return absl::InvalidArgumentError("all-gather needs contiguous tensors");
  }
  if (input.scalar_type() != output.scalar_type() || input.device() != output.device()) {
    return absl::InvalidArgumentError(absl::StrCat("all-gather output (", c10::toString(output.scalar_type()), " on ",
                                                   output.device().str(), ") differs from the input (",
                                                   c10::toString(input.scalar_type()), " on ", input.device().str(),
                                                   ")"));
  }
  if (output.numel() != input.numel() * world_size) {
    return absl::InvalidArgumentError(absl::StrCat("all-gather output has ", output.numel(), " elements; ",
                                                   world_size, " ranks x ", input.numel(), " needs ",
                                                   input.numel() * world_size));
  }
  return absl::OkStatus();
}

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

absl::StatusOr<std::vector<int64_t>> AllGatherInt64(Communicator& comm, int64_t value) {
  if (comm.world_size() == 1) return std::vector<int64_t>{value};
  // One slot per rank, zeros elsewhere: the sum is exact in int64.
  std::vector<int64_t> slots(comm.world_size(), 0);
  slots[comm.rank()] = value;
  at::Tensor t = at::from_blob(slots.data(), {static_cast<int64_t>(slots.size())}, at::kLong);
  RETURN_IF_ERROR(comm.AllReduce(t, ReduceOp::kSum));
  return slots;
}

absl::Status BroadcastString(Communicator& comm, std::string& value, int root) {
  if (comm.world_size() == 1) return absl::OkStatus();
  int64_t size = static_cast<int64_t>(value.size());
  at::Tensor size_tensor = at::from_blob(&size, {1}, at::kLong);
  RETURN_IF_ERROR(comm.Broadcast(size_tensor, root));
  if (comm.rank() != root) value.assign(static_cast<size_t>(size), '\0');
  if (size == 0) return absl::OkStatus();
  at::Tensor bytes = at::from_blob(value.data(), {size}, at::kByte);
  return comm.Broadcast(bytes, root);
}

}  // namespace distrnn::comm
