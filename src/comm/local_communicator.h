// LocalCommunicator: world of one. Every collective is the identity, so the same
// training code runs without MPI (a laptop, one GPU, a process not under mpirun).
#pragma once

#include "comm/communicator.h"

namespace distrnn::comm {

class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int world_size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }
  const char* backend() const override { return "local"; }

  absl::Status AllReduce(at::Tensor& tensor, ReduceOp op) override;
  absl::Status Broadcast(at::Tensor& tensor, int root) override;
  absl::Status Barrier() override { return absl::OkStatus(); }
  absl::StatusOr<std::vector<double>> AllGather(double value) override {
    return std::vector<double>{value};
  }
  // Already complete when returned (argument errors as the status).
  absl::StatusOr<std::unique_ptr<Work>> AllReduceAsync(at::Tensor& tensor, ReduceOp op) override;
  absl::StatusOr<std::unique_ptr<Work>> BroadcastAsync(at::Tensor& tensor, int root) override;
  absl::StatusOr<std::unique_ptr<Work>> AllGatherAsync(const at::Tensor& input, at::Tensor& output) override;
  [[noreturn]] void Abort(int code) override;
};

}  // namespace distrnn::comm
