// NcclApi: the NCCL calls the NCCL communicator makes, behind an interface so its logic
// (id bootstrap, init/abort order, error mapping, watchdog) is unit-tested against a
// gmock fake without a GPU (tests/comm/nccl_fakes.h), as torchcomms does.
//
// This header does not include nccl.h: only nccl_api.cc does (the one file in the
// project), and it checks with static_asserts that the mirrored codes and sizes below
// match the nccl.h it is compiled against. NcclComm is an ncclComm_t.
//
// MakeNcclApi() returns the real implementation, or Unimplemented in a build without
// NCCL (DISTRNN_WITH_NCCL=OFF, or AUTO with no NCCL found).
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "comm/cuda_api.h"

namespace distrnn::comm {

// ncclResult_t.
enum class NcclResult : int {
  kSuccess = 0,
  kUnhandledCudaError = 1,
  kSystemError = 2,
  kInternalError = 3,
  kInvalidArgument = 4,
  kInvalidUsage = 5,
  kRemoteError = 6,
  kInProgress = 7,
  kTimeout = 8,
};

enum class NcclDataType { kInt8, kUint8, kInt32, kInt64, kFloat16, kFloat32, kFloat64, kBfloat16 };
enum class NcclRedOp { kSum, kMax, kAvg };

// ncclUniqueId: opaque bytes made by rank 0 and sent to every rank.
struct NcclUniqueId {
  static constexpr size_t kBytes = 128;  // NCCL_UNIQUE_ID_BYTES
  char internal[kBytes] = {};
};

using NcclComm = void*;  // ncclComm_t

// The ncclConfig_t fields we set.
struct NcclConfig {
  bool blocking = false;  // false: every call may return kInProgress (poll CommGetAsyncError)
  std::string comm_name;  // shown in NCCL's logs
};

class NcclApi {
 public:
  virtual ~NcclApi() = default;

  // NCCL_VERSION_CODE of the nccl.h compiled against.
  virtual int CompiledVersion() const = 0;
  // ncclGetVersion: the library loaded at run time.
  virtual NcclResult GetVersion(int* version) = 0;
  // File the loaded library came from ("" if unknown).
  virtual std::string LibraryPath() = 0;
  virtual std::string GetErrorString(NcclResult result) = 0;
  // ncclGetLastError: NCCL's detailed text of the last error ("" if none).
  virtual std::string GetLastError(NcclComm comm) = 0;

  virtual NcclResult GetUniqueId(NcclUniqueId* id) = 0;
  virtual NcclResult CommInitRankConfig(NcclComm* comm, int nranks, const NcclUniqueId& id, int rank,
                                        const NcclConfig& config) = 0;
  // The communicator's state: kSuccess, kInProgress (a non-blocking call still
  // running) or an error raised asynchronously (a peer died, a network error).
  virtual NcclResult CommGetAsyncError(NcclComm comm, NcclResult* state) = 0;
  virtual NcclResult CommFinalize(NcclComm comm) = 0;
  virtual NcclResult CommDestroy(NcclComm comm) = 0;
  virtual NcclResult CommAbort(NcclComm comm) = 0;

  virtual NcclResult AllReduce(const void* send, void* recv, size_t count, NcclDataType type, NcclRedOp op,
                               NcclComm comm, CudaStream stream) = 0;
  virtual NcclResult Broadcast(const void* send, void* recv, size_t count, NcclDataType type, int root, NcclComm comm,
                               CudaStream stream) = 0;
  virtual NcclResult AllGather(const void* send, void* recv, size_t send_count, NcclDataType type, NcclComm comm,
                               CudaStream stream) = 0;
};

absl::StatusOr<std::shared_ptr<NcclApi>> MakeNcclApi();

// Version codes as in nccl.h: major*1000+minor*100+patch up to 2.8, major*10000+... after.
struct NcclVersion {
  int major = 0, minor = 0, patch = 0;
};
NcclVersion DecodeNcclVersion(int code);
std::string NcclVersionString(int code);  // "2.30.7"

// The start-up guard: OK when the NCCL loaded at run time has the major and minor
// version of the nccl.h compiled against (structs such as ncclConfig_t change between
// minor versions); FailedPrecondition naming both versions and the library file otherwise.
absl::Status CheckNcclVersion(NcclApi& api);

// "NCCL 2.30.7 (compiled against 2.30.7, /path/libnccl.so.2)", or why there is none.
std::string DescribeNccl();

}  // namespace distrnn::comm
