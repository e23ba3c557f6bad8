// The distrnn binary's device and NCCL start-up, end to end (one process and mpiexec -n 2):
//  - --device=cuda or --comm=nccl without a visible GPU: every rank ends with exit 2
//    and one line "no CUDA device visible to rank r on host h";
//  - --precision=bf16 on the CPU and unknown --device values: one clear line, exit 2;
//  - each rank's start-up line names host, local rank, device and the NCCL it loaded
//    (the wheel's copy, the one libtorch loads).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "common/device.h"
#include "support/temp_dir.h"

namespace distrnn {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const char kTiny[] =
    " train --task=copy --run_dir= --threads=1 --num_layers=1 --hidden_size=8 --embedding_size=8 --batch_size=4"
    " --copy_train_symbols=3 --copy_train_length=3 --copy_test_symbols=4 --copy_test_length=4"
    " --copy_train_samples=16 --copy_test_samples=4 --eval_batch_size=4 --max_steps=1";

std::string Mpiexec(int ranks) {
  return std::string("timeout -k 10 120 env OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ") + DISTRNN_MPIEXEC +
         " -n " + std::to_string(ranks) + " --oversubscribe ";
}

class DeviceCliTest : public ::testing::Test {
 protected:
  int Run(const std::string& prefix, const std::string& args, std::string* output, double* seconds = nullptr) {
    const auto start = std::chrono::steady_clock::now();
    const int rc = testing::RunCommand(prefix + testing::DistrnnBinary() + args, output);
    if (seconds) *seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return rc;
  }
};

// The no-GPU errors cannot occur where a GPU is visible.
#define DISTRNN_SKIP_WITH_A_GPU()                                                                        \
  if (common::VisibleCudaDevices() > 0) GTEST_SKIP() << "a CUDA device is visible: no-GPU errors cannot occur"

TEST_F(DeviceCliTest, NoGpuOneRank) {
  DISTRNN_SKIP_WITH_A_GPU();
  for (const char* flag : {" --device=cuda", " --comm=nccl", " --comm=nccl --device=cuda"}) {
    std::string output;
    EXPECT_EQ(Run("", std::string(kTiny) + flag, &output), 2) << flag << "\n" << output;
    EXPECT_THAT(output, HasSubstr("distrnn: error: no CUDA device visible to rank 0 on host " + common::HostName()))
        << flag;
    EXPECT_EQ(Count(output, "distrnn: error:"), 1) << flag << "\n" << output;
    EXPECT_THAT(output, Not(HasSubstr("Exception raised from")));
    EXPECT_THAT(output, Not(HasSubstr("| epoch")));
  }
}

TEST_F(DeviceCliTest, NoGpuTwoRanksEveryRankEnds) {
  DISTRNN_SKIP_WITH_A_GPU();
  for (const char* flag : {" --device=cuda", " --comm=nccl"}) {
    std::string output;
    double seconds = 0;
    EXPECT_EQ(Run(Mpiexec(2), std::string(kTiny) + flag, &output, &seconds), 2) << flag << "\n" << output;
    for (int r = 0; r < 2; ++r) {
      EXPECT_THAT(output, HasSubstr("distrnn: error: no CUDA device visible to rank " + std::to_string(r) +
                                    " on host " + common::HostName()))
          << flag << "\n" << output;
    }
    EXPECT_EQ(Count(output, "distrnn: error:"), 2) << "one line per rank\n" << output;
    EXPECT_THAT(output, Not(HasSubstr("MPI_ABORT")));  // a clean exit 2 on every rank, not an abort
    EXPECT_LT(seconds, 60);
  }
}

TEST_F(DeviceCliTest, Bf16OnCpuAndUnknownDevicesAreRefused) {
  std::string output;
  EXPECT_EQ(Run("", std::string(kTiny) + " --device=cpu --precision=bf16", &output), 2) << output;
  EXPECT_THAT(output, HasSubstr("--precision=bf16 autocasts on CUDA only"));
  EXPECT_EQ(Count(output, "distrnn: error:"), 1) << output;
  EXPECT_EQ(Run("", std::string(kTiny) + " --device=tpu", &output), 2) << output;
  EXPECT_THAT(output, HasSubstr("unknown --device=tpu; choose auto, cpu or cuda"));
  EXPECT_EQ(Run("", std::string(kTiny) + " --precision=fp8", &output), 2) << output;
  EXPECT_THAT(output, HasSubstr("choose fp32 or bf16"));
}

TEST_F(DeviceCliTest, EveryRankNamesHostLocalRankDeviceAndNccl) {
  std::string one, two;
  const std::string args = std::string(kTiny) + " --device=cpu";
  ASSERT_EQ(Run("", args, &one), 0) << one;
  ASSERT_EQ(Run(Mpiexec(2), args, &two), 0) << two;
  const std::string host = common::HostName();
  EXPECT_THAT(one, HasSubstr("[rank 0/1] [device] host " + host + ", local rank 0/1, device cpu, fp32, "));
  EXPECT_THAT(two, HasSubstr("[rank 0/2] [device] host " + host + ", local rank 0/2, device cpu, fp32, "));
  EXPECT_THAT(two, HasSubstr("[rank 1/2] [device] host " + host + ", local rank 1/2, device cpu, fp32, "));
#ifdef DISTRNN_EXPECTED_NCCL_LIBRARY
  // The binary itself loaded the NCCL FindNCCL selected, and its version matches nccl.h.
  const std::string nccl = std::string(DISTRNN_EXPECTED_NCCL_VERSION) + " (compiled against " +
                           DISTRNN_EXPECTED_NCCL_VERSION + ", " + DISTRNN_EXPECTED_NCCL_LIBRARY + ")";
  EXPECT_THAT(one, HasSubstr("NCCL " + nccl));
  EXPECT_EQ(Count(two, "NCCL " + nccl), 2) << two;
#else
  EXPECT_THAT(one, HasSubstr("NCCL not built"));
#endif
}

}  // namespace
}  // namespace distrnn
