// The device each rank computes on, and moving work onto it.
//
// - --device=auto|cpu|cuda: SelectDevice() is the rule (pure, unit-tested): cpu; cuda
//   as cuda:(local_rank % visible devices); auto = cuda when a device is visible.
//   More ranks on a node than visible GPUs is an error unless shared GPUs are allowed
//   (two ranks on one GPU run, but slowly and without NCCL's one-rank-per-GPU rule).
// - ActivateDevice() makes the chosen GPU current before any CUDA allocation, so no
//   rank creates a context on another rank's GPU.
// - ToDevice(): batches are built on the host; on CUDA they are staged in pinned
//   memory and copied with non_blocking (the caching host allocator keeps the pinned
//   block until the copy has finished). On CPU the host tensor itself is returned.
// - MoveModule(): module.to(device), then flatten_parameters() on libtorch's
//   LSTM/GRU/RNN modules so cuDNN sees one contiguous weight buffer.
// - --precision=fp32|bf16: bf16 autocasts the forward pass on CUDA (parameters,
//   gradients and optimizer stay fp32). The choice is process-wide, like libtorch's own
//   autocast state; AutocastScope applies it around a forward pass.
// - --deterministic: deterministic cuDNN/cuBLAS (CUBLAS_WORKSPACE_CONFIG), no TF32,
//   deterministic algorithms where libtorch has them; for equivalence tests on GPUs.
//
// Heavy headers stay in device.cc; modules are forward-declared.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace torch::nn {
class Module;
}

namespace distrnn::common {

enum class DeviceKind { kAuto, kCpu, kCuda };
absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view name);
const char* DeviceKindName(DeviceKind kind);

// Where a rank runs, for the choice and its messages.
struct DevicePlacement {
  int rank = 0;
  int local_rank = 0;
  int local_size = 1;
  int visible_devices = 0;  // CUDA devices this process can see
  std::string host;
};

// The device of this rank (see the top). FailedPrecondition "no CUDA device visible to
// rank r on host h" when CUDA is required and none is visible, or naming the counts
// when the node has more ranks than GPUs and sharing is not allowed.
absl::StatusOr<c10::Device> SelectDevice(DeviceKind kind, const DevicePlacement& where, bool allow_shared_gpu);

// CUDA devices visible to this process (0 without a CUDA build, driver or device).
// Does not create a CUDA context.
int VisibleCudaDevices();
// Makes `device` current (CUDA); nothing for CPU.
absl::Status ActivateDevice(c10::Device device);
// "cpu" or the GPU's name ("NVIDIA A100-SXM4-80GB").
std::string DeviceName(c10::Device device);
// This machine's host name.
std::string HostName();

enum class Precision { kFp32, kBf16 };
absl::StatusOr<Precision> ParsePrecision(absl::string_view name);
const char* PrecisionName(Precision precision);
// bf16 needs a CUDA device: refused on CPU with a message saying so.
absl::Status CheckPrecision(Precision precision, c10::Device device);
// The process-wide precision AutocastScope applies (fp32 until set).
void SetPrecision(Precision precision);
Precision CurrentPrecision();

// While alive: bf16 autocast for `device_type` when the precision is bf16 and the
// device is CUDA; nothing otherwise.
class AutocastScope {
 public:
  explicit AutocastScope(c10::DeviceType device_type);
  ~AutocastScope();
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;
  bool active() const { return active_; }

 private:
  bool active_ = false;
  bool was_enabled_ = false;
  c10::ScalarType previous_dtype_ = c10::ScalarType::Undefined;
};

// Deterministic kernels (see the top). Call before the first CUDA kernel.
void SetDeterministic(bool deterministic);

// `host` on `device` (see the top).
at::Tensor ToDevice(const at::Tensor& host, c10::Device device);
// The device of the module's first parameter (CPU if it has none).
c10::Device ModuleDevice(const torch::nn::Module& module);
// module.to(device), then flatten_parameters() of its libtorch RNN modules.
absl::Status MoveModule(torch::nn::Module& module, c10::Device device);
// flatten_parameters() of the libtorch LSTM/GRU/RNN modules in `module` (after loading
// weights into a model on CUDA; a no-op on CPU).
void FlattenRecurrentParameters(torch::nn::Module& module);

}  // namespace distrnn::common
