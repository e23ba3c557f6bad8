// gtest main of the single-process suites parameterised by device:
//
//   test_comm_device --device=cpu     # runs here
//   test_comm_device --device=cuda    # runs where a GPU is visible
//
// The CUDA instance exits 77 when no CUDA device is visible: CTest's SKIP_RETURN_CODE
// shows it as skipped, never as passed.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstring>
#include <string>

#include "comm/device_test_env.h"
#include "common/device.h"

namespace distrnn::testing {
namespace {
c10::Device g_device(c10::kCPU);
}  // namespace

c10::Device TestDevice() { return g_device; }

}  // namespace distrnn::testing

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  std::string device = "cpu";
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--device=", 9) == 0) device = argv[i] + 9;
  }
  if (device == "cuda") {
    const int visible = distrnn::common::VisibleCudaDevices();
    if (visible == 0) {
      std::printf("no CUDA device visible: the CUDA instance of this suite is skipped (exit 77)\n");
      return 77;
    }
    distrnn::testing::g_device = c10::Device(c10::kCUDA, 0);
    distrnn::common::SetDeterministic(true);
    if (absl::Status s = distrnn::common::ActivateDevice(distrnn::testing::g_device); !s.ok()) {
      std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
      return 1;
    }
  } else if (device != "cpu") {
    std::fprintf(stderr, "--device must be cpu or cuda, got %s\n", device.c_str());
    return 2;
  }
  std::printf("device under test: %s\n", distrnn::testing::g_device.str().c_str());
  return RUN_ALL_TESTS();
}
