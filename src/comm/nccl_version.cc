// NCCL version codes and the start-up guard (nccl_api.h); no NCCL header needed.
#include <memory>

#include "absl/strings/str_cat.h"
#include "comm/nccl_api.h"

namespace distrnn::comm {

NcclVersion DecodeNcclVersion(int code) {
  NcclVersion v;
  // NCCL_VERSION(X,Y,Z): X*1000+Y*100+Z while X <= 2 and Y <= 8, X*10000+Y*100+Z after.
  if (code < 10000) {
    v.major = code / 1000;
    v.minor = (code % 1000) / 100;
    v.patch = code % 100;
  } else {
    v.major = code / 10000;
    v.minor = (code % 10000) / 100;
    v.patch = code % 100;
  }
  return v;
}

std::string NcclVersionString(int code) {
  const NcclVersion v = DecodeNcclVersion(code);
  return absl::StrCat(v.major, ".", v.minor, ".", v.patch);
}

absl::Status CheckNcclVersion(NcclApi& api) {
  int runtime = 0;
  const NcclResult r = api.GetVersion(&runtime);
  if (r != NcclResult::kSuccess) {
    return absl::InternalError(absl::StrCat("ncclGetVersion failed: ", api.GetErrorString(r)));
  }
  const int compiled = api.CompiledVersion();
  const NcclVersion want = DecodeNcclVersion(compiled), have = DecodeNcclVersion(runtime);
  if (want.major == have.major && want.minor == have.minor) return absl::OkStatus();
  const std::string path = api.LibraryPath();
  return absl::FailedPreconditionError(absl::StrCat(
      "NCCL version mismatch: built against nccl.h ", NcclVersionString(compiled), " but the loaded libnccl is ",
      NcclVersionString(runtime), path.empty() ? "" : absl::StrCat(" (", path, ")"),
      "; rebuild against the NCCL libtorch loads (cmake/FindNCCL.cmake, NCCL_ROOT) or fix LD_LIBRARY_PATH"));
}

std::string DescribeNccl() {
  absl::StatusOr<std::shared_ptr<NcclApi>> api = MakeNcclApi();
  if (!api.ok()) return "NCCL not built";
  int runtime = 0;
  if ((*api)->GetVersion(&runtime) != NcclResult::kSuccess) return "NCCL (ncclGetVersion failed)";
  const std::string path = (*api)->LibraryPath();
  return absl::StrCat("NCCL ", NcclVersionString(runtime), " (compiled against ",
                      NcclVersionString((*api)->CompiledVersion()), path.empty() ? "" : absl::StrCat(", ", path), ")");
}

}  // namespace distrnn::comm
