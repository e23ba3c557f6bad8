// The real NcclApi. The only file of the project that includes nccl.h: it is compiled
// against the headers of the NCCL libtorch loads (cmake/FindNCCL.cmake), and the
// static_asserts below keep nccl_api.h's mirrored codes and sizes honest.
#include "comm/nccl_api.h"

#include <dlfcn.h>
#include <nccl.h>

#include <cstring>

namespace distrnn::comm {
namespace {

// CMake passes the version of the nccl.h it found; a different nccl.h on the include
// path (the CUDA toolkit carries another) fails the build here.
#ifdef DISTRNN_EXPECTED_NCCL_VERSION_CODE
static_assert(NCCL_VERSION_CODE == DISTRNN_EXPECTED_NCCL_VERSION_CODE,
              "nccl.h on the include path is not the one cmake/FindNCCL.cmake selected");
#endif

// Non-blocking init and ncclCommFinalize (2.14), ncclGetLastError (2.13), ncclAvg (2.10).
static_assert(NCCL_VERSION_CODE >= NCCL_VERSION(2, 14, 0), "the NCCL communicator needs NCCL 2.14 or newer");
static_assert(sizeof(ncclUniqueId) == NcclUniqueId::kBytes, "ncclUniqueId size");
static_assert(sizeof(ncclComm_t) == sizeof(NcclComm), "ncclComm_t is a pointer");
static_assert(static_cast<int>(NcclResult::kSuccess) == ncclSuccess);
static_assert(static_cast<int>(NcclResult::kUnhandledCudaError) == ncclUnhandledCudaError);
static_assert(static_cast<int>(NcclResult::kSystemError) == ncclSystemError);
static_assert(static_cast<int>(NcclResult::kInternalError) == ncclInternalError);
static_assert(static_cast<int>(NcclResult::kInvalidArgument) == ncclInvalidArgument);
static_assert(static_cast<int>(NcclResult::kInvalidUsage) == ncclInvalidUsage);
static_assert(static_cast<int>(NcclResult::kRemoteError) == ncclRemoteError);
static_assert(static_cast<int>(NcclResult::kInProgress) == ncclInProgress);
static_assert(static_cast<int>(NcclResult::kTimeout) == ncclTimeout);

NcclResult From(ncclResult_t r) { return static_cast<NcclResult>(static_cast<int>(r)); }
ncclComm_t RawComm(NcclComm comm) { return static_cast<ncclComm_t>(comm); }
cudaStream_t RawStream(CudaStream stream) { return static_cast<cudaStream_t>(stream); }

ncclDataType_t To(NcclDataType type) {
  switch (type) {
    case NcclDataType::kInt8: return ncclInt8;
    case NcclDataType::kUint8: return ncclUint8;
    case NcclDataType::kInt32: return ncclInt32;
    case NcclDataType::kInt64: return ncclInt64;
    case NcclDataType::kFloat16: return ncclFloat16;
    case NcclDataType::kFloat32: return ncclFloat32;
    case NcclDataType::kFloat64: return ncclFloat64;
    case NcclDataType::kBfloat16: return ncclBfloat16;
  }
  return ncclUint8;
}

ncclRedOp_t To(NcclRedOp op) {
  switch (op) {
    case NcclRedOp::kSum: return ncclSum;
    case NcclRedOp::kMax: return ncclMax;
    case NcclRedOp::kAvg: return ncclAvg;
  }
  return ncclSum;
}

class RealNcclApi final : public NcclApi {
 public:
  int CompiledVersion() const override { return NCCL_VERSION_CODE; }

  NcclResult GetVersion(int* version) override { return From(ncclGetVersion(version)); }

  std::string LibraryPath() override {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&ncclGetVersion), &info) == 0 || info.dli_fname == nullptr) return "";
    return info.dli_fname;
  }

  std::string GetErrorString(NcclResult result) override {
    return ncclGetErrorString(static_cast<ncclResult_t>(result));
  }

  std::string GetLastError(NcclComm comm) override {
    const char* text = ncclGetLastError(RawComm(comm));
    return text == nullptr ? "" : text;
  }

  NcclResult GetUniqueId(NcclUniqueId* id) override {
    ncclUniqueId raw;
    const ncclResult_t r = ncclGetUniqueId(&raw);
    std::memcpy(id->internal, raw.internal, sizeof(raw.internal));
    return From(r);
  }

  NcclResult CommInitRankConfig(NcclComm* comm, int nranks, const NcclUniqueId& id, int rank,
                                const NcclConfig& config) override {
    ncclUniqueId raw;
    std::memcpy(raw.internal, id.internal, sizeof(raw.internal));
    ncclConfig_t c = NCCL_CONFIG_INITIALIZER;
    c.blocking = config.blocking ? 1 : 0;
#if NCCL_VERSION_CODE >= NCCL_VERSION(2, 20, 0)
    if (!config.comm_name.empty()) c.commName = config.comm_name.c_str();  // copied by NCCL during init
#endif
    ncclComm_t out = nullptr;
    const ncclResult_t r = ncclCommInitRankConfig(&out, nranks, raw, rank, &c);
    *comm = out;
    return From(r);
  }

  NcclResult CommGetAsyncError(NcclComm comm, NcclResult* state) override {
    ncclResult_t s = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(RawComm(comm), &s);
    *state = From(s);
    return From(r);
  }

  NcclResult CommFinalize(NcclComm comm) override { return From(ncclCommFinalize(RawComm(comm))); }
  NcclResult CommDestroy(NcclComm comm) override { return From(ncclCommDestroy(RawComm(comm))); }
  NcclResult CommAbort(NcclComm comm) override { return From(ncclCommAbort(RawComm(comm))); }

  NcclResult AllReduce(const void* send, void* recv, size_t count, NcclDataType type, NcclRedOp op, NcclComm comm,
                       CudaStream stream) override {
    return From(ncclAllReduce(send, recv, count, To(type), To(op), RawComm(comm), RawStream(stream)));
  }

  NcclResult Broadcast(const void* send, void* recv, size_t count, NcclDataType type, int root, NcclComm comm,
                       CudaStream stream) override {
    return From(ncclBroadcast(send, recv, count, To(type), root, RawComm(comm), RawStream(stream)));
  }

  NcclResult AllGather(const void* send, void* recv, size_t send_count, NcclDataType type, NcclComm comm,
                       CudaStream stream) override {
    return From(ncclAllGather(send, recv, send_count, To(type), RawComm(comm), RawStream(stream)));
  }
};

}  // namespace

absl::StatusOr<std::shared_ptr<NcclApi>> MakeNcclApi() { return std::make_shared<RealNcclApi>(); }

}  // namespace distrnn::comm
