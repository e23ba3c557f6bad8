#include "comm/gradient_reducer.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/node.h>
#include <torch/csrc/autograd/utils/lambda_post_hook.h>
#include <torch/csrc/autograd/variable.h>

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "common/torch_status.h"

namespace distrnn::comm {

GradientReducer::GradientReducer(Communicator& comm, std::vector<at::Tensor> params, int64_t bucket_bytes,
                                 bool async_host_buckets, int64_t first_bucket_bytes, std::vector<size_t> row_sparse)
    : comm_(comm),
      params_(std::move(params)),
      bucket_bytes_(bucket_bytes),
      first_bucket_bytes_(std::min(first_bucket_bytes, bucket_bytes)),
      async_host_buckets_(async_host_buckets) {
  TORCH_CHECK(bucket_bytes_ >= 1, "GradientReducer: bucket_bytes must be >= 1, got ", bucket_bytes_);
  TORCH_CHECK(first_bucket_bytes_ >= 1, "GradientReducer: first_bucket_bytes must be >= 1, got ", first_bucket_bytes);
  for (size_t i = 0; i < params_.size(); ++i) {
    TORCH_CHECK(params_[i].defined(), "GradientReducer: parameter ", i, " is undefined");
  }
  sparse_of_param_.assign(params_.size(), -1);
  for (size_t index : row_sparse) {
    TORCH_CHECK(index < params_.size(), "GradientReducer: row-sparse index ", index, " is not a parameter");
    TORCH_CHECK(sparse_of_param_[index] < 0, "GradientReducer: row-sparse index ", index, " is listed twice");
    TORCH_CHECK(params_[index].dim() >= 1, "GradientReducer: row-sparse parameter ", index, " has no rows");
    sparse_of_param_[index] = static_cast<int>(sparse_.size());
    sparse_.push_back(SparseParam{index});
  }
  Plan();
}

GradientReducer::~GradientReducer() {
  for (size_t i = 0; i < accumulators_.size(); ++i) accumulators_[i]->del_post_hook(hook_keys_[i]);
}

void GradientReducer::Plan() {
  // One open bucket per (dtype, device); closed when the next parameter would overflow it.
  using Key = std::tuple<int, int, int>;  // dtype, device type, device index
  std::map<Key, size_t> open;             // key -> index into buckets_
  std::set<Key> had_bucket;               // keys whose first (smaller) bucket exists
  std::vector<int64_t> bucket_used_bytes;
  std::vector<int64_t> bucket_cap;
  for (size_t k = params_.size(); k-- > 0;) {
    if (is_row_sparse(k)) continue;  // Note [row-sparse gradients]
    const at::Tensor& p = params_[k];
    const Key key{static_cast<int>(p.scalar_type()), static_cast<int>(p.device().type()), p.device().index()};
    const int64_t bytes = p.numel() * static_cast<int64_t>(p.element_size());
    auto it = open.find(key);
    if (it != open.end() && bucket_used_bytes[it->second] > 0 &&
        bucket_used_bytes[it->second] + bytes > bucket_cap[it->second]) {
      open.erase(it);
      it = open.end();
    }
    if (it == open.end()) {
      it = open.emplace(key, buckets_.size()).first;
      buckets_.emplace_back();
      bucket_used_bytes.push_back(0);
      bucket_cap.push_back(had_bucket.insert(key).second ? first_bucket_bytes_ : bucket_bytes_);
    }
    Bucket& bucket = buckets_[it->second];
    const int64_t offset = bucket.slots.empty() ? 0 : bucket.slots.back().offset + bucket.slots.back().numel;
    bucket.slots.push_back(Slot{k, offset, p.numel()});
    bucket_used_bytes[it->second] += bytes;
  }
  // Buckets were created in order of their first parameter in the reverse order, which
  // is the order they are reduced in. Allocate and touch each buffer once; the
  // gradients become views into it (Note [gradients as bucket views]).
  for (Bucket& bucket : buckets_) {
    const at::Tensor& first = params_[bucket.slots.front().param_index];
    const int64_t numel = bucket.slots.back().offset + bucket.slots.back().numel;
    bucket.buffer = at::zeros({numel}, first.options().requires_grad(false));
    std::vector<size_t> indices;
    for (Slot& slot : bucket.slots) {
      const at::Tensor& param = params_[slot.param_index];
      slot.view = bucket.buffer.narrow(0, slot.offset, slot.numel).view(param.sizes());
      Bind(slot);
      indices.push_back(slot.param_index);
    }
    bucket_param_indices_.push_back(std::move(indices));
  }
  for (SparseParam& sparse : sparse_) {
    const at::Tensor& param = params_[sparse.param_index];
    sparse.slot = Slot{sparse.param_index, 0, param.numel(),
                       at::zeros(param.sizes(), param.options().requires_grad(false))};
    Bind(sparse.slot);
  }
}

bool GradientReducer::IsBound(const Slot& slot) const {
  const at::Tensor& grad = params_[slot.param_index].grad();
  return grad.defined() && grad.data_ptr() == slot.view.data_ptr() && grad.sizes() == slot.view.sizes() &&
         grad.strides() == slot.view.strides();
}

void GradientReducer::Bind(const Slot& slot) {
  if (IsBound(slot)) return;
  at::Tensor& param = params_[slot.param_index];
  if (param.grad().defined()) {
    slot.view.copy_(param.grad());
  } else {
    slot.view.zero_();
  }
  param.mutable_grad() = slot.view;
}

void GradientReducer::ZeroGradients() {
  for (Bucket& bucket : buckets_) {
    bucket.buffer.zero_();
    for (const Slot& slot : bucket.slots) {
      if (!IsBound(slot)) params_[slot.param_index].mutable_grad() = slot.view;
    }
  }
  // Whole tables, not just last step's rows: a value written outside the named rows
  // (a fault-injected NaN) must not outlive its step.
  for (SparseParam& sparse : sparse_) {
    sparse.slot.view.zero_();
    if (!IsBound(sparse.slot)) params_[sparse.param_index].mutable_grad() = sparse.slot.view;
    sparse.rows.clear();
  }
}

void GradientReducer::AddTouchedRows(size_t param_index, const at::Tensor& rows) {
  TORCH_CHECK(is_row_sparse(param_index), "GradientReducer: parameter ", param_index, " is not row-sparse");
  // A copy: callers reuse their id buffers from micro-batch to micro-batch.
  sparse_[sparse_of_param_[param_index]].rows.push_back(
      rows.reshape({-1}).to(at::kLong, /*non_blocking=*/false, /*copy=*/true));
}

std::vector<at::Tensor> GradientReducer::FlatGradients() const {
  std::vector<at::Tensor> flat;
  for (const Bucket& bucket : buckets_) {
    for (const Slot& slot : bucket.slots) {
      if (IsBound(slot)) continue;
      for (const at::Tensor& p : params_) {
        if (p.grad().defined()) flat.push_back(p.grad());
      }
      return flat;
    }
    flat.push_back(bucket.buffer);
  }
  for (const SparseParam& sparse : sparse_) {
    const at::Tensor& grad = params_[sparse.param_index].grad();
    if (grad.defined()) flat.push_back(grad);
  }
  return flat;
}

std::vector<int64_t> GradientReducer::bucket_sizes_bytes() const {
  std::vector<int64_t> sizes;
  for (const Bucket& bucket : buckets_) sizes.push_back(static_cast<int64_t>(bucket.buffer.nbytes()));
  return sizes;
}

void GradientReducer::EnableOverlap() {
  if (overlap_ || comm_.world_size() == 1) return;
  overlap_ = true;
  slot_of_param_.assign(params_.size(), {0, 0});
  slot_filled_.assign(params_.size(), 0);
  for (size_t b = 0; b < buckets_.size(); ++b) {
    for (size_t s = 0; s < buckets_[b].slots.size(); ++s) slot_of_param_[buckets_[b].slots[s].param_index] = {b, s};
  }
  for (size_t i = 0; i < params_.size(); ++i) {
    if (is_row_sparse(i)) continue;  // reduced after backward (Note [row-sparse gradients])
    c10::intrusive_ptr<torch::autograd::Node> accumulator = torch::autograd::impl::grad_accumulator(params_[i]);
    hook_keys_.push_back(accumulator->add_post_hook(std::make_unique<torch::autograd::utils::LambdaPostHook>(
        [this, i](const torch::autograd::variable_list& outputs, const torch::autograd::variable_list&) {
          OnGradientReady(i);
          return outputs;
        })));
    accumulators_.push_back(std::move(accumulator));
  }
}

void GradientReducer::ArmForBackward() {
  if (!overlap_) return;
  armed_ = true;
  std::fill(slot_filled_.begin(), slot_filled_.end(), 0);
  pending_.clear();
  for (const Bucket& bucket : buckets_) pending_.push_back(bucket.slots.size());
  next_to_start_ = 0;
  started_in_backward_ = 0;
  works_.clear();
  start_error_ = absl::OkStatus();
}

absl::Status GradientReducer::StartBucket(size_t b) {
  Bucket& bucket = buckets_[b];
  bucket.buffer.mul_(1.0 / comm_.world_size());  // sum of gradient / world = the average
  // Note [host buckets]: without overlap the blocking all-reduce is faster on CPU.
  const bool blocking = bucket.buffer.is_cpu() && !async_host_buckets_ && !armed_;
  absl::StatusOr<std::unique_ptr<Work>> work =
      blocking ? [&]() -> absl::StatusOr<std::unique_ptr<Work>> {
        if (absl::Status s = comm_.AllReduce(bucket.buffer, ReduceOp::kSum); !s.ok()) return s;
        return MakeCompletedWork();
      }()
               : comm_.AllReduceAsync(bucket.buffer, ReduceOp::kSum);
  if (!work.ok()) return work.status();
  works_.push_back(std::move(work).value());
  return absl::OkStatus();
}

void GradientReducer::OnGradientReady(size_t index) {
  if (!armed_ || !start_error_.ok() || slot_filled_[index]) return;
  const auto [b, s] = slot_of_param_[index];
  // Runs inside autograd: an exception here would end backward; keep it as a status.
  start_error_ = common::GuardTorch("GradientReducer: copying a gradient into its bucket", [&] {
    Bind(buckets_[b].slots[s]);
    return absl::OkStatus();
  });
  slot_filled_[index] = 1;
  --pending_[b];
  while (start_error_.ok() && next_to_start_ < buckets_.size() && pending_[next_to_start_] == 0) {
    start_error_ = common::GuardTorch("GradientReducer: starting a bucket", [&] { return StartBucket(next_to_start_); });
    ++next_to_start_;
    ++started_in_backward_;
  }
  for (auto& work : works_) work->IsCompleted();  // progress (MPI_Testall)
}

absl::Status GradientReducer::ReduceRows(SparseParam& sparse) {
  Bind(sparse.slot);
  const at::Tensor table = sparse.slot.view.view({sparse.slot.view.size(0), -1});  // [rows, width]
  const int64_t num_rows = table.size(0), width = table.size(1);
  // This rank's distinct touched rows; -1 travels instead of a count when they are
  // missing or out of range, so that every rank fails together rather than some waiting.
  at::Tensor ids;
  int64_t count = -1;
  if (!sparse.rows.empty()) {
    ids = std::get<0>(at::_unique(at::cat(sparse.rows).to(table.device()), /*sorted=*/true));
    if (ids.numel() == 0 || (ids.min().item<int64_t>() >= 0 && ids.max().item<int64_t>() < num_rows)) {
      count = ids.numel();
    }
  }
  sparse.rows.clear();
  ASSIGN_OR_RETURN(const std::vector<int64_t> counts, AllGatherInt64(comm_, count));
  for (size_t r = 0; r < counts.size(); ++r) {
    if (counts[r] < 0) {
      return absl::FailedPreconditionError(absl::StrCat("GradientReducer: rank ", r,
                                                        " named no touched rows, or rows outside [0, ", num_rows,
                                                        "), for row-sparse parameter ", sparse.param_index));
    }
  }
  const int64_t most = *std::max_element(counts.begin(), counts.end());
  if (most == 0) return absl::OkStatus();
  const int64_t world = comm_.world_size();
  // Every rank receives world x most rows from the all-gather, against 2(world-1)/world
  // of the table from a ring all-reduce: past that point (many ranks, or a batch that
  // touches most of the table) the whole table is all-reduced instead. The counts are
  // the same on every rank, so is the choice.
  if (static_cast<double>(world * most) >= 2.0 * static_cast<double>((world - 1) * num_rows) / world) {
    ++whole_table_steps_;
    at::Tensor whole = sparse.slot.view;
    whole.mul_(1.0 / comm_.world_size());
    return comm_.AllReduce(whole, ReduceOp::kSum);
  }
  if (!sparse.send_ids.defined() || sparse.send_ids.size(0) < most) {
    const int64_t capacity = std::max(most, sparse.send_ids.defined() ? 2 * sparse.send_ids.size(0) : int64_t{0});
    sparse.send_ids = at::zeros({capacity}, table.options().dtype(at::kLong));
    sparse.send_rows = at::zeros({capacity, width}, table.options());
    sparse.recv_ids = at::zeros({world * capacity}, table.options().dtype(at::kLong));
    sparse.recv_rows = at::zeros({world * capacity, width}, table.options());
  }
  // Equal-sized pieces (NCCL has no all-gather-v): each rank's first counts[r] are real.
  const at::Tensor send_ids = sparse.send_ids.narrow(0, 0, most), send_rows = sparse.send_rows.narrow(0, 0, most);
  at::Tensor recv_ids = sparse.recv_ids.narrow(0, 0, world * most);
  at::Tensor recv_rows = sparse.recv_rows.narrow(0, 0, world * most);
  const int64_t mine = counts[comm_.rank()];
  if (mine > 0) {
    send_ids.narrow(0, 0, mine).copy_(ids);
    at::Tensor mine_rows = send_rows.narrow(0, 0, mine);
    at::index_select_out(mine_rows, table, 0, ids);
    mine_rows.mul_(1.0 / comm_.world_size());  // as the buckets: sum of gradient / world
  }
  rows_sent_ += mine;
  RETURN_IF_ERROR(comm_.AllGatherTensor(send_ids, recv_ids));
  RETURN_IF_ERROR(comm_.AllGatherTensor(send_rows, recv_rows));
  at::Tensor sum = table;
  if (mine > 0) sum.index_fill_(0, ids, 0);
  for (int64_t r = 0; r < world; ++r) {
    if (counts[r] == 0) continue;
    sum.index_add_(0, recv_ids.narrow(0, r * most, counts[r]), recv_rows.narrow(0, r * most, counts[r]));
  }
  return absl::OkStatus();
}

absl::Status GradientReducer::AllReduceGradients() {
  if (comm_.world_size() == 1) {
    for (SparseParam& sparse : sparse_) sparse.rows.clear();
    return absl::OkStatus();
  }
  // Every bucket is started (asynchronously) before the first is waited for; on NCCL
  // the waits are stream waits and the host never blocks here. With overlap, the hooks
  // have started a prefix of the buckets already.
  if (!armed_) {
    works_.clear();
    next_to_start_ = 0;
    start_error_ = absl::OkStatus();
  }
  absl::Status started = start_error_;
  for (size_t b = next_to_start_; started.ok() && b < buckets_.size(); ++b) {
    started = common::GuardTorch("GradientReducer: starting a bucket", [&] {
      for (const Slot& slot : buckets_[b].slots) Bind(slot);
      return StartBucket(b);
    });
  }
  armed_ = false;
  for (size_t i = 0; started.ok() && i < sparse_.size(); ++i) {
    started = common::GuardTorch("GradientReducer: exchanging touched rows", [&] { return ReduceRows(sparse_[i]); });
  }
  // Whatever was started is waited for, also after an error: its buffer is in use.
  absl::Status status = started;
  for (auto& work : works_) {
    absl::Status waited = work->Wait();
    if (status.ok()) status = waited;
  }
  works_.clear();
  return status;
}

}  // namespace distrnn::comm
