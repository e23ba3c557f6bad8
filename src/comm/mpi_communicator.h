// MpiCommunicator: the Communicator over MPI for host (CPU) tensors.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<MpiCommunicator> comm, MpiCommunicator::Create({}));
//
// - Owns MPI's lifetime (RAII): MPI_Init_thread(FUNNELED) in Create unless MPI is
//   already up, MPI_Finalize in the destructor only if Create initialized it. Several
//   instances may coexist (tests make extra ones with tiny chunks); each works on its
//   own MPI_Comm_dup of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so an MPI failure comes
//   back as a status naming the call, the MPI error string, the rank and the host.
// - Node-local rank/size from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED).
// - All-reduce in place (MPI_IN_PLACE) for float, double, int32, int64; average = sum,
//   then divide by the world size (integer average is refused, see communicator.h).
//   Broadcast moves bytes, so any dtype works.
// - Element counts above `chunk_elements` (default INT_MAX, MPI's count type is int)
//   travel in several calls; tests force this path with a small chunk.
// - Asynchronous forms use MPI_Iallreduce / MPI_Ibcast / MPI_Iallgather (one request
//   per chunk); Wait() is MPI_Waitall (and the division of an average), IsCompleted()
//   MPI_Testall. A Work must not outlive its communicator; one dropped unwaited is
//   waited for in its destructor. The watchdog times the blocking part (Wait).
// - Optional watchdog (invariant 5, "no hangs"): with collective_timeout_s > 0 a
//   background thread ends the whole job with MPI_Abort (exit 75) when one collective
//   runs longer than that: it logs a line naming the collective, the rank and the host,
//   then waits a grace period (max(1 s, 2 polls)) so every other waiting rank logs its
//   own, and the ranks without a line are the stalled ones. A peer
//   that died is normally handled by mpirun (it kills the job when a rank exits non-zero
//   or on a signal); the watchdog covers a peer that is alive but stuck.
// - MPI_Abort (Abort() and the watchdog) has a backstop: if it has not ended the process
//   within abort_backstop_s (Open MPI's abort can deadlock, notably when several ranks
//   abort at once), the process _Exits with the same code and mpirun ends the rest.
//
// mpi.h is included only by mpi_communicator.cc: MPI handles are kept behind an opaque
// struct so users of this header need no MPI include path.
#pragma once

#include <climits>
#include <cstdint>
#include <memory>
#include <string>

#include "comm/communicator.h"

namespace distrnn::comm {

struct MpiOptions {
  // Largest element count passed to one MPI call.
  int64_t chunk_elements = INT_MAX;
  // > 0: abort the job when one collective takes longer than this many seconds.
  double collective_timeout_s = 0.0;
  // Seconds MPI_Abort gets to end this process before it _Exits by itself.
  double abort_backstop_s = 10.0;
};

class MpiCommunicator final : public Communicator {
 public:
  static absl::StatusOr<std::unique_ptr<MpiCommunicator>> Create(const MpiOptions& options);
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int world_size() const override { return world_size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }
  const char* backend() const override { return "mpi"; }
  const std::string& host() const { return host_; }
  const MpiOptions& options() const { return options_; }

  absl::Status AllReduce(at::Tensor& tensor, ReduceOp op) override;
  absl::Status Broadcast(at::Tensor& tensor, int root) override;
  absl::Status Barrier() override;
  absl::StatusOr<std::vector<double>> AllGather(double value) override;
  absl::StatusOr<std::unique_ptr<Work>> AllReduceAsync(at::Tensor& tensor, ReduceOp op) override;
  absl::StatusOr<std::unique_ptr<Work>> BroadcastAsync(at::Tensor& tensor, int root) override;
  // At most INT_MAX bytes per rank.
  absl::StatusOr<std::unique_ptr<Work>> AllGatherAsync(const at::Tensor& input, at::Tensor& output) override;
  // MPI_Abort on this communicator: every rank of the job ends.
  [[noreturn]] void Abort(int code) override;

 private:
  struct Impl;  // MPI handles and the watchdog thread
  friend class MpiWork;
  explicit MpiCommunicator(const MpiOptions& options);
  absl::Status Init();
  void WatchdogLoop();

  MpiOptions options_;
  std::unique_ptr<Impl> impl_;
  int rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  std::string host_;
};

}  // namespace distrnn::comm
