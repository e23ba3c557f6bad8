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
  [[noreturn]] void Abort(int code) override;
};

}  // namespace distrnn::comm
