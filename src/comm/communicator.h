// Communicator: the one interface through which ranks talk. Backends: LocalCommunicator
// (one process, no MPI), MpiCommunicator (host tensors), NcclCommunicator (CUDA tensors
// over NCCL, host tensors over the MPI communicator it owns). Training code sees only
// this header, never mpi.h or nccl.h.
//
// Contract: every collective is called by every rank in the same order with tensors of
// the same shape and dtype; tensors are contiguous and reduced in place.
//
// Asynchronous collectives (*Async) start the collective and return a Work handle:
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Work> work, comm.AllReduceAsync(bucket, ReduceOp::kSum));
//   ... other work (the next bucket's copy, backward) ...
//   RETURN_IF_ERROR(work->Wait());   // now `bucket` holds the sum
//
// The tensor must not be read or written between the call and Wait(). Collectives
// complete in the order they were started. Dropping a Work without Wait() is allowed;
// the backend keeps what it needs alive until the collective is done.
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

// A collective in flight.
class Work {
 public:
  virtual ~Work() = default;
  // Makes the result usable and returns the collective's error (the same on every
  // call). CPU backends block the calling thread until the collective is done. NCCL
  // makes the caller's current CUDA stream wait for it instead (the host does not
  // block): work queued on that stream afterwards sees the result.
  virtual absl::Status Wait() = 0;
  // Non-blocking: true once the collective has finished (successfully or not).
  virtual bool IsCompleted() = 0;
  // The error it finished with; OK while it runs and after success.
  virtual absl::Status error() const = 0;
};

// A Work that is already finished with `status` (world of one, argument errors).
std::unique_ptr<Work> MakeCompletedWork(absl::Status status = absl::OkStatus());

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

  // The asynchronous forms (see the top of this file). Argument errors come back as
  // the status, before anything is started, on every rank alike.
  virtual absl::StatusOr<std::unique_ptr<Work>> AllReduceAsync(at::Tensor& tensor, ReduceOp op) = 0;
  virtual absl::StatusOr<std::unique_ptr<Work>> BroadcastAsync(at::Tensor& tensor, int root) = 0;
  // `output` (contiguous, input's dtype and device, world_size() * input.numel()
  // elements) receives rank r's `input` at [r * n, (r + 1) * n). Any dtype.
  virtual absl::StatusOr<std::unique_ptr<Work>> AllGatherAsync(const at::Tensor& input, at::Tensor& output) = 0;
  // Blocking all-gather of tensors: AllGatherAsync, then Wait.
  absl::Status AllGatherTensor(const at::Tensor& input, at::Tensor& output);

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
// All-reduce supports float, double, int32 and int64, and with `half_precision`
// (NCCL on CUDA tensors) also float16 and bfloat16. kAverage of an integer tensor is
// refused (truncating would silently lose the remainder): all-reduce kSum and divide.
absl::Status ValidateAllReduce(const at::Tensor& tensor, ReduceOp op, bool half_precision = false);
absl::Status ValidateBroadcast(const at::Tensor& tensor, int root, int world_size);
absl::Status ValidateAllGather(const at::Tensor& input, const at::Tensor& output, int world_size);
const char* ReduceOpName(ReduceOp op);

}  // namespace distrnn::comm
