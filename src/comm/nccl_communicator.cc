#include "comm/nccl_communicator.h"

#include <ATen/ATen.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/device.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::comm {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

absl::StatusOr<NcclDataType> ReduceType(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return NcclDataType::kFloat32;
    case at::kDouble: return NcclDataType::kFloat64;
    case at::kHalf: return NcclDataType::kFloat16;
    case at::kBFloat16: return NcclDataType::kBfloat16;
    case at::kInt: return NcclDataType::kInt32;
    case at::kLong: return NcclDataType::kInt64;
    default: return absl::InvalidArgumentError(absl::StrCat("no NCCL type for ", c10::toString(t)));
  }
}

NcclRedOp ToNcclOp(ReduceOp op) {
  switch (op) {
    case ReduceOp::kSum: return NcclRedOp::kSum;
    case ReduceOp::kMax: return NcclRedOp::kMax;
    case ReduceOp::kAverage: return NcclRedOp::kAvg;
  }
  return NcclRedOp::kSum;
}

// Every rank's outcome of a local step: OK on every rank when all succeeded; else this
// rank's own error, or, on a rank that succeeded, an error naming the ranks that did
// not (so every rank ends, none waits for a peer that gave up).
absl::Status AgreeOnStatus(Communicator& host, const absl::Status& local, absl::string_view what) {
  absl::StatusOr<std::vector<double>> failed = host.AllGather(local.ok() ? 0.0 : 1.0);
  if (!failed.ok()) return local.ok() ? failed.status() : local;
  std::vector<int> ranks;
  for (int r = 0; r < static_cast<int>(failed->size()); ++r) {
    if ((*failed)[r] != 0.0) ranks.push_back(r);
  }
  if (ranks.empty()) return absl::OkStatus();
  if (!local.ok()) return local;
  return absl::FailedPreconditionError(absl::StrCat(what, " failed on rank", ranks.size() > 1 ? "s " : " ",
                                                    absl::StrJoin(ranks, ", "), " (see its message)"));
}

}  // namespace

// One collective in flight. Shared by its Work and the watchdog's list; the end event
// is destroyed when both are done with it.
struct NcclCommunicator::Pending {
  Pending(std::shared_ptr<CudaApi> api, const char* name, int64_t seq, CudaEvent event)
      : cuda(std::move(api)), call(name), seq(seq), end(event), start(Clock::now()) {}
  ~Pending() { cuda->DestroyEvent(end); }

  std::shared_ptr<CudaApi> cuda;
  const char* call;
  int64_t seq;
  CudaEvent end;
  Clock::time_point start;
};

class NcclWork final : public Work {
 public:
  NcclWork(NcclCommunicator& comm, std::shared_ptr<NcclCommunicator::Pending> pending)
      : comm_(comm), pending_(std::move(pending)) {}

  absl::Status Wait() override {
    if (absl::Status fatal = comm_.fatal_status(); !fatal.ok()) return fatal;
    if (waited_) return absl::OkStatus();
    // The caller's current stream (the compute stream) waits for the end event.
    const absl::Status s = comm_.cuda_->StreamWaitEvent(comm_.cuda_->CurrentStream(comm_.device_.index()),
                                                        pending_->end);
    if (!s.ok()) return comm_.CudaError(s);
    waited_ = true;
    return absl::OkStatus();
  }

  bool IsCompleted() override {
    if (!comm_.fatal_status().ok()) return true;
    absl::StatusOr<bool> done = comm_.cuda_->EventQuery(pending_->end);
    return !done.ok() || *done;
  }

  absl::Status error() const override { return comm_.fatal_status(); }

 private:
  NcclCommunicator& comm_;
  std::shared_ptr<NcclCommunicator::Pending> pending_;
  bool waited_ = false;
};

NcclCommunicator::NcclCommunicator(std::unique_ptr<Communicator> host, c10::Device device, NcclOptions options,
                                   std::shared_ptr<NcclApi> nccl, std::shared_ptr<CudaApi> cuda)
    : host_(std::move(host)),
      device_(device),
      options_(std::move(options)),
      nccl_(std::move(nccl)),
      cuda_(std::move(cuda)),
      host_name_(common::HostName()) {}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> NcclCommunicator::Create(std::unique_ptr<Communicator> host,
                                                                           c10::Device device, NcclOptions options,
                                                                           std::shared_ptr<NcclApi> nccl,
                                                                           std::shared_ptr<CudaApi> cuda) {
  if (host == nullptr || nccl == nullptr || cuda == nullptr) {
    return absl::InvalidArgumentError("NcclCommunicator needs a host communicator, an NcclApi and a CudaApi");
  }
  if (options.collective_timeout_s < 0 || options.poll_interval_s < 0) {
    return absl::InvalidArgumentError("NCCL collective timeout and poll interval must be >= 0");
  }
  std::unique_ptr<NcclCommunicator> self(
      new NcclCommunicator(std::move(host), device, std::move(options), std::move(nccl), std::move(cuda)));
  if (!self->options_.on_fatal) {
    Communicator* host_comm = self->host_.get();
    self->options_.on_fatal = [host_comm](const absl::Status&) { host_comm->Abort(kNcclFatalExitCode); };
  }
  // Every rank checks its library before any rank makes an NCCL call.
  absl::Status version = CheckNcclVersion(*self->nccl_);
  if (!version.ok()) version = absl::FailedPreconditionError(absl::StrCat(self->Where(), ": ", version.message()));
  RETURN_IF_ERROR(AgreeOnStatus(*self->host_, version, "the NCCL version check"));
  RETURN_IF_ERROR(self->Init());
  return self;
}

std::string NcclCommunicator::Where() const {
  return absl::StrFormat("rank %d/%d (host %s, pid %d, device %s)", rank(), world_size(), host_name_,
                         static_cast<int>(getpid()), device_.str());
}

absl::Status NcclCommunicator::Error(absl::string_view call, NcclResult result) const {
  std::string detail = nccl_->GetLastError(comm_);
  const std::string message = absl::StrCat(call, " failed on ", Where(), ": ", nccl_->GetErrorString(result),
                                           detail.empty() ? "" : absl::StrCat(" (", detail, ")"));
  switch (result) {
    case NcclResult::kTimeout: return absl::DeadlineExceededError(message);
    case NcclResult::kRemoteError:
    case NcclResult::kSystemError: return absl::UnavailableError(message);
    default: return absl::InternalError(message);
  }
}

absl::Status NcclCommunicator::CudaError(const absl::Status& status) const {
  return absl::Status(status.code(), absl::StrCat(status.message(), " on ", Where()));
}

absl::Status NcclCommunicator::Bootstrap(NcclUniqueId& id) {
  // Byte 0: rank 0's ncclGetUniqueId result; then the id.
  at::Tensor message = at::zeros({1 + static_cast<int64_t>(NcclUniqueId::kBytes)}, at::kByte);
  uint8_t* bytes = message.data_ptr<uint8_t>();
  NcclResult made = NcclResult::kSuccess;
  if (rank() == 0) {
    made = nccl_->GetUniqueId(&id);
    bytes[0] = static_cast<uint8_t>(made);
    std::memcpy(bytes + 1, id.internal, NcclUniqueId::kBytes);
  }
  RETURN_IF_ERROR(host_->Broadcast(message, 0));
  made = static_cast<NcclResult>(bytes[0]);
  if (made != NcclResult::kSuccess) {
    if (rank() == 0) return Error("ncclGetUniqueId", made);
    return absl::InternalError(absl::StrCat("ncclGetUniqueId failed on rank 0 (", nccl_->GetErrorString(made),
                                            "); rank ", rank(), " cannot join the NCCL communicator"));
  }
  std::memcpy(id.internal, bytes + 1, NcclUniqueId::kBytes);
  return absl::OkStatus();
}

// A non-blocking communicator returns kInProgress from calls still running in the
// background: poll its state until it leaves kInProgress (bounded by the timeout).
absl::Status NcclCommunicator::WaitWhileInProgress(const char* call) {
  const Clock::time_point start = Clock::now();
  for (;;) {
    NcclResult state = NcclResult::kSuccess;
    const NcclResult r = nccl_->CommGetAsyncError(comm_, &state);
    if (r != NcclResult::kSuccess) return Error("ncclCommGetAsyncError", r);
    if (state == NcclResult::kSuccess) return absl::OkStatus();
    if (state != NcclResult::kInProgress) return Error(call, state);
    if (options_.collective_timeout_s > 0 && SecondsSince(start) > options_.collective_timeout_s) {
      return absl::DeadlineExceededError(absl::StrFormat("%s on %s still in progress after %.1f s (timeout %g s)",
                                                         call, Where(), SecondsSince(start),
                                                         options_.collective_timeout_s));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

absl::Status NcclCommunicator::Init() {
  // Local preparation; every rank takes part in the id broadcast whatever happened.
  absl::Status local;
  if (device_.is_cuda()) {
    if (absl::Status s = cuda_->SetDevice(device_.index()); !s.ok()) local = CudaError(s);
  }
  NcclUniqueId id;
  absl::Status bootstrap = Bootstrap(id);
  if (local.ok()) local = bootstrap;
  if (local.ok()) {
    local = [&]() -> absl::Status {
      absl::StatusOr<CudaStream> stream = cuda_->CreateStream(device_.index());
      if (!stream.ok()) return CudaError(stream.status());
      stream_ = *stream;
      absl::StatusOr<CudaEvent> event = cuda_->CreateEvent();
      if (!event.ok()) return CudaError(event.status());
      ready_event_ = *event;
      return absl::OkStatus();
    }();
  }
  // ncclCommInitRankConfig needs every rank: start it only when all are ready.
  RETURN_IF_ERROR(AgreeOnStatus(*host_, local, "NCCL set-up"));
  local = [&]() -> absl::Status {
    NcclConfig config;
    config.blocking = false;
    config.comm_name = options_.comm_name;
    const NcclResult r = nccl_->CommInitRankConfig(&comm_, world_size(), id, rank(), config);
    if (r != NcclResult::kSuccess && r != NcclResult::kInProgress) return Error("ncclCommInitRankConfig", r);
    return WaitWhileInProgress("ncclCommInitRankConfig");
  }();
  absl::Status agreed = AgreeOnStatus(*host_, local, "ncclCommInitRankConfig");
  if (!agreed.ok()) {
    if (comm_ != nullptr) {
      (void)nccl_->CommAbort(comm_);
      aborted_ = true;
    }
    return agreed;
  }
  watchdog_ = std::thread([this] { WatchdogLoop(); });
  return absl::OkStatus();
}

void NcclCommunicator::StopWatchdog() {
  if (!watchdog_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  watchdog_.join();
}

NcclCommunicator::~NcclCommunicator() {
  StopWatchdog();
  if (comm_ != nullptr && !aborted_) {
    bool clean = fatal_status().ok();
    if (clean) {
      // Flush the operations in flight, then free; a failure on the way aborts instead.
      const NcclResult r = nccl_->CommFinalize(comm_);
      clean = (r == NcclResult::kSuccess || r == NcclResult::kInProgress) &&
              WaitWhileInProgress("ncclCommFinalize").ok();
    }
    if (clean) {
      (void)nccl_->CommDestroy(comm_);
    } else {
      (void)nccl_->CommAbort(comm_);
    }
  }
  comm_ = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.clear();
  }
  if (ready_event_ != nullptr) cuda_->DestroyEvent(ready_event_);
}

absl::Status NcclCommunicator::fatal_status() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fatal_;
}

size_t NcclCommunicator::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return pending_.size();
}

void NcclCommunicator::Fatal(const absl::Status& status) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!fatal_.ok()) return;
    fatal_ = status;
  }
  common::LogLine("comm", absl::StrCat(status.message(), "; calling ncclCommAbort and ending the job with code ",
                                       kNcclFatalExitCode));
  if (!aborted_.exchange(true)) (void)nccl_->CommAbort(comm_);
  options_.on_fatal(status);
}

void NcclCommunicator::WatchdogLoop() {
  const double timeout = options_.collective_timeout_s;
  double poll_s = options_.poll_interval_s;
  if (poll_s <= 0) poll_s = timeout > 0 ? std::clamp(timeout / 4, 0.01, 1.0) : 1.0;
  const auto poll = std::chrono::microseconds(static_cast<int64_t>(poll_s * 1e6));
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, poll, [this] { return stop_; })) {
    if (!fatal_.ok()) return;
    absl::Status problem;
    // Asynchronous errors: a peer died, a network failure, an error inside NCCL.
    NcclResult state = NcclResult::kSuccess;
    const NcclResult r = nccl_->CommGetAsyncError(comm_, &state);
    if (r != NcclResult::kSuccess) {
      problem = Error("ncclCommGetAsyncError", r);
    } else if (state != NcclResult::kSuccess && state != NcclResult::kInProgress) {
      problem = Error("NCCL (asynchronous error reported by ncclCommGetAsyncError)", state);
    }
    // Collectives in flight, oldest first: drop the finished, time the oldest pending.
    for (auto it = pending_.begin(); problem.ok() && it != pending_.end();) {
      absl::StatusOr<bool> done = cuda_->EventQuery((*it)->end);
      if (!done.ok()) {
        problem = CudaError(done.status());
      } else if (*done) {
        it = pending_.erase(it);
        continue;
      } else if (timeout > 0 && SecondsSince((*it)->start) > timeout) {
        problem = absl::DeadlineExceededError(absl::StrFormat(
            "%s #%d on %s has not finished after %.1f s (collective timeout %g s): a peer rank is stalled or gone",
            (*it)->call, (*it)->seq, Where(), SecondsSince((*it)->start), timeout));
      }
      break;  // later collectives started after this one: they cannot be older
    }
    if (problem.ok()) continue;
    lock.unlock();
    Fatal(problem);
    return;
  }
}

absl::Status NcclCommunicator::CheckDevice(const at::Tensor& tensor) const {
  if (device_.is_cuda() && tensor.device() != device_) {
    return absl::InvalidArgumentError(absl::StrCat("NCCL collective on a tensor on ", tensor.device().str(),
                                                   ", but this rank's device is ", device_.str()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<Work>> NcclCommunicator::Launch(const char* call, const at::Tensor& tensor,
                                                               const std::function<NcclResult(CudaStream)>& launch) {
  if (absl::Status fatal = fatal_status(); !fatal.ok()) return fatal;
  if (aborted_) {
    return absl::FailedPreconditionError(absl::StrCat("the NCCL communicator of ", Where(), " was aborted"));
  }
  // Note [NCCL streams]: NCCL's stream starts after the compute stream's work so far.
  const CudaStream compute = cuda_->CurrentStream(device_.index());
  if (absl::Status s = cuda_->RecordEvent(ready_event_, compute); !s.ok()) return CudaError(s);
  if (absl::Status s = cuda_->StreamWaitEvent(stream_, ready_event_); !s.ok()) return CudaError(s);
  const NcclResult r = launch(stream_);
  if (r == NcclResult::kInProgress) {
    RETURN_IF_ERROR(WaitWhileInProgress(call));
  } else if (r != NcclResult::kSuccess) {
    return Error(call, r);
  }
  cuda_->RecordStream(tensor, stream_, device_.index());
  absl::StatusOr<CudaEvent> end = cuda_->CreateEvent();
  if (!end.ok()) return CudaError(end.status());
  auto pending = std::make_shared<Pending>(cuda_, call, next_seq_++, *end);
  if (absl::Status s = cuda_->RecordEvent(pending->end, stream_); !s.ok()) return CudaError(s);
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending_.push_back(pending);
  }
  return std::unique_ptr<Work>(std::make_unique<NcclWork>(*this, std::move(pending)));
}

absl::StatusOr<std::unique_ptr<Work>> NcclCommunicator::AllReduceAsync(at::Tensor& tensor, ReduceOp op) {
  if (!OnDevice(tensor)) return host_->AllReduceAsync(tensor, op);
  RETURN_IF_ERROR(ValidateAllReduce(tensor, op, /*half_precision=*/true));
  RETURN_IF_ERROR(CheckDevice(tensor));
  ASSIGN_OR_RETURN(const NcclDataType type, ReduceType(tensor.scalar_type()));
  void* data = tensor.data_ptr();  // a device address handed to NCCL, never read here
  const size_t count = static_cast<size_t>(tensor.numel());
  return Launch("ncclAllReduce", tensor, [&](CudaStream stream) {
    return nccl_->AllReduce(data, data, count, type, ToNcclOp(op), comm_, stream);
  });
}

absl::StatusOr<std::unique_ptr<Work>> NcclCommunicator::BroadcastAsync(at::Tensor& tensor, int root) {
  if (!OnDevice(tensor)) return host_->BroadcastAsync(tensor, root);
  RETURN_IF_ERROR(ValidateBroadcast(tensor, root, world_size()));
  RETURN_IF_ERROR(CheckDevice(tensor));
  void* data = tensor.data_ptr();
  const size_t bytes = tensor.nbytes();  // bytes: every dtype travels
  return Launch("ncclBroadcast", tensor, [&](CudaStream stream) {
    return nccl_->Broadcast(data, data, bytes, NcclDataType::kUint8, root, comm_, stream);
  });
}

absl::StatusOr<std::unique_ptr<Work>> NcclCommunicator::AllGatherAsync(const at::Tensor& input, at::Tensor& output) {
  if (!OnDevice(input)) return host_->AllGatherAsync(input, output);
  RETURN_IF_ERROR(ValidateAllGather(input, output, world_size()));
  RETURN_IF_ERROR(CheckDevice(input));
  const void* send = input.data_ptr();
  void* recv = output.data_ptr();
  const size_t bytes = input.nbytes();
  // The input is read on the NCCL stream too: keep its memory from being reused early.
  cuda_->RecordStream(input, stream_, device_.index());
  return Launch("ncclAllGather", output, [&](CudaStream stream) {
    return nccl_->AllGather(send, recv, bytes, NcclDataType::kUint8, comm_, stream);
  });
}

absl::Status NcclCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op) {
  if (!OnDevice(tensor)) return host_->AllReduce(tensor, op);
  ASSIGN_OR_RETURN(std::unique_ptr<Work> work, AllReduceAsync(tensor, op));
  return work->Wait();
}

absl::Status NcclCommunicator::Broadcast(at::Tensor& tensor, int root) {
  if (!OnDevice(tensor)) return host_->Broadcast(tensor, root);
  ASSIGN_OR_RETURN(std::unique_ptr<Work> work, BroadcastAsync(tensor, root));
  return work->Wait();
}

absl::Status NcclCommunicator::Barrier() {
  std::vector<std::shared_ptr<Pending>> pending;
  {
    std::lock_guard<std::mutex> lock(mu_);
    pending.assign(pending_.begin(), pending_.end());
  }
  for (const auto& p : pending) {
    if (absl::Status s = cuda_->EventSynchronize(p->end); !s.ok()) return CudaError(s);
  }
  if (absl::Status fatal = fatal_status(); !fatal.ok()) return fatal;
  return host_->Barrier();
}

void NcclCommunicator::Abort(int code) {
  common::LogLine("comm", absl::StrCat(Where(), " aborts NCCL and ends the job with code ", code));
  if (comm_ != nullptr && !aborted_.exchange(true)) (void)nccl_->CommAbort(comm_);
  host_->Abort(code);
  std::_Exit(code);  // Abort does not return; be sure
}

absl::StatusOr<std::unique_ptr<NcclCommunicator>> CreateNcclCommunicator(std::unique_ptr<Communicator> host,
                                                                         int cuda_device, NcclOptions options) {
  ASSIGN_OR_RETURN(std::shared_ptr<NcclApi> nccl, MakeNcclApi());
  ASSIGN_OR_RETURN(std::shared_ptr<CudaApi> cuda, MakeCudaApi());
  return NcclCommunicator::Create(std::move(host), c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(cuda_device)),
                                  std::move(options), std::move(nccl), std::move(cuda));
}

}  // namespace distrnn::comm
