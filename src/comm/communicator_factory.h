// Picks and builds the Communicator for --comm=auto|local|mpi|nccl, and the CPU threads
// each rank should use.
#pragma once

#include <functional>
#include <memory>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "comm/communicator.h"
#include "comm/mpi_communicator.h"

namespace distrnn::comm {

enum class CommKind { kAuto, kLocal, kMpi, kNccl };

// "auto" | "local" | "mpi" | "nccl"; anything else is an InvalidArgument listing the
// choices. ("nccl" parses in every build; a build without NCCL refuses it when the
// communicator is made, see NcclBuilt().)
absl::StatusOr<CommKind> ParseCommKind(absl::string_view name);
absl::string_view CommKindName(CommKind kind);

// Looks up an environment variable (nullptr if unset); std::getenv in production,
// a map in tests.
using EnvLookup = std::function<const char*(const char*)>;

// What kAuto means in this environment: kMpi when an MPI launcher started the process
// with a world size > 1, kLocal otherwise. The launcher is recognised by
// OMPI_COMM_WORLD_SIZE (Open MPI), PMI_SIZE (MPICH/Hydra, Intel MPI, srun --mpi=pmi2),
// MPI_LOCALNRANKS (MPICH/Hydra, node-local, so > 1 means > 1 overall), and PMIX_RANK
// (srun --mpi=pmix, PMIx launchers: the size then comes from PMIX_SIZE or
// SLURM_STEP_NUM_TASKS / SLURM_NTASKS; if none is set, kMpi, and MPI says the size).
// Never returns kAuto; never returns kNccl for kAuto (NCCL needs the device, which is
// chosen once the ranks are known: the caller upgrades, see UseNcclForAuto).
CommKind ResolveCommKind(CommKind kind, const EnvLookup& env);

// Builds the communicator: kAuto is resolved with the process environment; kMpi
// initialises MPI (also without a launcher: a singleton world of one). kNccl builds
// the MPI communicator NCCL is layered on: once this rank's GPU is chosen (from its
// local rank) and current, CreateNcclCommunicator (nccl_communicator.h) takes it over.
absl::StatusOr<std::unique_ptr<Communicator>> CreateCommunicator(CommKind kind,
                                                                  const MpiOptions& mpi_options = {});

// Whether this build has the NCCL communicator (and libtorch CUDA).
bool NcclBuilt();
// --comm=auto on CUDA: NCCL when more than one rank trains on CUDA devices and the
// build has it (MpiCommunicator reduces host tensors only).
bool UseNcclForAuto(bool on_cuda, int world_size, bool nccl_built);

// Intra-op threads for this rank when --threads is not given:
// max(1, AllowedCores() / local_size()).
//
// Interplay with mpirun's binding: AllowedCores() is this process's affinity mask.
// - `--bind-to none` (what launch/mpirun.sh uses): every rank sees all the node's cores,
//   so they are divided among the local_size() ranks of the node.
// - `--bind-to core` (Open MPI's default for np <= 2): the mask is one core, so 1.
// - `--bind-to core --map-by slot:PE=k` or `--cpus-per-task=k` (Slurm): the mask is k
//   cores and dividing by local_size() under-uses them; pass --threads=k there.
// - `--bind-to socket` (Open MPI's default for np > 2): ranks on one socket share its
//   mask; dividing by all node ranks is conservative (never oversubscribes).
// Oversubscribing cores with spinning OpenMP threads costs far more than idling one.
int DefaultThreadsPerRank(const Communicator& comm);
// The rule above as a pure function, for tests.
int ThreadsPerRank(int allowed_cores, int local_size);

}  // namespace distrnn::comm
