#include "comm/parameter_sync.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::comm {
namespace {

// 64-bit mixing (splitmix64 finaliser) over 8-byte words: order-sensitive, exact.
inline uint64_t Mix(uint64_t h, uint64_t word) {
  h ^= word + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

uint64_t HashBytes(uint64_t h, const unsigned char* data, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t word;
    std::memcpy(&word, data + i, 8);
    h = Mix(h, word);
  }
  uint64_t tail = 0;
  std::memcpy(&tail, data + i, n - i);
  return Mix(h, tail ^ (static_cast<uint64_t>(n - i) << 56));
}

}  // namespace

absl::Status BroadcastParameters(Communicator& comm, const std::vector<at::Tensor>& tensors, int root) {
  if (comm.world_size() == 1) {
    if (root != 0) return absl::InvalidArgumentError(absl::StrCat("broadcast root ", root, " >= world size 1"));
    return absl::OkStatus();
  }
  return common::GuardTorch("BroadcastParameters", [&]() -> absl::Status {
    c10::NoGradGuard no_grad;  // parameters are leaves that require grad
    // Group by (dtype, device) in first-seen order; the same on every rank.
    std::map<std::pair<int, std::string>, std::vector<at::Tensor>> groups;
    std::vector<std::pair<int, std::string>> order;
    for (const at::Tensor& t : tensors) {
      if (!t.defined()) return absl::InvalidArgumentError("BroadcastParameters: undefined tensor");
      auto key = std::make_pair(static_cast<int>(t.scalar_type()), t.device().str());
      auto [it, inserted] = groups.try_emplace(key);
      if (inserted) order.push_back(key);
      it->second.push_back(t.detach());
    }
    for (const auto& key : order) {
      std::vector<at::Tensor>& group = groups[key];
      std::vector<at::Tensor> flat_parts;
      for (const at::Tensor& t : group) flat_parts.push_back(t.reshape({-1}));
      at::Tensor flat = at::cat(flat_parts);
      RETURN_IF_ERROR(comm.Broadcast(flat, root));
      int64_t offset = 0;
      for (at::Tensor& t : group) {
        t.copy_(flat.narrow(0, offset, t.numel()).view(t.sizes()));
        offset += t.numel();
      }
    }
    return absl::OkStatus();
  });
}

int64_t ParameterChecksum(const std::vector<at::Tensor>& tensors) {
  uint64_t h = 0x6a09e667f3bcc908ULL;
  for (const at::Tensor& t : tensors) {
    h = Mix(h, static_cast<uint64_t>(t.defined() ? t.dim() : -1));
    if (!t.defined()) continue;
    h = Mix(h, static_cast<uint64_t>(t.scalar_type()));
    for (int64_t size : t.sizes()) h = Mix(h, static_cast<uint64_t>(size));
    const at::Tensor host = t.detach().to(at::kCPU).contiguous();
    h = HashBytes(h, static_cast<const unsigned char*>(host.data_ptr()), host.nbytes());
  }
  return static_cast<int64_t>(h);
}

absl::StatusOr<bool> ReplicasAgree(Communicator& comm, const std::vector<at::Tensor>& tensors, std::string* detail) {
  int64_t checksum = 0;
  RETURN_IF_ERROR(common::GuardTorch("ReplicasAgree: checksum", [&] {
    checksum = ParameterChecksum(tensors);
    return absl::OkStatus();
  }));
  ASSIGN_OR_RETURN(std::vector<int64_t> all, AllGatherInt64(comm, checksum));
  std::vector<int> differ;
  for (int r = 1; r < static_cast<int>(all.size()); ++r) {
    if (all[r] != all[0]) differ.push_back(r);
  }
  if (differ.empty()) return true;
  if (detail != nullptr) {
    *detail = absl::StrCat("parameters differ from rank 0's on rank", differ.size() > 1 ? "s " : " ",
                           absl::StrJoin(differ, ", "), " of ", comm.world_size());
  }
  return false;
}

absl::Status CheckReplicasAgree(Communicator& comm, const std::vector<at::Tensor>& tensors) {
  std::string detail;
  ASSIGN_OR_RETURN(bool agree, ReplicasAgree(comm, tensors, &detail));
  if (agree) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("replicas disagree: ", detail));
}

}  // namespace distrnn::comm
