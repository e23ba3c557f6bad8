#include "comm/gradient_reducer.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <map>
#include <tuple>

#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::comm {

GradientReducer::GradientReducer(Communicator& comm, std::vector<at::Tensor> params, int64_t bucket_bytes,
                                 bool async_host_buckets)
    : comm_(comm), params_(std::move(params)), bucket_bytes_(bucket_bytes), async_host_buckets_(async_host_buckets) {
  TORCH_CHECK(bucket_bytes_ >= 1, "GradientReducer: bucket_bytes must be >= 1, got ", bucket_bytes_);
  for (size_t i = 0; i < params_.size(); ++i) {
    TORCH_CHECK(params_[i].defined(), "GradientReducer: parameter ", i, " is undefined");
  }
  Plan();
}

void GradientReducer::Plan() {
  // One open bucket per (dtype, device); closed when the next parameter would overflow it.
  using Key = std::tuple<int, int, int>;  // dtype, device type, device index
  std::map<Key, size_t> open;             // key -> index into buckets_
  std::vector<int64_t> bucket_used_bytes;
  for (size_t k = params_.size(); k-- > 0;) {
    const at::Tensor& p = params_[k];
    const Key key{static_cast<int>(p.scalar_type()), static_cast<int>(p.device().type()), p.device().index()};
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    auto it = open.find(key);
    if (it != open.end() && bucket_used_bytes[it->second] > 0 &&
        bucket_used_bytes[it->second] + bytes > bucket_bytes_) {
      open.erase(it);
      it = open.end();
    }
    if (it == open.end()) {
      it = open.emplace(key, buckets_.size()).first;
      buckets_.emplace_back();
      bucket_used_bytes.push_back(0);
    }
    Bucket& bucket = buckets_[it->second];
    const int64_t offset = bucket.slots.empty() ? 0 : bucket.slots.back().offset + bucket.slots.back().numel;
    bucket.slots.push_back(Slot{k, offset, p.numel()});
    bucket_used_bytes[it->second] += bytes;
  }
  // Buckets were created in order of their first parameter in the reverse order, which
  // is the order they are reduced in. Allocate and touch each buffer once.
  for (Bucket& bucket : buckets_) {
    const at::Tensor& first = params_[bucket.slots.front().param_index];
    const int64_t numel = bucket.slots.back().offset + bucket.slots.back().numel;
    bucket.buffer = at::zeros({numel}, first.options().requires_grad(false));
    std::vector<size_t> indices;
    for (const Slot& slot : bucket.slots) indices.push_back(slot.param_index);
    bucket_param_indices_.push_back(std::move(indices));
  }
}

std::vector<int64_t> GradientReducer::bucket_sizes_bytes() const {
  std::vector<int64_t> sizes;
  for (const Bucket& bucket : buckets_) sizes.push_back(static_cast<int64_t>(bucket.buffer.nbytes()));
  return sizes;
}

absl::Status GradientReducer::AllReduceGradients() {
  if (comm_.world_size() == 1) return absl::OkStatus();
  const double inv_world = 1.0 / comm_.world_size();
  // Every bucket is filled and started (asynchronously) before the first is waited
  // for, so the reduction of one bucket overlaps the copies of the next; on NCCL the
  // waits are stream waits and the host never blocks here.
  std::vector<std::unique_ptr<Work>> works;
  works.reserve(buckets_.size());
  absl::Status started;
  for (Bucket& bucket : buckets_) {
    started = common::GuardTorch("GradientReducer: copying gradients into a bucket", [&] {
      const at::Tensor scale = at::scalar_tensor(inv_world, bucket.buffer.options());
      for (const Slot& slot : bucket.slots) {
        at::Tensor view = bucket.buffer.narrow(0, slot.offset, slot.numel);
        const at::Tensor& grad = params_[slot.param_index].grad();
        if (grad.defined()) {
          // One pass: view = grad / world (the multiply writes straight into the bucket).
          at::mul_out(view, grad.reshape({-1}), scale);
        } else {
          view.zero_();
        }
      }
      return absl::OkStatus();
    });
    if (!started.ok()) break;
    // Note [host buckets] in gradient_reducer.h.
    absl::StatusOr<std::unique_ptr<Work>> work =
        bucket.buffer.is_cpu() && !async_host_buckets_
            ? [&]() -> absl::StatusOr<std::unique_ptr<Work>> {
                if (absl::Status s = comm_.AllReduce(bucket.buffer, ReduceOp::kSum); !s.ok()) return s;
                return MakeCompletedWork();
              }()
            : comm_.AllReduceAsync(bucket.buffer, ReduceOp::kSum);
    if (!work.ok()) {
      started = work.status();
      break;
    }
    works.push_back(std::move(work).value());
  }
  // Whatever was started is waited for, also after an error: its buffer is in use.
  absl::Status status = started;
  for (size_t b = 0; b < works.size(); ++b) {
    absl::Status waited = works[b]->Wait();
    if (status.ok()) status = waited;
    if (!status.ok()) continue;
    status = common::GuardTorch("GradientReducer: copying a bucket back into gradients", [&] {
      for (const Slot& slot : buckets_[b].slots) {
        at::Tensor& param = params_[slot.param_index];
        at::Tensor view = buckets_[b].buffer.narrow(0, slot.offset, slot.numel).view(param.sizes());
        if (param.grad().defined()) {
          param.mutable_grad().copy_(view);
        } else {
          param.mutable_grad() = view.clone();
        }
      }
      return absl::OkStatus();
    });
  }
  return status;
}

}  // namespace distrnn::comm
