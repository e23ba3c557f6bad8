// NcclCommunicator: the Communicator for CUDA tensors over NCCL; host tensors (loss
// sums, decisions, strings, checkpoints) travel on the MPI communicator it owns (the
// Horovod pattern: NCCL for the big device buffers, MPI for small host metadata).
//
//   ASSIGN_OR_RETURN(auto mpi, MpiCommunicator::Create(options));
//   ... pick this rank's GPU from mpi->local_rank() and make it current ...
//   ASSIGN_OR_RETURN(auto nccl, CreateNcclCommunicator(std::move(mpi), device, nccl_options));
//
// Note [NCCL bootstrap]: rank 0 makes the ncclUniqueId and broadcasts it over the host
// communicator, together with whether it succeeded (so a failure on rank 0 ends every
// rank instead of leaving them waiting). Every rank then calls ncclCommInitRankConfig
// with a non-blocking config and polls ncclCommGetAsyncError until it leaves
// ncclInProgress (bounded by the collective timeout; ncclCommAbort on expiry), and the
// ranks agree over the host communicator that all of them succeeded; a rank whose
// init failed, or whose peer's did, aborts its communicator and every rank returns an
// error.
//
// Note [NCCL streams]: collectives run on a dedicated high-priority stream. Each one
// records an event on the caller's current (compute) stream and makes the NCCL stream
// wait for it, so NCCL reads the tensor only after the kernels that produced it;
// launches the NCCL call; tells the caching allocator that the NCCL stream uses the
// tensor (recordStream, so its memory is not reused while NCCL still reads or writes
// it); and records an end event on the NCCL stream. Work::Wait() makes the caller's
// current stream wait for that end event: the host does not block, and the kernels
// queued after it (copying a bucket back, the optimizer) see the result. (PyTorch's
// ProcessGroupNCCL does the same: syncStream, recordStream, WorkNCCL::synchronize.)
//
// Note [NCCL watchdog]: a thread polls the end events of the collectives in flight and
// ncclCommGetAsyncError. When a collective has not finished within
// collective_timeout_s, or NCCL reports an asynchronous error (a peer died, a network
// failure), it logs one line naming the collective, rank, host and device, calls
// ncclCommAbort (which unblocks any NCCL call in progress) and calls on_fatal, which
// by default ends the whole job through the host communicator's Abort (MPI_Abort)
// with exit code 75.
//
// Errors name the NCCL call, ncclGetErrorString, NCCL's last error text, the rank,
// host and device. Teardown: ncclCommFinalize (polled until done), then
// ncclCommDestroy; after an error ncclCommAbort instead.
//
// The NCCL and CUDA runtime calls go through NcclApi and CudaApi (nccl_api.h,
// cuda_api.h), so this logic is unit-tested against fakes without a GPU. Tensors on
// `device`'s type go to NCCL, others to the host communicator; tests pass a CPU
// "device" so CPU tensors exercise the NCCL path against the fakes.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <c10/core/Device.h>

#include "comm/communicator.h"
#include "comm/cuda_api.h"
#include "comm/nccl_api.h"

namespace distrnn::comm {

// Exit code of a job ended by a collective timeout or an asynchronous NCCL error.
inline constexpr int kNcclFatalExitCode = 75;

struct NcclOptions {
  // > 0: a collective (and the non-blocking init) unfinished after this long aborts
  // the job. 0: never (asynchronous NCCL errors still do).
  double collective_timeout_s = 600.0;  // as --collective_timeout_s
  // How often the watchdog looks (0: from the timeout, between 10 ms and 1 s).
  double poll_interval_s = 0.0;
  // Called from the watchdog after ncclCommAbort with the reason; must end the
  // process. Tests replace it. Default: log and host communicator's Abort(75).
  std::function<void(const absl::Status&)> on_fatal;
  std::string comm_name = "distrnn";
};

class NcclWork;

class NcclCommunicator final : public Communicator {
 public:
  // `host` carries host tensors and the bootstrap; `device` is this rank's GPU,
  // already chosen and made current by the caller. Checks the NCCL version
  // (CheckNcclVersion) and agrees with the other ranks before any NCCL call.
  static absl::StatusOr<std::unique_ptr<NcclCommunicator>> Create(std::unique_ptr<Communicator> host,
                                                                   c10::Device device, NcclOptions options,
                                                                   std::shared_ptr<NcclApi> nccl,
                                                                   std::shared_ptr<CudaApi> cuda);
  ~NcclCommunicator() override;
  NcclCommunicator(const NcclCommunicator&) = delete;
  NcclCommunicator& operator=(const NcclCommunicator&) = delete;

  int rank() const override { return host_->rank(); }
  int world_size() const override { return host_->world_size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  const char* backend() const override { return "nccl"; }
  c10::Device device() const { return device_; }
  Communicator& host() { return *host_; }

  // Device tensors: NCCL (float16/bfloat16 too), then the caller's stream waits.
  // Host tensors: the host communicator.
  absl::Status AllReduce(at::Tensor& tensor, ReduceOp op) override;
  absl::Status Broadcast(at::Tensor& tensor, int root) override;
  // Waits on the host for every collective in flight, then a host barrier.
  absl::Status Barrier() override;
  absl::StatusOr<std::vector<double>> AllGather(double value) override { return host_->AllGather(value); }
  absl::StatusOr<std::unique_ptr<Work>> AllReduceAsync(at::Tensor& tensor, ReduceOp op) override;
  absl::StatusOr<std::unique_ptr<Work>> BroadcastAsync(at::Tensor& tensor, int root) override;
  absl::StatusOr<std::unique_ptr<Work>> AllGatherAsync(const at::Tensor& input, at::Tensor& output) override;
  // ncclCommAbort, then the host communicator's Abort.
  [[noreturn]] void Abort(int code) override;

  // The first fatal error (timeout, asynchronous NCCL error), OK if none.
  absl::Status fatal_status() const;
  // Collectives started and not yet seen finished by the watchdog.
  size_t in_flight() const;

 private:
  friend class NcclWork;
  struct Pending;  // one collective in flight: its end event and start time

  NcclCommunicator(std::unique_ptr<Communicator> host, c10::Device device, NcclOptions options,
                   std::shared_ptr<NcclApi> nccl, std::shared_ptr<CudaApi> cuda);
  absl::Status Init();
  absl::Status Bootstrap(NcclUniqueId& id);
  absl::Status WaitWhileInProgress(const char* call);
  bool OnDevice(const at::Tensor& tensor) const { return tensor.defined() && tensor.device().type() == device_.type(); }
  absl::Status CheckDevice(const at::Tensor& tensor) const;
  // Orders the NCCL stream after the compute stream, runs `call`, records the end event.
  absl::StatusOr<std::unique_ptr<Work>> Launch(const char* call, const at::Tensor& tensor,
                                               const std::function<NcclResult(CudaStream)>& launch);
  absl::Status Error(absl::string_view call, NcclResult result) const;
  absl::Status CudaError(const absl::Status& status) const;
  std::string Where() const;  // "rank r/W (host h, device d)"
  void WatchdogLoop();
  void Fatal(const absl::Status& status);
  void StopWatchdog();

  std::unique_ptr<Communicator> host_;
  c10::Device device_;
  NcclOptions options_;
  std::shared_ptr<NcclApi> nccl_;
  std::shared_ptr<CudaApi> cuda_;
  std::string host_name_;
  NcclComm comm_ = nullptr;
  CudaStream stream_ = nullptr;
  CudaEvent ready_event_ = nullptr;
  int64_t next_seq_ = 0;

  mutable std::mutex mu_;  // guards pending_, fatal_, stop_
  std::list<std::shared_ptr<Pending>> pending_;
  absl::Status fatal_;
  bool stop_ = false;
  std::atomic<bool> aborted_{false};
  std::condition_variable cv_;
  std::thread watchdog_;
};

// The production path: MakeNcclApi() and MakeCudaApi(), then Create.
absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateNcclCommunicator(std::unique_ptr<Communicator> host,
                                                                         int cuda_device, NcclOptions options);

}  // namespace distrnn::comm
