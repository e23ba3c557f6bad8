// The device rule and the device helpers that need no GPU (common/device.h): which
// device a rank gets, the errors when there is none or too few, precision checks, the
// autocast scope's state, CPU identities of the helpers, deterministic settings.
#include <ATen/autocast_mode.h>
#include <ATen/Context.h>
#include <gtest/gtest.h>
#include <torch/nn/modules/rnn.h>

#include <cstdlib>
#include <set>

#include "common/device.h"

namespace distrnn::testing {
namespace {

using common::DeviceKind;
using common::DevicePlacement;
using common::SelectDevice;

DevicePlacement Node(int rank, int local_rank, int local_size, int visible) {
  return DevicePlacement{rank, local_rank, local_size, visible, "node-a"};
}

TEST(ParseDeviceKind, KnownNamesAndChoices) {
  EXPECT_EQ(*common::ParseDeviceKind("auto"), DeviceKind::kAuto);
  EXPECT_EQ(*common::ParseDeviceKind("CPU"), DeviceKind::kCpu);
  EXPECT_EQ(*common::ParseDeviceKind("cuda"), DeviceKind::kCuda);
  EXPECT_EQ(*common::ParseDeviceKind("gpu"), DeviceKind::kCuda);
  absl::StatusOr<DeviceKind> bad = common::ParseDeviceKind("tpu");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("auto, cpu or cuda"), absl::string_view::npos) << bad.status();
}

TEST(SelectDevice, CpuAndAuto) {
  EXPECT_EQ(*SelectDevice(DeviceKind::kCpu, Node(0, 0, 1, 8), false), c10::Device(c10::kCPU));
  EXPECT_EQ(*SelectDevice(DeviceKind::kAuto, Node(0, 0, 1, 0), false), c10::Device(c10::kCPU));
  EXPECT_EQ(*SelectDevice(DeviceKind::kAuto, Node(5, 1, 2, 2), false), c10::Device(c10::kCUDA, 1));
}

TEST(SelectDevice, LocalRankPicksTheGpuAndNoTwoRanksShareOne) {
  std::set<int> used;
  for (int local = 0; local < 8; ++local) {
    absl::StatusOr<c10::Device> d = SelectDevice(DeviceKind::kCuda, Node(8 + local, local, 8, 8), false);
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_TRUE(d->is_cuda());
    EXPECT_EQ(d->index(), local);
    used.insert(d->index());
  }
  EXPECT_EQ(used.size(), 8u);
  // Fewer ranks than GPUs: the first ones.
  EXPECT_EQ(*SelectDevice(DeviceKind::kCuda, Node(1, 1, 2, 4), false), c10::Device(c10::kCUDA, 1));
}

TEST(SelectDevice, NoVisibleGpuIsOneClearLine) {
  absl::StatusOr<c10::Device> d = SelectDevice(DeviceKind::kCuda, Node(3, 1, 2, 0), false);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(d.status().message(), "no CUDA device visible to rank 3 on host node-a");
}

TEST(SelectDevice, MoreRanksThanGpusNeedsAllowSharedGpu) {
  absl::StatusOr<c10::Device> d = SelectDevice(DeviceKind::kCuda, Node(5, 5, 8, 4), false);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.status().code(), absl::StatusCode::kFailedPrecondition);
  const std::string message(d.status().message());
  EXPECT_NE(message.find("rank 5 on host node-a: 8 ranks on this node but 4 visible CUDA devices"), std::string::npos)
      << message;
  EXPECT_NE(message.find("--allow_shared_gpu"), std::string::npos) << message;
  // Allowed: round robin.
  EXPECT_EQ(*SelectDevice(DeviceKind::kCuda, Node(5, 5, 8, 4), true), c10::Device(c10::kCUDA, 1));
  EXPECT_EQ(*SelectDevice(DeviceKind::kAuto, Node(2, 2, 3, 1), true), c10::Device(c10::kCUDA, 0));
}

TEST(Precision, ParseAndCheck) {
  EXPECT_EQ(*common::ParsePrecision("fp32"), common::Precision::kFp32);
  EXPECT_EQ(*common::ParsePrecision("bf16"), common::Precision::kBf16);
  EXPECT_EQ(*common::ParsePrecision("bfloat16"), common::Precision::kBf16);
  EXPECT_FALSE(common::ParsePrecision("fp8").ok());
  absl::Status cpu = common::CheckPrecision(common::Precision::kBf16, c10::Device(c10::kCPU));
  EXPECT_EQ(cpu.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(cpu.message().find("CUDA only"), absl::string_view::npos) << cpu;
  EXPECT_TRUE(common::CheckPrecision(common::Precision::kBf16, c10::Device(c10::kCUDA, 0)).ok());
  EXPECT_TRUE(common::CheckPrecision(common::Precision::kFp32, c10::Device(c10::kCPU)).ok());
}

// Autocast is thread-local dispatcher state: its switches work without a GPU.
TEST(AutocastScope, Bf16OnCudaOnly) {
  ASSERT_FALSE(at::autocast::is_autocast_enabled(c10::kCUDA));
  {
    common::AutocastScope off(c10::kCUDA);  // fp32: nothing
    EXPECT_FALSE(off.active());
    EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::kCUDA));
  }
  common::SetPrecision(common::Precision::kBf16);
  {
    common::AutocastScope cpu(c10::kCPU);
    EXPECT_FALSE(cpu.active());
    EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::kCPU));
    common::AutocastScope cuda(c10::kCUDA);
    EXPECT_TRUE(cuda.active());
    EXPECT_TRUE(at::autocast::is_autocast_enabled(c10::kCUDA));
    EXPECT_EQ(at::autocast::get_autocast_dtype(c10::kCUDA), at::kBFloat16);
  }
  EXPECT_FALSE(at::autocast::is_autocast_enabled(c10::kCUDA));
  common::SetPrecision(common::Precision::kFp32);
}

TEST(DeviceHelpers, CpuIdentities) {
  at::Tensor t = at::arange(6, at::kLong);
  at::Tensor same = common::ToDevice(t, c10::Device(c10::kCPU));
  EXPECT_EQ(same.data_ptr(), t.data_ptr()) << "no copy on the CPU";
  torch::nn::LSTM lstm(torch::nn::LSTMOptions(4, 3));
  EXPECT_EQ(common::ModuleDevice(*lstm), c10::Device(c10::kCPU));
  EXPECT_TRUE(common::MoveModule(*lstm, c10::Device(c10::kCPU)).ok());
  EXPECT_FALSE(common::HostName().empty());
  EXPECT_GE(common::VisibleCudaDevices(), 0);
}

TEST(DeviceHelpers, DeterministicSettings) {
  unsetenv("CUBLAS_WORKSPACE_CONFIG");
  common::SetDeterministic(false);
  EXPECT_EQ(std::getenv("CUBLAS_WORKSPACE_CONFIG"), nullptr);
  common::SetDeterministic(true);
  ASSERT_NE(std::getenv("CUBLAS_WORKSPACE_CONFIG"), nullptr);
  EXPECT_STREQ(std::getenv("CUBLAS_WORKSPACE_CONFIG"), ":4096:8");
  EXPECT_TRUE(at::globalContext().deterministicCuDNN());
  EXPECT_FALSE(at::globalContext().benchmarkCuDNN());
  EXPECT_TRUE(at::globalContext().deterministicAlgorithms());
}

}  // namespace
}  // namespace distrnn::testing
