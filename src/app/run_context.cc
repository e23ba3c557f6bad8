#include "app/run_context.h"

#include "absl/strings/str_cat.h"
#include "app/exit_codes.h"
#include "comm/communicator_factory.h"
#include "common/logging.h"
#include "common/runtime.h"
#include "common/status_macros.h"

namespace distrnn::app {
namespace {
std::string g_memory_setting;
}  // namespace

absl::Status RunWithCommunicator(const RunOptions& run,
                                 const std::function<absl::Status(comm::Communicator&)>& body) {
  g_memory_setting = common::KeepFreedMemory();
  ASSIGN_OR_RETURN(comm::CommKind kind, comm::ParseCommKind(run.comm));
  comm::MpiOptions mpi_options;
  mpi_options.collective_timeout_s = run.collective_timeout_s;
  ASSIGN_OR_RETURN(std::unique_ptr<comm::Communicator> comm, comm::CreateCommunicator(kind, mpi_options));
  common::SetLogRank(comm->rank(), comm->world_size());
  common::SetComputeThreads(run.threads > 0 ? run.threads : comm::DefaultThreadsPerRank(*comm));
  if (comm->world_size() > 1) {
    common::LogLine("comm", absl::StrCat("backend ", comm->backend(), ", local rank ", comm->local_rank(), "/",
                                       comm->local_size(), ", ", common::DescribeComputeSettings()));
  }
  absl::Status status = body(*comm);
  if (!status.ok() && comm->world_size() > 1) {
    // Peers may be waiting in a collective: end the whole job, naming this rank.
    common::LogLine("error", absl::StrCat("distrnn: error: ", status.message()));
    comm->Abort(ExitCodeFor(status));
  }
  return status;
}

std::string DescribeProcess(const RunOptions& run, const comm::Communicator& comm) {
  return absl::StrCat(comm.backend(), " / ", comm.world_size(), " ranks; ", common::DescribeComputeSettings(), "; ",
                      g_memory_setting);
}

}  // namespace distrnn::app
