#include "app/run_context.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "app/exit_codes.h"
#include "train/agreed_stop.h"
#include "comm/communicator_factory.h"
#include "comm/nccl_api.h"
#include "comm/nccl_communicator.h"
#include "common/device.h"
#include "common/logging.h"
#include "common/runtime.h"
#include "common/status_macros.h"

namespace distrnn::app {
namespace {
std::string g_memory_setting;
std::string g_device_setting;

// Every rank's outcome of its device set-up: OK everywhere, else this rank's own error
// or, where it succeeded, one naming the ranks that failed (same exit code), so every
// rank ends, each with one line.
absl::Status AgreeOnDevice(comm::Communicator& comm, const absl::Status& local) {
  if (comm.world_size() == 1) return local;
  absl::StatusOr<std::vector<double>> codes = comm.AllGather(static_cast<double>(local.code()));
  if (!codes.ok()) return local.ok() ? codes.status() : local;
  std::vector<int> failed;
  absl::StatusCode code = absl::StatusCode::kOk;
  for (int r = 0; r < static_cast<int>(codes->size()); ++r) {
    if ((*codes)[r] == 0) continue;
    failed.push_back(r);
    code = static_cast<absl::StatusCode>(static_cast<int>((*codes)[r]));
  }
  if (failed.empty() || !local.ok()) return local;
  return absl::Status(code, absl::StrCat("device set-up failed on rank", failed.size() > 1 ? "s " : " ",
                                         absl::StrJoin(failed, ", "), " (see its message)"));
}

// This rank's device (chosen, checked and made current), agreed with the others.
absl::StatusOr<c10::Device> SetUpDevice(const RunOptions& run, comm::Communicator& comm, comm::CommKind kind) {
  // NCCL reduces device tensors: --comm=nccl means CUDA.
  const common::DeviceKind want =
      kind == comm::CommKind::kNccl && run.device == common::DeviceKind::kAuto ? common::DeviceKind::kCuda : run.device;
  // --device=cpu does not even ask the CUDA driver.
  const int visible = want == common::DeviceKind::kCpu ? 0 : common::VisibleCudaDevices();
  const common::DevicePlacement where{comm.rank(), comm.local_rank(), comm.local_size(), visible, common::HostName()};
  absl::StatusOr<c10::Device> device = common::SelectDevice(want, where, run.allow_shared_gpu);
  absl::Status local = device.status();
  if (local.ok()) local = common::CheckPrecision(run.precision, *device);
  if (local.ok() && kind == comm::CommKind::kNccl && !comm::NcclBuilt()) {
    local = absl::FailedPreconditionError(absl::StrCat(
        "--comm=nccl: this build has no NCCL communicator (configure with -DDISTRNN_WITH_NCCL=ON on a machine "
        "with the CUDA-enabled libtorch)"));
  }
  if (local.ok() && device->is_cuda() && kind != comm::CommKind::kNccl && comm.world_size() > 1 &&
      !comm::UseNcclForAuto(true, comm.world_size(), comm::NcclBuilt())) {
    local = absl::FailedPreconditionError(absl::StrCat(
        "rank ", comm.rank(), " on host ", where.host, ": ", comm.world_size(), " ranks on CUDA need --comm=nccl",
        comm::NcclBuilt() ? "" : " and a build with NCCL (DISTRNN_WITH_NCCL=ON)",
        "; --comm=", comm::CommKindName(kind), " reduces host tensors only"));
  }
  if (local.ok()) {
    common::SetDeterministic(run.deterministic);  // before the first CUDA kernel
    local = common::ActivateDevice(*device);
  }
  RETURN_IF_ERROR(AgreeOnDevice(comm, local));
  common::SetPrecision(run.precision);
  return *device;
}

}  // namespace

absl::Status RunWithCommunicator(const RunOptions& run,
                                 const std::function<absl::Status(comm::Communicator&, c10::Device)>& body) {
  g_memory_setting = common::KeepFreedMemory(static_cast<size_t>(run.free_heap_kept_mb) << 20);
  common::FlushDenormals(run.flush_denormals);  // before any parallel op (runtime.h)
  ASSIGN_OR_RETURN(comm::CommKind kind, comm::ParseCommKind(run.comm));
  comm::MpiOptions mpi_options;
  mpi_options.collective_timeout_s = run.collective_timeout_s;
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Communicator> comm, comm::CreateCommunicator(kind, mpi_options));
  common::SetLogRank(comm->rank(), comm->world_size());
  ASSIGN_OR_RETURN(const c10::Device device, SetUpDevice(run, *comm, kind));
  const bool auto_nccl =
      kind == comm::CommKind::kAuto && comm::UseNcclForAuto(device.is_cuda(), comm->world_size(), comm::NcclBuilt());
  if (kind == comm::CommKind::kNccl || auto_nccl) {
    comm::NcclOptions nccl_options;
    nccl_options.collective_timeout_s = run.collective_timeout_s;
    ASSIGN_OR_RETURN(comm, comm::CreateNcclCommunicator(std::move(comm), device.index(), nccl_options));
  }
  common::SetComputeThreads(run.threads > 0 ? run.threads : comm::DefaultThreadsPerRank(*comm));
  g_device_setting =
      absl::StrCat(device.str(), device.is_cuda() ? absl::StrCat(" (", common::DeviceName(device), ")") : "", ", ",
                   common::PrecisionName(run.precision), run.deterministic ? ", deterministic" : "");
  // One line per rank: where it runs and with which NCCL.
  common::LogLine("device", absl::StrCat("host ", common::HostName(), ", local rank ", comm->local_rank(), "/",
                                         comm->local_size(), ", device ", g_device_setting, ", ",
                                         comm::DescribeNccl()));
  if (comm->world_size() > 1) {
    common::LogLine("comm", absl::StrCat("backend ", comm->backend(), ", local rank ", comm->local_rank(), "/",
                                       comm->local_size(), ", ", common::DescribeComputeSettings()));
  }
  absl::Status status = body(*comm, device);
  // An agreed stop (a signal, a non-finite step) ends every rank at the same step: each
  // leaves through MPI_Finalize with its own exit code, nobody needs aborting.
  if (!status.ok() && comm->world_size() > 1 && !train::IsAgreedStop(status)) {
    // Peers may be waiting in a collective: end the whole job, naming this rank.
    common::LogLine("error", absl::StrCat("distrnn: error: ", status.message()));
    comm->Abort(ExitCodeFor(status));
  }
  return status;
}

std::string DescribeProcess(const RunOptions& run, const comm::Communicator& comm) {
  return absl::StrCat(comm.backend(), " / ", comm.world_size(), " ranks; ", g_device_setting, "; ",
                      common::DescribeComputeSettings(), "; ", g_memory_setting);
}

}  // namespace distrnn::app
