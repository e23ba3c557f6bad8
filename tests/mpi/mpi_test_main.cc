// gtest main for multi-rank tests, run as `mpiexec -n N test_x --expected_world_size=N`.
//
// - MPI comes up through MpiCommunicator (the code under test) before the tests run.
// - The world size must equal --expected_world_size (given by CTest), so the suite
//   cannot "pass" as one process without testing anything.
// - Only rank 0 prints gtest's normal output; other ranks print their failures only,
//   each line prefixed with "[rank r/W]".
// - The number of failed tests is summed over ranks (MPI all-reduce) and every rank
//   exits 1 if any rank failed, so mpiexec fails whichever rank saw the failure.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "common/logging.h"
#include "common/runtime.h"
#include "mpi/mpi_test_env.h"

namespace distrnn::testing {
namespace {

std::unique_ptr<comm::MpiCommunicator> g_world;

// Prints only failed assertions, prefixed with the rank.
class RankFailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit RankFailurePrinter(int rank, int world) : prefix_("[rank " + std::to_string(rank) + "/" +
                                                             std::to_string(world) + "] ") {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "%s%s:%d: Failure\n%s%s\n", prefix_.c_str(),
                 result.file_name() ? result.file_name() : "?", result.line_number(), prefix_.c_str(),
                 result.message());
  }
  void OnTestEnd(const ::testing::TestInfo& info) override {
    if (info.result()->Failed()) {
      std::fprintf(stderr, "%s[  FAILED  ] %s.%s\n", prefix_.c_str(), info.test_suite_name(), info.name());
    }
  }

 private:
  std::string prefix_;
};

}  // namespace

comm::MpiCommunicator& WorldComm() { return *g_world; }

}  // namespace distrnn::testing

int main(int argc, char** argv) {
  using distrnn::testing::g_world;
  ::testing::InitGoogleTest(&argc, argv);
  int expected_world_size = -1;
  for (int i = 1; i < argc; ++i) {
    const char* flag = "--expected_world_size=";
    if (std::strncmp(argv[i], flag, std::strlen(flag)) == 0) expected_world_size = std::atoi(argv[i] + std::strlen(flag));
  }
  distrnn::comm::MpiOptions options;
  options.collective_timeout_s = 120;  // a hung collective fails the test instead of the CTest timeout
  auto world = distrnn::comm::MpiCommunicator::Create(options);
  if (!world.ok()) {
    std::fprintf(stderr, "MPI set-up failed: %s\n", std::string(world.status().message()).c_str());
    return 1;
  }
  g_world = std::move(world).value();
  const int rank = g_world->rank(), size = g_world->world_size();
  distrnn::common::SetLogRank(rank, size);
  distrnn::common::SetComputeThreads(1);
  if (expected_world_size < 1 || size != expected_world_size) {
    // Every rank sees the same world size, so every rank exits here: no collective waits.
    std::fprintf(stderr, "[rank %d/%d] world size %d but --expected_world_size=%d: run under mpiexec -n %d\n", rank,
                 size, size, expected_world_size, expected_world_size);
    g_world.reset();
    return 1;
  }
  if (rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new distrnn::testing::RankFailurePrinter(rank, size));
  }
  (void)RUN_ALL_TESTS();
  const int failed_here = ::testing::UnitTest::GetInstance()->failed_test_count();
  absl::StatusOr<double> failed_anywhere =
      distrnn::comm::AllReduceScalar(*g_world, failed_here, distrnn::comm::ReduceOp::kSum);
  int exit_code = 0;
  if (!failed_anywhere.ok()) {
    std::fprintf(stderr, "[rank %d/%d] reducing the test results failed: %s\n", rank, size,
                 std::string(failed_anywhere.status().message()).c_str());
    exit_code = 1;
  } else if (*failed_anywhere > 0) {
    if (rank == 0) std::fprintf(stderr, "%g failed test(s) summed over %d ranks\n", *failed_anywhere, size);
    exit_code = 1;
  }
  g_world.reset();  // MPI_Finalize
  return exit_code;
}
