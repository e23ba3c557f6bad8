#include "comm/communicator_factory.h"

#include <algorithm>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "comm/cuda_api.h"
#include "comm/local_communicator.h"
#include "comm/nccl_api.h"
#include "common/runtime.h"

namespace distrnn::comm {
namespace {

// The value of `name` as a positive int, or 0 if unset or not a number.
int EnvInt(const EnvLookup& env, const char* name) {
  const char* value = env(name);
  int n = 0;
  if (value == nullptr || !absl::SimpleAtoi(value, &n) || n < 0) return 0;
  return n;
}

}  // namespace

absl::StatusOr<CommKind> ParseCommKind(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "auto") return CommKind::kAuto;
  if (lower == "local") return CommKind::kLocal;
  if (lower == "mpi") return CommKind::kMpi;
  if (lower == "nccl") return CommKind::kNccl;
  return absl::InvalidArgumentError(absl::StrCat("unknown --comm=", name, "; choose auto, local, mpi or nccl"));
}

absl::string_view CommKindName(CommKind kind) {
  switch (kind) {
    case CommKind::kAuto: return "auto";
    case CommKind::kLocal: return "local";
    case CommKind::kMpi: return "mpi";
    case CommKind::kNccl: return "nccl";
  }
  return "?";
}

CommKind ResolveCommKind(CommKind kind, const EnvLookup& env) {
  if (kind != CommKind::kAuto) return kind;
  for (const char* size_var : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (EnvInt(env, size_var) > 1) return CommKind::kMpi;
  }
  if (env("PMIX_RANK") != nullptr) {
    for (const char* size_var : {"PMIX_SIZE", "SLURM_STEP_NUM_TASKS", "SLURM_NTASKS"}) {
      if (env(size_var) != nullptr) return EnvInt(env, size_var) > 1 ? CommKind::kMpi : CommKind::kLocal;
    }
    return CommKind::kMpi;  // a PMIx launcher with no size in sight: let MPI tell
  }
  return CommKind::kLocal;
}

absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(CommKind kind, const MpiOptions& mpi_options) {
  switch (ResolveCommKind(kind, [](const char* name) { return std::getenv(name); })) {
    case CommKind::kMpi:
    case CommKind::kNccl: {
      absl::StatusOr<std::unique_ptr<MpiCommunicator>> mpi = MpiCommunicator::Create(mpi_options);
      if (!mpi.ok()) return mpi.status();
      return std::unique_ptr<Communicator>(std::move(mpi).value());
    }
    case CommKind::kLocal:
    case CommKind::kAuto:
      break;
  }
  return std::unique_ptr<Communicator>(std::make_unique<LocalCommunicator>());
}

bool NcclBuilt() { return MakeNcclApi().ok() && MakeCudaApi().ok(); }

bool UseNcclForAuto(bool on_cuda, int world_size, bool nccl_built) { return on_cuda && world_size > 1 && nccl_built; }

int ThreadsPerRank(int allowed_cores, int local_size) {
  return std::max(1, allowed_cores / std::max(1, local_size));
}

int DefaultThreadsPerRank(const Communicator& comm) {
  return ThreadsPerRank(common::AllowedCores(), comm.local_size());
}

}  // namespace distrnn::comm
