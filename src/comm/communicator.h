// Communicator: the one interface through which ranks talk. Backends: LocalCommunicator
// (one process, no MPI), MpiCommunicator (host tensors), NcclCommunicator (device
// tensors, later). Training code sees only this header, never mpi.h or nccl.h.
//
// Contract: every collective is called by every rank in the same order with tensors of
// the same shape and dtype; tensors are contiguous and reduced in place.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distrnn::comm {

enum class ReduceOp { kSum, kAverage, kMax };

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Rank and number of ranks on this node (MPI_COMM_TYPE_SHARED): picks the GPU and
  // the share of the node's cores.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  virtual const char* backend() const = 0;

  // In-place all-reduce of a contiguous tensor (float, double, int32, int64; see
  // ValidateAllReduce below). kAverage = sum, then divide by world_size().
  virtual absl::Status AllReduce(at::Tensor& tensor, ReduceOp op) = 0;
  // In-place broadcast of a contiguous tensor (any dtype) from `root`.
  virtual absl::Status Broadcast(at::Tensor& tensor, int root) = 0;
  virtual absl::Status Barrier() = 0;
  // Every rank's `value`, indexed by rank.
  virtual absl::StatusOr<std::vector<double>> AllGather(double value) = 0;

  // Ends the whole job (every rank) with `code`; used when one rank hits an error so
  // its peers do not wait forever in a collective.
  [[noreturn]] virtual void Abort(int code) = 0;

  bool is_root() const { return rank() == 0; }
};

// Convenience: all-reduce of host scalars (loss sums, token counts) through a tensor.
absl::StatusOr<double> AllReduceScalar(Communicator& comm, double value, ReduceOp op);
// Broadcast of a small vector of doubles from root (decisions: lr, stop, best).
// Every rank must pass a vector of the same size.
absl::Status BroadcastValues(Communicator& comm, std::vector<double>& values, int root);
// Every rank's `value`, indexed by rank; exact for all int64 values (counts, hashes).
absl::StatusOr<std::vector<int64_t>> AllGatherInt64(Communicator& comm, int64_t value);
// Broadcast of a small string (a path, a config summary) from root; other ranks' `value`
// is replaced. Sizes may differ between ranks: the length travels first.
absl::Status BroadcastString(Communicator& comm, std::string& value, int root);

// Shared argument checks, so every backend refuses the same inputs with the same words.
// All-reduce supports float, double, int32 and int64. kAverage of an integer tensor is
// refused (truncating would silently lose the remainder): all-reduce kSum and divide.
absl::Status ValidateAllReduce(const at::Tensor& tensor, ReduceOp op);
absl::Status ValidateBroadcast(const at::Tensor& tensor, int root, int world_size);
const char* ReduceOpName(ReduceOp op);

}  // namespace distrnn::comm
