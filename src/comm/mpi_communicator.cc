#include "comm/mpi_communicator.h"

#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/torch_status.h"

namespace distrnn::comm {
namespace {

// Exit code of a job ended by the collective watchdog.
constexpr int kWatchdogExitCode = 75;

// Instances alive, and whether one of them called MPI_Init_thread: MPI is finalized
// when the last instance goes away, and only if we initialized it.
std::mutex g_lifetime_mu;
int g_live_instances = 0;
bool g_we_initialized = false;

std::string MpiErrorString(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) return absl::StrCat("MPI error ", code);
  return std::string(text, len);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch()).count();
}

absl::StatusOr<MPI_Datatype> ReduceType(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return MPI_FLOAT;
    case at::kDouble: return MPI_DOUBLE;
    case at::kInt: return MPI_INT32_T;
    case at::kLong: return MPI_INT64_T;
    default: return absl::InvalidArgumentError(absl::StrCat("no MPI type for ", c10::toString(t)));
  }
}

// MPI_Abort can itself hang: Open MPI's PMIx_Abort waits for the runtime to kill the
// process, and two ranks aborting at once (every waiting rank's watchdog) have deadlocked
// it (open-mpi/ompi#3225, ompi-release#101). A detached timer ends this process with
// `code` if MPI_Abort has not within `backstop_s`; mpirun then sees a rank exit without
// MPI_Finalize and ends the rest of the job itself.
[[noreturn]] void AbortWithBackstop(MPI_Comm comm, int code, double backstop_s) {
  std::thread([code, backstop_s] {
    std::this_thread::sleep_for(std::chrono::duration<double>(backstop_s));
    // write(2), not the logger: its lock may be held by the thread stuck in MPI_Abort.
    const std::string line = absl::StrFormat(
        "[comm] MPI_Abort did not end pid %d within %g s; exiting with code %d\n", static_cast<int>(getpid()),
        backstop_s, code);
    [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, line.data(), line.size());
    std::_Exit(code);
  }).detach();
  MPI_Abort(comm, code);
  std::_Exit(code);  // MPI_Abort does not return; be sure
}

MPI_Op ToMpiOp(ReduceOp op) { return op == ReduceOp::kMax ? MPI_MAX : MPI_SUM; }

absl::Status RequireHost(const at::Tensor& tensor, absl::string_view what) {
  if (tensor.device().is_cpu()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("MpiCommunicator ", what, " takes host tensors; got one on ",
                                                 tensor.device().str(), " (device tensors need --comm=nccl)"));
}

}  // namespace

struct MpiCommunicator::Impl {
  MPI_Comm comm = MPI_COMM_NULL;

  // Watchdog state: the collective in flight (nullptr if none) and when it began.
  std::atomic<const char*> in_flight{nullptr};
  std::atomic<int64_t> since_ns{0};
  std::thread watchdog;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;

  // "MPI_Allreduce failed on rank 1/2 (host h, pid p): <MPI's message>"
  absl::Status Error(const MpiCommunicator& self, absl::string_view call, int code) const {
    return absl::InternalError(absl::StrFormat("%s failed on rank %d/%d (host %s, pid %d): %s", call, self.rank_,
                                               self.world_size_, self.host_, static_cast<int>(getpid()),
                                               MpiErrorString(code)));
  }
};

namespace {

// Marks one collective as in flight for the watchdog.
class InFlight {
 public:
  InFlight(std::atomic<const char*>& slot, std::atomic<int64_t>& since, const char* name) : slot_(slot) {
    since.store(NowNs(), std::memory_order_relaxed);
    slot_.store(name, std::memory_order_release);
  }
  ~InFlight() { slot_.store(nullptr, std::memory_order_release); }

 private:
  std::atomic<const char*>& slot_;
};

}  // namespace

// Evaluates an MPI call; on failure returns a status naming the call (the text of the
// expression up to its first parenthesis), MPI's error string, rank and host.
#define DISTRNN_MPI_RETURN_IF_ERROR(expr)                                   \
  do {                                                                      \
    const int distrnn_mpi_rc_ = (expr);                                     \
    if (distrnn_mpi_rc_ != MPI_SUCCESS) {                                   \
      absl::string_view distrnn_call_(#expr);                               \
      distrnn_call_ = distrnn_call_.substr(0, distrnn_call_.find('('));     \
      return impl_->Error(*this, distrnn_call_, distrnn_mpi_rc_);           \
    }                                                                       \
  } while (0)

MpiCommunicator::MpiCommunicator(const MpiOptions& options) : options_(options), impl_(std::make_unique<Impl>()) {}

absl::StatusOr<std::unique_ptr<MpiCommunicator>> MpiCommunicator::Create(const MpiOptions& options) {
  if (options.chunk_elements < 1) {
    return absl::InvalidArgumentError(absl::StrCat("chunk_elements must be >= 1, got ", options.chunk_elements));
  }
  if (options.collective_timeout_s < 0) {
    return absl::InvalidArgumentError(absl::StrCat("collective timeout must be >= 0 s, got ",
                                                   options.collective_timeout_s));
  }
  {
    std::lock_guard<std::mutex> lock(g_lifetime_mu);
    int initialized = 0, finalized = 0;
    MPI_Initialized(&initialized);
    MPI_Finalized(&finalized);
    if (finalized) return absl::FailedPreconditionError("MPI was already finalized in this process");
    if (!initialized) {
      // FUNNELED: only the thread that called MPI_Init_thread makes MPI calls (the
      // watchdog's MPI_Abort is a last resort on a job that is going down anyway).
      int provided = 0;
      const int rc = MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
      if (rc != MPI_SUCCESS) {
        return absl::InternalError(absl::StrCat("MPI_Init_thread failed: ", MpiErrorString(rc)));
      }
      g_we_initialized = true;
    }
    ++g_live_instances;
  }
  std::unique_ptr<MpiCommunicator> self(new MpiCommunicator(options));
  if (absl::Status s = self->Init(); !s.ok()) return s;
  return self;
}

absl::Status MpiCommunicator::Init() {
  char name[MPI_MAX_PROCESSOR_NAME];
  int name_len = 0;
  if (MPI_Get_processor_name(name, &name_len) == MPI_SUCCESS) host_.assign(name, name_len);
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_size_);
  // From here on MPI errors come back as codes instead of aborting the process.
  DISTRNN_MPI_RETURN_IF_ERROR(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  DISTRNN_MPI_RETURN_IF_ERROR(MPI_Comm_dup(MPI_COMM_WORLD, &impl_->comm));
  DISTRNN_MPI_RETURN_IF_ERROR(MPI_Comm_set_errhandler(impl_->comm, MPI_ERRORS_RETURN));
  MPI_Comm local = MPI_COMM_NULL;
  DISTRNN_MPI_RETURN_IF_ERROR(MPI_Comm_split_type(impl_->comm, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  MPI_Comm_rank(local, &local_rank_);
  MPI_Comm_size(local, &local_size_);
  DISTRNN_MPI_RETURN_IF_ERROR(MPI_Comm_free(&local));
  if (options_.collective_timeout_s > 0) impl_->watchdog = std::thread([this] { WatchdogLoop(); });
  return absl::OkStatus();
}

void MpiCommunicator::WatchdogLoop() {
  Impl* impl = impl_.get();
  const int64_t limit_ns = static_cast<int64_t>(options_.collective_timeout_s * 1e9);
  const auto poll = std::chrono::milliseconds(
      std::clamp<int64_t>(static_cast<int64_t>(options_.collective_timeout_s * 250), 10, 1000));
  // A poll much later than due means this process itself was frozen (SIGSTOP, a
  // suspended VM): time spent frozen says nothing about the peers, so waits count from
  // the thaw. Otherwise a stalled rank, continued while its job is torn down, would
  // blame its peers.
  const int64_t frozen_ns = std::chrono::nanoseconds(poll).count() + std::max<int64_t>(1'000'000'000, limit_ns / 2);
  int64_t last_poll = NowNs(), thawed = 0;
  std::unique_lock<std::mutex> lock(impl->mu);
  while (!impl->cv.wait_for(lock, poll, [impl] { return impl->stop; })) {
    const int64_t now = NowNs();
    if (now - last_poll > frozen_ns) thawed = now;
    last_poll = now;
    const char* call = impl->in_flight.load(std::memory_order_acquire);
    if (call == nullptr) continue;
    const int64_t waited = now - std::max(impl->since_ns.load(std::memory_order_relaxed), thawed);
    if (waited < limit_ns) continue;
    // Every waiting rank's watchdog fires within about one poll of the others (they
    // entered the collective together): each logs its line during the grace period
    // before the first one aborts, so the job's output names all the waiting ranks, and
    // the ranks missing from it are the stalled ones.
    const auto grace = std::max<std::chrono::milliseconds>(2 * poll, std::chrono::milliseconds(1000));
    common::LogLine("comm", absl::StrFormat(
        "%s on rank %d/%d (host %s, pid %d) has waited %.1f s (collective timeout %g s): a peer rank is "
        "stalled or gone (every rank waiting in it logs this line; a rank without one is stalled or dead); "
        "aborting the job with code %d in %.1f s",
        call, rank_, world_size_, host_, static_cast<int>(getpid()), waited / 1e9,
        options_.collective_timeout_s, kWatchdogExitCode, grace.count() / 1e3));
    impl->cv.wait_for(lock, grace);
    AbortWithBackstop(MPI_COMM_WORLD, kWatchdogExitCode, options_.abort_backstop_s);
  }
}

MpiCommunicator::~MpiCommunicator() {
  if (impl_->watchdog.joinable()) {
    {
      std::lock_guard<std::mutex> lock(impl_->mu);
      impl_->stop = true;
    }
    impl_->cv.notify_all();
    impl_->watchdog.join();
  }
  std::lock_guard<std::mutex> lock(g_lifetime_mu);
  if (impl_->comm != MPI_COMM_NULL) MPI_Comm_free(&impl_->comm);
  if (--g_live_instances == 0 && g_we_initialized) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
}

absl::Status MpiCommunicator::AllReduce(at::Tensor& tensor, ReduceOp op) {
  if (absl::Status s = ValidateAllReduce(tensor, op); !s.ok()) return s;
  if (absl::Status s = RequireHost(tensor, "all-reduce"); !s.ok()) return s;
  absl::StatusOr<MPI_Datatype> type = ReduceType(tensor.scalar_type());
  if (!type.ok()) return type.status();
  const int64_t n = tensor.numel();
  char* base = static_cast<char*>(tensor.data_ptr());
  const int64_t item = tensor.element_size();
  InFlight guard(impl_->in_flight, impl_->since_ns, "MPI_Allreduce");
  for (int64_t offset = 0; offset < n; offset += options_.chunk_elements) {
    const int count = static_cast<int>(std::min<int64_t>(options_.chunk_elements, n - offset));
    DISTRNN_MPI_RETURN_IF_ERROR(
        MPI_Allreduce(MPI_IN_PLACE, base + offset * item, count, *type, ToMpiOp(op), impl_->comm));
  }
  if (op == ReduceOp::kAverage && world_size_ > 1) tensor.div_(world_size_);
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Broadcast(at::Tensor& tensor, int root) {
  if (absl::Status s = ValidateBroadcast(tensor, root, world_size_); !s.ok()) return s;
  if (absl::Status s = RequireHost(tensor, "broadcast"); !s.ok()) return s;
  // Bytes, so every dtype travels; the chunk is the same number of elements.
  const int64_t bytes = tensor.nbytes();
  const int64_t chunk = std::min<int64_t>(INT_MAX, options_.chunk_elements * tensor.element_size());
  char* base = static_cast<char*>(tensor.data_ptr());
  InFlight guard(impl_->in_flight, impl_->since_ns, "MPI_Bcast");
  for (int64_t offset = 0; offset < bytes; offset += chunk) {
    const int count = static_cast<int>(std::min<int64_t>(chunk, bytes - offset));
    DISTRNN_MPI_RETURN_IF_ERROR(MPI_Bcast(base + offset, count, MPI_BYTE, root, impl_->comm));
  }
  return absl::OkStatus();
}

absl::Status MpiCommunicator::Barrier() {
  InFlight guard(impl_->in_flight, impl_->since_ns, "MPI_Barrier");
  DISTRNN_MPI_RETURN_IF_ERROR(MPI_Barrier(impl_->comm));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<double>> MpiCommunicator::AllGather(double value) {
  std::vector<double> out(world_size_);
  InFlight guard(impl_->in_flight, impl_->since_ns, "MPI_Allgather");
  DISTRNN_MPI_RETURN_IF_ERROR(MPI_Allgather(&value, 1, MPI_DOUBLE, out.data(), 1, MPI_DOUBLE, impl_->comm));
  return out;
}

// One nonblocking collective: its requests (one per chunk), the tensor they use (kept
// alive), and what to do once they complete (the division of an average).
class MpiWork final : public Work {
 public:
  MpiWork(MpiCommunicator& comm, const char* name, at::Tensor tensor, std::function<void()> finish)
      : comm_(comm), name_(name), tensor_(std::move(tensor)), finish_(std::move(finish)) {}
  ~MpiWork() override {
    if (!done_) (void)Wait();
  }

  std::vector<MPI_Request>& requests() { return requests_; }

  absl::Status Wait() override {
    if (done_) return status_;
    InFlight guard(comm_.impl_->in_flight, comm_.impl_->since_ns, name_);
    const int rc = MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
    Finish(rc);
    return status_;
  }

  bool IsCompleted() override {
    if (done_) return true;
    int flag = 0;
    const int rc = MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &flag, MPI_STATUSES_IGNORE);
    if (rc != MPI_SUCCESS || flag) Finish(rc);
    return done_;
  }

  absl::Status error() const override { return status_; }

 private:
  void Finish(int rc) {
    done_ = true;
    if (rc != MPI_SUCCESS) {
      status_ = comm_.impl_->Error(comm_, name_, rc);
      return;
    }
    if (finish_) {
      status_ = common::GuardTorch(name_, [&] {
        finish_();
        return absl::OkStatus();
      });
    }
    tensor_ = at::Tensor();
  }

  MpiCommunicator& comm_;
  const char* name_;
  at::Tensor tensor_;
  std::function<void()> finish_;
  std::vector<MPI_Request> requests_;
  bool done_ = false;
  absl::Status status_;
};

// Starts a nonblocking MPI call into `work`; on failure the requests already started
// are waited for (their buffers stay valid) and the error is returned.
#define DISTRNN_MPI_START_OR_RETURN(work, expr)                               \
  do {                                                                        \
    MPI_Request distrnn_request_ = MPI_REQUEST_NULL;                          \
    const int distrnn_mpi_rc_ = (expr);                                       \
    if (distrnn_mpi_rc_ != MPI_SUCCESS) {                                     \
      (void)(work)->Wait();                                                   \
      absl::string_view distrnn_call_(#expr);                                 \
      distrnn_call_ = distrnn_call_.substr(0, distrnn_call_.find('('));       \
      return impl_->Error(*this, distrnn_call_, distrnn_mpi_rc_);             \
    }                                                                         \
    (work)->requests().push_back(distrnn_request_);                           \
  } while (0)

absl::StatusOr<std::unique_ptr<Work>> MpiCommunicator::AllReduceAsync(at::Tensor& tensor, ReduceOp op) {
  if (absl::Status s = ValidateAllReduce(tensor, op); !s.ok()) return s;
  if (absl::Status s = RequireHost(tensor, "all-reduce"); !s.ok()) return s;
  absl::StatusOr<MPI_Datatype> type = ReduceType(tensor.scalar_type());
  if (!type.ok()) return type.status();
  std::function<void()> finish;
  if (op == ReduceOp::kAverage && world_size_ > 1) finish = [tensor, w = world_size_]() mutable { tensor.div_(w); };
  auto work = std::make_unique<MpiWork>(*this, "MPI_Iallreduce", tensor, std::move(finish));
  const int64_t n = tensor.numel();
  char* base = static_cast<char*>(tensor.data_ptr());
  const int64_t item = tensor.element_size();
  for (int64_t offset = 0; offset < n; offset += options_.chunk_elements) {
    const int count = static_cast<int>(std::min<int64_t>(options_.chunk_elements, n - offset));
    DISTRNN_MPI_START_OR_RETURN(work, MPI_Iallreduce(MPI_IN_PLACE, base + offset * item, count, *type, ToMpiOp(op),
                                                     impl_->comm, &distrnn_request_));
  }
  return std::unique_ptr<Work>(std::move(work));
}

absl::StatusOr<std::unique_ptr<Work>> MpiCommunicator::BroadcastAsync(at::Tensor& tensor, int root) {
  if (absl::Status s = ValidateBroadcast(tensor, root, world_size_); !s.ok()) return s;
  if (absl::Status s = RequireHost(tensor, "broadcast"); !s.ok()) return s;
  auto work = std::make_unique<MpiWork>(*this, "MPI_Ibcast", tensor, nullptr);
  const int64_t bytes = tensor.nbytes();
  const int64_t chunk = std::min<int64_t>(INT_MAX, options_.chunk_elements * tensor.element_size());
  char* base = static_cast<char*>(tensor.data_ptr());
  for (int64_t offset = 0; offset < bytes; offset += chunk) {
    const int count = static_cast<int>(std::min<int64_t>(chunk, bytes - offset));
    DISTRNN_MPI_START_OR_RETURN(work, MPI_Ibcast(base + offset, count, MPI_BYTE, root, impl_->comm, &distrnn_request_));
  }
  return std::unique_ptr<Work>(std::move(work));
}

absl::StatusOr<std::unique_ptr<Work>> MpiCommunicator::AllGatherAsync(const at::Tensor& input, at::Tensor& output) {
  if (absl::Status s = ValidateAllGather(input, output, world_size_); !s.ok()) return s;
  if (absl::Status s = RequireHost(input, "all-gather"); !s.ok()) return s;
  const int64_t bytes = input.nbytes();
  if (bytes > INT_MAX) {
    return absl::InvalidArgumentError(absl::StrCat("MPI all-gather of ", bytes, " bytes per rank: at most ", INT_MAX));
  }
  auto work = std::make_unique<MpiWork>(*this, "MPI_Iallgather", output, nullptr);
  const int count = static_cast<int>(bytes);
  DISTRNN_MPI_START_OR_RETURN(work, MPI_Iallgather(input.data_ptr(), count, MPI_BYTE, output.data_ptr(), count,
                                                   MPI_BYTE, impl_->comm, &distrnn_request_));
  return std::unique_ptr<Work>(std::move(work));
}

void MpiCommunicator::Abort(int code) {
  // Our own line first: Open MPI's "MPI_ABORT was invoked on rank r" help text is not
  // always delivered (4.1.4 sometimes drops it with an ORTE show_help unpack error).
  common::LogLine("comm", absl::StrFormat("rank %d/%d (host %s, pid %d) calls MPI_Abort: ending the job with code %d",
                                          rank_, world_size_, host_, static_cast<int>(getpid()), code));
  AbortWithBackstop(impl_->comm != MPI_COMM_NULL ? impl_->comm : MPI_COMM_WORLD, code, options_.abort_backstop_s);
}

}  // namespace distrnn::comm
