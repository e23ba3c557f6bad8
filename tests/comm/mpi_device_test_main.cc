// gtest main of the multi-rank suites parameterised by device:
//
//   mpiexec -n N test_mpi_device --expected_world_size=N --device=cpu    # MPI, host tensors
//   mpiexec -n N test_mpi_device --expected_world_size=N --device=cuda   # NCCL on GPUs
//
// - The CUDA instance exits 77 on every rank before MPI starts when this host sees no
//   CUDA device (CTest SKIP_RETURN_CODE: skipped, never passed).
// - DeviceComm() is the world MpiCommunicator on CPU, and on CUDA an NcclCommunicator
//   over a second MpiCommunicator, on cuda:(local rank % visible devices).
// - As in tests/mpi/mpi_test_main.cc: the world size must be --expected_world_size,
//   rank 0 prints gtest's output, other ranks their failures with "[rank r/W]", and the
//   failure count is summed over the ranks so any rank's failure fails every rank.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "comm/device_test_env.h"
#include "comm/mpi_communicator.h"
#include "comm/nccl_communicator.h"
#include "common/device.h"
#include "common/logging.h"
#include "common/runtime.h"

namespace distrnn::testing {
namespace {

std::unique_ptr<comm::MpiCommunicator> g_world;
std::unique_ptr<comm::Communicator> g_device_comm;  // NCCL on CUDA; null on CPU
c10::Device g_device(c10::kCPU);

class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  RankFailurePrinter(int rank, int world)
      : prefix_("[rank " + std::to_string(rank) + "/" + std::to_string(world) + "] ") {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "%s%s:%d: Failure\n%s%s\n", prefix_.c_str(), result.file_name() ? result.file_name() : "?",
                 result.line_number(), prefix_.c_str(), result.message());
  }

 private:
  std::string prefix_;
};

}  // namespace

c10::Device TestDevice() { return g_device; }
comm::Communicator& DeviceComm() { return g_device_comm ? *g_device_comm : *g_world; }

}  // namespace distrnn::testing

int main(int argc, char** argv) {
  namespace common = distrnn::common;
  namespace comm = distrnn::comm;
  namespace testing = distrnn::testing;
  ::testing::InitGoogleTest(&argc, argv);
  int expected_world_size = -1;
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--expected_world_size=", 22) == 0) expected_world_size = std::atoi(argv[i] + 22);
    if (std::strncmp(argv[i], "--device=", 9) == 0) device = argv[i] + 9;
  }
  const bool cuda = device == "cuda";
  const int visible = common::VisibleCudaDevices();
  if (cuda && visible == 0) {
    std::printf("no CUDA device visible on %s: the CUDA instance of this suite is skipped (exit 77)\n",
                common::HostName().c_str());
    return 77;
  }
  comm::MpiOptions options;
  options.collective_timeout_s = 120;
  auto world = comm::MpiCommunicator::Create(options);
  if (!world.ok()) {
    std::fprintf(stderr, "MPI set-up failed: %s\n", std::string(world.status().message()).c_str());
    return 1;
  }
  testing::g_world = std::move(world).value();
  const int rank = testing::g_world->rank(), size = testing::g_world->world_size();
  common::SetLogRank(rank, size);
  common::SetComputeThreads(1);
  if (expected_world_size < 1 || size != expected_world_size) {
    std::fprintf(stderr, "[rank %d/%d] world size %d but --expected_world_size=%d\n", rank, size, size,
                 expected_world_size);
    testing::g_world.reset();
    return 1;
  }
  if (cuda) {
    const int local = testing::g_world->local_rank();
    testing::g_device = c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(local % visible));
    common::SetDeterministic(true);
    absl::Status status = common::ActivateDevice(testing::g_device);
    auto host = comm::MpiCommunicator::Create(options);
    if (status.ok() && host.ok()) {
      comm::NcclOptions nccl_options;
      nccl_options.collective_timeout_s = 120;
      auto nccl = comm::CreateNcclCommunicator(std::move(host).value(), testing::g_device.index(), nccl_options);
      if (nccl.ok()) {
        testing::g_device_comm = std::move(nccl).value();
      } else {
        status = nccl.status();
      }
    } else if (status.ok()) {
      status = host.status();
    }
    if (!status.ok()) {
      std::fprintf(stderr, "[rank %d/%d] NCCL set-up failed: %s\n", rank, size, std::string(status.message()).c_str());
      testing::g_world->Abort(1);
    }
  }
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new testing::RankFailurePrinter(rank, size));
  }
  const int gtest_result = RUN_ALL_TESTS();  // the failures are counted over the ranks below
  (void)gtest_result;
  const int failed_here = ::testing::UnitTest::GetInstance()->failed_test_count();
  absl::StatusOr<double> failed = comm::AllReduceScalar(*testing::g_world, failed_here, comm::ReduceOp::kSum);
  int exit_code = 0;
  if (!failed.ok() || *failed > 0) {
    if (rank == 0) std::fprintf(stderr, "failed tests summed over %d ranks: %g\n", size, failed.ok() ? *failed : -1.0);
    exit_code = 1;
  }
  testing::g_device_comm.reset();
  testing::g_world.reset();
  return exit_code;
}
