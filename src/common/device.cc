#include "common/device.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/rnn.h>

#if DISTRNN_WITH_CUDA
#include <c10/cuda/CUDAFunctions.h>
#include <cuda_runtime_api.h>
#endif

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/torch_status.h"

namespace distrnn::common {
namespace {

std::atomic<Precision> g_precision{Precision::kFp32};

}  // namespace

absl::StatusOr<DeviceKind> ParseDeviceKind(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "auto") return DeviceKind::kAuto;
  if (lower == "cpu") return DeviceKind::kCpu;
  if (lower == "cuda" || lower == "gpu") return DeviceKind::kCuda;
  return absl::InvalidArgumentError(absl::StrCat("unknown --device=", name, "; choose auto, cpu or cuda"));
}

const char* DeviceKindName(DeviceKind kind) {
  switch (kind) {
    case DeviceKind::kAuto: return "auto";
    case DeviceKind::kCpu: return "cpu";
    case DeviceKind::kCuda: return "cuda";
  }
  return "?";
}

absl::StatusOr<c10::Device> SelectDevice(DeviceKind kind, const DevicePlacement& where, bool allow_shared_gpu) {
  if (kind == DeviceKind::kCpu || (kind == DeviceKind::kAuto && where.visible_devices <= 0)) {
    return c10::Device(c10::kCPU);
  }
  if (where.visible_devices <= 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("no CUDA device visible to rank ", where.rank, " on host ", where.host));
  }
  if (where.local_size > where.visible_devices && !allow_shared_gpu) {
    return absl::FailedPreconditionError(absl::StrCat(
        "rank ", where.rank, " on host ", where.host, ": ", where.local_size, " ranks on this node but ",
        where.visible_devices, " visible CUDA device", where.visible_devices == 1 ? "" : "s",
        "; start one rank per GPU, or pass --allow_shared_gpu to let ranks share one"));
  }
  return c10::Device(c10::kCUDA, static_cast<c10::DeviceIndex>(where.local_rank % where.visible_devices));
}

int VisibleCudaDevices() {
#if DISTRNN_WITH_CUDA
  return static_cast<int>(c10::cuda::device_count());  // noexcept; 0 without driver or device
#else
  return 0;
#endif
}

absl::Status ActivateDevice(c10::Device device) {
  if (!device.is_cuda()) return absl::OkStatus();
#if DISTRNN_WITH_CUDA
  return GuardTorch(absl::StrCat("cannot make ", device.str(), " current"), [&] {
    c10::cuda::set_device(device.index());
    return absl::OkStatus();
  });
#else
  return absl::FailedPreconditionError("this build's libtorch has no CUDA support");
#endif
}

std::string DeviceName(c10::Device device) {
  if (!device.is_cuda()) return "cpu";
#if DISTRNN_WITH_CUDA
  cudaDeviceProp prop;
  if (cudaGetDeviceProperties(&prop, device.index()) == cudaSuccess) return prop.name;
  (void)cudaGetLastError();
#endif
  return device.str();
}

std::string HostName() {
  char name[256] = {};
  if (gethostname(name, sizeof(name) - 1) != 0) return "unknown-host";
  return name;
}

absl::StatusOr<Precision> ParsePrecision(absl::string_view name) {
  const std::string lower = absl::AsciiStrToLower(name);
  if (lower == "fp32" || lower == "float32") return Precision::kFp32;
  if (lower == "bf16" || lower == "bfloat16") return Precision::kBf16;
  return absl::InvalidArgumentError(absl::StrCat("unknown --precision=", name, "; choose fp32 or bf16"));
}

const char* PrecisionName(Precision precision) { return precision == Precision::kBf16 ? "bf16" : "fp32"; }

absl::Status CheckPrecision(Precision precision, c10::Device device) {
  if (precision == Precision::kBf16 && !device.is_cuda()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--precision=bf16 autocasts on CUDA only; this rank runs on ", device.str(), " (use --precision=fp32)"));
  }
  return absl::OkStatus();
}

void SetPrecision(Precision precision) { g_precision.store(precision); }
Precision CurrentPrecision() { return g_precision.load(); }

AutocastScope::AutocastScope(c10::DeviceType device_type)
    : active_(device_type == c10::kCUDA && CurrentPrecision() == Precision::kBf16) {
  if (!active_) return;
  was_enabled_ = at::autocast::is_autocast_enabled(c10::kCUDA);
  previous_dtype_ = at::autocast::get_autocast_dtype(c10::kCUDA);
  at::autocast::set_autocast_enabled(c10::kCUDA, true);
  at::autocast::set_autocast_dtype(c10::kCUDA, at::kBFloat16);
  at::autocast::increment_nesting();
}

AutocastScope::~AutocastScope() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(c10::kCUDA, was_enabled_);
  at::autocast::set_autocast_dtype(c10::kCUDA, previous_dtype_);
}

void SetDeterministic(bool deterministic) {
  if (!deterministic) return;
  // cuBLAS reads this when it creates its first handle: before any CUDA kernel.
  setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
  at::Context& ctx = at::globalContext();
  ctx.setDeterministicCuDNN(true);
  ctx.setBenchmarkCuDNN(false);
  ctx.setAllowTF32CuDNN(false);
  ctx.setAllowTF32CuBLAS(false);
  // warn_only: an op without a deterministic kernel warns instead of failing the run.
  ctx.setDeterministicAlgorithms(true, /*warn_only=*/true);
}

at::Tensor ToDevice(const at::Tensor& host, c10::Device device) {
  if (!host.defined() || host.device() == device) return host;
  if (device.is_cuda() && host.is_cpu()) {
    const at::Tensor pinned = host.is_pinned() ? host : host.pin_memory();
    return pinned.to(device, /*non_blocking=*/true);
  }
  return host.to(device);
}

c10::Device ModuleDevice(const torch::nn::Module& module) {
  for (const at::Tensor& p : module.parameters()) return p.device();
  return c10::Device(c10::kCPU);
}

void FlattenRecurrentParameters(torch::nn::Module& module) {
  for (const std::shared_ptr<torch::nn::Module>& m : module.modules(/*include_self=*/false)) {
    if (auto* lstm = m->as<torch::nn::LSTM>()) lstm->flatten_parameters();
    if (auto* gru = m->as<torch::nn::GRU>()) gru->flatten_parameters();
    if (auto* rnn = m->as<torch::nn::RNN>()) rnn->flatten_parameters();
  }
}

absl::Status MoveModule(torch::nn::Module& module, c10::Device device) {
  return GuardTorch(absl::StrCat("cannot move the model to ", device.str()), [&] {
    module.to(device);
    FlattenRecurrentParameters(module);
    return absl::OkStatus();
  });
}

}  // namespace distrnn::common
