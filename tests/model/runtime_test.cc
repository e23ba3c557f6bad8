// Process runtime settings that change speed, memory or results: denormal flushing, malloc.
#include "common/runtime.h"

#include <gtest/gtest.h>

#include <sys/resource.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

#include <ATen/ATen.h>
#include <torch/torch.h>

namespace distrnn::common {
namespace {

// 1e-30 * 1e-10 = 1e-40 is a denormal (below 1.2e-38); flushed, it is 0. 2M elements on 2
// threads, so both the main thread and an OpenMP worker compute part of it.
at::Tensor DenormalProducts() {
  SetComputeThreads(2);
  return (at::full({1 << 21}, 1e-30f) * 1e-10f).abs();
}

// Each case runs in a fresh process (threadsafe death tests re-execute the binary), where
// no OpenMP pool exists yet: what a training process sees at start-up.
class RuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override { GTEST_FLAG_SET(death_test_style, "threadsafe"); }
};

// The malloc cases test glibc's allocator, which AddressSanitizer replaces with its own
// (freed blocks wait in a quarantine; mallinfo2 sees none of its heap).
#if defined(__SANITIZE_ADDRESS__)
#define SKIP_UNDER_ASAN() GTEST_SKIP() << "AddressSanitizer replaces glibc's malloc"
#else
#define SKIP_UNDER_ASAN() (void)0
#endif

TEST_F(RuntimeTest, FlushDenormalsReachesTheIntraOpThreads) {
  EXPECT_EXIT(
      {
        if (!FlushDenormals(true)) std::exit(2);  // a CPU without DAZ: reported below
        const bool all_flushed = DenormalProducts().max().item<float>() == 0.0f;
        const bool described = DescribeComputeSettings().find("denormals flushed") != std::string::npos;
        std::exit(all_flushed && described ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(RuntimeTest, DenormalsKeptWithoutIt) {
  EXPECT_EXIT(
      {
        const bool none_flushed = DenormalProducts().min().item<float>() > 0.0f;
        const bool described = DescribeComputeSettings().find("denormals kept") != std::string::npos;
        std::exit(none_flushed && described ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

long ResidentMiB() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6)) / 1024;
  }
  return -1;
}

long MinorFaults() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_minflt;
}

void* Touched(size_t bytes) {  // malloc, then write every page (volatile: not optimised away)
  auto* block = static_cast<volatile char*>(std::malloc(bytes));
  if (block != nullptr) {
    for (size_t i = 0; i < bytes; i += 4096) block[i] = 1;
  }
  return const_cast<char*>(block);
}

// IMDB's length buckets: a BiLSTM over a batch of a different length every step (the
// sequence of lengths fixed). Each freed buffer is a hole the next, longer one does not fit:
// without the trim, +538 MiB resident over the last 16 of these steps (and 20 GiB over a
// whole BiLSTM training, README "IMDB memory"). Here the trim keeps 64 MiB.
TEST_F(RuntimeTest, TrimBoundsTheHeapUnderVaryingSequenceLengths) {
  SKIP_UNDER_ASAN();
  EXPECT_EXIT(
      {
        KeepFreedMemory(64 << 20);
        SetComputeThreads(1);
        torch::manual_seed(0);
        torch::nn::LSTM lstm(torch::nn::LSTMOptions(64, 256).num_layers(2).bidirectional(true));
        uint32_t state = 12345;
        long after_warm_up = 0;
        int trims = 0;
        for (int step = 0; step < 20; ++step) {
          state = state * 1103515245u + 12345u;
          const int64_t length = 50 + (state >> 16) % 600;
          auto output = std::get<0>(lstm->forward(torch::randn({length, 8, 64})));
          output[-1].sum().backward();
          output = at::Tensor();
          trims += TrimFreedMemory() ? 1 : 0;
          if (step == 3) after_warm_up = ResidentMiB();
        }
        std::exit(ResidentMiB() - after_warm_up < 150 && trims > 0 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

// What the settings are for: a buffer freed and allocated again (every training step) is
// served from pages already resident, with no new page faults (~11 us each in these VMs).
TEST_F(RuntimeTest, FreedBuffersAreReusedWithoutPageFaults) {
  SKIP_UNDER_ASAN();
  EXPECT_EXIT(
      {
        KeepFreedMemory(64 << 20);
        constexpr size_t kBytes = 30 << 20;  // 7,680 pages; glibc's default would mmap it
        std::free(Touched(kBytes));
        const long faults_before = MinorFaults();
        void* again = Touched(kBytes);
        const long faults = MinorFaults() - faults_before;
        std::free(again);
        std::exit(faults < 64 ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(RuntimeTest, UserMallocSettingsAreLeftAlone) {
  EXPECT_EXIT(
      {
        setenv("MALLOC_TOP_PAD_", "0", 1);
        const std::string described = KeepFreedMemory(64 << 20);
        std::exit(described.find("as set by MALLOC_TOP_PAD_") != std::string::npos ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

}  // namespace
}  // namespace distrnn::common
