#include "comm/communicator_factory.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace distrnn::testing {
namespace {

using comm::CommKind;

comm::EnvLookup Env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const char* name) -> const char* {
    auto it = vars.find(name);
    return it == vars.end() ? nullptr : it->second.c_str();
  };
}

TEST(ParseCommKind, KnownNames) {
  EXPECT_EQ(*comm::ParseCommKind("auto"), CommKind::kAuto);
  EXPECT_EQ(*comm::ParseCommKind("local"), CommKind::kLocal);
  EXPECT_EQ(*comm::ParseCommKind("mpi"), CommKind::kMpi);
  EXPECT_EQ(*comm::ParseCommKind("MPI"), CommKind::kMpi);
  for (CommKind k : {CommKind::kAuto, CommKind::kLocal, CommKind::kMpi, CommKind::kNccl}) {
    EXPECT_EQ(*comm::ParseCommKind(comm::CommKindName(k)), k);
  }
}

TEST(ParseCommKind, Nccl) {
  EXPECT_EQ(*comm::ParseCommKind("nccl"), CommKind::kNccl);
  EXPECT_EQ(comm::CommKindName(CommKind::kNccl), "nccl");
  // --comm=auto never resolves to NCCL from the environment alone (it needs the device).
  EXPECT_EQ(comm::ResolveCommKind(CommKind::kNccl, Env({})), CommKind::kNccl);
}

TEST(UseNcclForAuto, OnlyForSeveralRanksOnCudaWithNccl) {
  EXPECT_TRUE(comm::UseNcclForAuto(/*on_cuda=*/true, /*world_size=*/2, /*nccl_built=*/true));
  EXPECT_FALSE(comm::UseNcclForAuto(true, 1, true));   // one GPU: no communication
  EXPECT_FALSE(comm::UseNcclForAuto(false, 4, true));  // CPU tensors: MPI
  EXPECT_FALSE(comm::UseNcclForAuto(true, 4, false));  // no NCCL in this build
}

TEST(ParseCommKind, UnknownListsChoices) {
  absl::StatusOr<CommKind> kind = comm::ParseCommKind("gloo");
  ASSERT_FALSE(kind.ok());
  EXPECT_EQ(kind.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(kind.status().message().find("auto, local, mpi or nccl"), absl::string_view::npos) << kind.status();
}

TEST(ResolveCommKind, ExplicitKindsAreKept) {
  EXPECT_EQ(comm::ResolveCommKind(CommKind::kLocal, Env({{"OMPI_COMM_WORLD_SIZE", "4"}})), CommKind::kLocal);
  EXPECT_EQ(comm::ResolveCommKind(CommKind::kMpi, Env({})), CommKind::kMpi);
}

TEST(ResolveCommKind, AutoFollowsTheLauncher) {
  auto resolve = [](std::map<std::string, std::string> vars) {
    return comm::ResolveCommKind(CommKind::kAuto, Env(std::move(vars)));
  };
  EXPECT_EQ(resolve({}), CommKind::kLocal);
  EXPECT_EQ(resolve({{"OMPI_COMM_WORLD_SIZE", "2"}}), CommKind::kMpi);
  EXPECT_EQ(resolve({{"OMPI_COMM_WORLD_SIZE", "1"}}), CommKind::kLocal);  // mpirun -np 1
  EXPECT_EQ(resolve({{"PMI_SIZE", "3"}}), CommKind::kMpi);
  EXPECT_EQ(resolve({{"PMI_SIZE", "1"}}), CommKind::kLocal);
  EXPECT_EQ(resolve({{"MPI_LOCALNRANKS", "2"}}), CommKind::kMpi);
  EXPECT_EQ(resolve({{"PMIX_RANK", "0"}, {"SLURM_STEP_NUM_TASKS", "8"}}), CommKind::kMpi);
  EXPECT_EQ(resolve({{"PMIX_RANK", "0"}, {"SLURM_NTASKS", "1"}}), CommKind::kLocal);
  EXPECT_EQ(resolve({{"PMIX_RANK", "0"}}), CommKind::kMpi);
  EXPECT_EQ(resolve({{"OMPI_COMM_WORLD_SIZE", "garbage"}}), CommKind::kLocal);
  EXPECT_EQ(resolve({{"SLURM_NTASKS", "4"}}), CommKind::kLocal);  // sbatch without srun/mpirun
}

TEST(CreateCommunicator, LocalWithoutLauncher) {
  absl::StatusOr<std::unique_ptr<comm::Communicator>> comm = comm::CreateCommunicator(CommKind::kLocal);
  ASSERT_TRUE(comm.ok()) << comm.status();
  EXPECT_STREQ((*comm)->backend(), "local");
  EXPECT_EQ((*comm)->world_size(), 1);
  EXPECT_GE(comm::DefaultThreadsPerRank(**comm), 1);
}

TEST(ThreadsPerRank, DividesCoresAmongNodeRanks) {
  EXPECT_EQ(comm::ThreadsPerRank(8, 1), 8);
  EXPECT_EQ(comm::ThreadsPerRank(8, 2), 4);
  EXPECT_EQ(comm::ThreadsPerRank(8, 3), 2);
  EXPECT_EQ(comm::ThreadsPerRank(1, 2), 1);  // --bind-to core: one core each
  EXPECT_EQ(comm::ThreadsPerRank(2, 4), 1);  // oversubscribed: never 0
  EXPECT_EQ(comm::ThreadsPerRank(4, 0), 4);
}

}  // namespace
}  // namespace distrnn::testing
