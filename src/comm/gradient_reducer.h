// GradientReducer: averages parameter gradients across ranks, bucket by bucket.
//
//   GradientReducer reducer(comm, model->parameters(), /*bucket_bytes=*/25 << 20);
//   ... loss.backward();
//   RETURN_IF_ERROR(reducer.AllReduceGradients());   // grads now hold the rank average
//   ... clip, optimizer step
//
// Bucket plan (fixed at construction, identical on every rank because it depends only
// on the parameters' order, shapes and dtypes):
// - Parameters are taken in reverse registration order, as in PyTorch DDP: backward
//   produces the last layers' gradients first, so those buckets will be ready first
//   once reduction overlaps backward.
// - A bucket holds parameters of one dtype and device only; each (dtype, device) has
//   its own open bucket while planning.
// - A bucket is closed before a parameter that would take it above its cap, so every
//   bucket is <= its cap unless it holds a single larger parameter. The cap is
//   `bucket_bytes`, except for the first bucket of each (dtype, device):
//   min(first_bucket_bytes, bucket_bytes), 1 MiB by default as in c10d, so that the
//   first all-reduce can start early in backward instead of waiting for 25 MiB.
// - Buckets are ordered by the position of their first parameter in that reverse order.
//
// Each bucket owns one flat buffer, allocated (and its pages touched) once at
// construction on its parameters' device: fresh pages cost ~11 us each on these VMs,
// so nothing is allocated per step.
//
// Note [gradients as bucket views] (c10d's gradient_as_bucket_view): at construction
// every parameter's gradient becomes a view into its slot of its bucket (a gradient
// already set is copied in first), so backward accumulates straight into the buckets
// and nothing is copied in or out. AllReduceGradients() divides each bucket by the
// world size (as c10d does: averages stay in range in low precision), starts its
// all-reduce (sum) through the communicator's asynchronous interface, and once every
// bucket is started waits for each in order; the gradients then hold the average. A
// gradient that is no longer its view (someone set it to a new tensor or to none) is
// copied back into its slot (zeros if undefined) and the view put back, so replacing a
// gradient costs a copy, never a wrong result. ZeroGradients() zeroes whole buckets, and
// FlatGradients() hands the buckets to clipping: a global norm over a few flat buffers
// instead of one kernel per parameter. On NCCL the scaling, the collectives and what
// follows are ordered by CUDA events and the host does not wait (nccl_communicator.h,
// Note [NCCL streams]).
//
// Note [host buckets]: CPU buckets use the blocking all-reduce unless
// async_host_buckets. Open MPI 4.1's MPI_Iallreduce (libnbc) measured 1.3-1.7x slower
// than MPI_Allreduce at 16 MiB on 2 ranks here (bench/allreduce_bench, async/blocking
// column), and without the backward hooks below there is nothing to overlap yet. The
// asynchronous path is the same code with MPI_Iallreduce requests (tested both ways).
//
// Undefined gradients (a parameter unused on this rank's batch) count as zeros. After
// the reduction every parameter's gradient is defined on every rank, holding the
// average (zeros if no rank used it), so replicas take the same optimizer step.
// With world size 1 AllReduceGradients() does nothing; the plan and views still exist.
//
// Note [overlap with backward]: EnableOverlap() registers a post-hook on each
// parameter's gradient accumulator (kept alive here, as c10d's reducer does: a leaf
// holds only a weak reference to it). Armed by ArmForBackward() before the backward
// pass of a step's last micro-batch, a hook copies its parameter's (now complete)
// gradient into the bucket if it is not a view already, and counts down the bucket's
// pending parameters; a complete bucket is started through the asynchronous interface as soon
// as every earlier bucket has been started, so the order of collectives is the plan's
// on every rank whatever order backward produces gradients in. Each hook also polls the
// started work (IsCompleted(): MPI_Testall), which is what makes Open MPI progress a
// non-blocking collective while backward computes. AllReduceGradients() then fills the
// slots of parameters whose hook did not fire (unused in this backward: their current
// gradient or zeros, as without overlap), starts the remaining buckets, waits for all
// in order. The values reduced are those of the non-overlapped path,
// so the result is bit-identical (tested). Not armed, the hooks do nothing.
//
// Note [row-sparse gradients]: an input embedding's gradient is non-zero only in the
// rows of the tokens this rank looked up (PTB small: <= 200 of 10,000 rows per rank and
// step), yet a dense all-reduce moves the whole table (8 MB of PTB small's 18.6 MB).
// Parameters listed in `row_sparse` stay out of the buckets: each keeps a dense gradient
// of its own (allocated once), and the caller names the rows it may have touched each
// step (AddTouchedRows: duplicates allowed, one call per micro-batch). AllReduceGradients
// all-gathers every rank's touched row ids and those rows divided by the world size,
// zeroes this rank's touched rows and adds every rank's rows in rank order, so every
// rank computes the same sum in the same order. With two ranks the result is
// bit-identical to the dense all-reduce (a + b either way; tested), with more it agrees
// to rounding. Horovod exchanges TensorFlow's IndexedSlices the same way (all-gather,
// not all-reduce). The all-gather's bytes grow with the world size, a ring all-reduce's
// do not: a step whose world x (most rows on a rank) reaches 2(world-1)/world of the
// table all-reduces the whole table instead (decided from the gathered counts, so the
// same on every rank). Contract: rows not named are zero on this rank's gradient; a step
// that names no rows for such a parameter is an error, not "no rows", so a caller that
// forgets cannot silently drop a gradient. The exchange runs after backward: the
// embedding is the first layer, so its gradient is the last one ready anyway.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/util/intrusive_ptr.h>

#include "absl/status/status.h"
#include "comm/communicator.h"

namespace torch::autograd {
struct Node;
}

namespace distrnn::comm {

class GradientReducer {
 public:
  static constexpr int64_t kDefaultBucketBytes = int64_t{25} << 20;
  static constexpr int64_t kDefaultFirstBucketBytes = int64_t{1} << 20;

  // `params` are the model's parameters in registration order (model->parameters());
  // they must be defined and the same list, in the same order, on every rank.
  // bucket_bytes >= 1, first_bucket_bytes >= 1.
  // `row_sparse` are indices into `params` exchanged as rows (Note [row-sparse
  // gradients]); the same on every rank. Each must have at least one dimension.
  GradientReducer(Communicator& comm, std::vector<at::Tensor> params, int64_t bucket_bytes = kDefaultBucketBytes,
                  bool async_host_buckets = false, int64_t first_bucket_bytes = kDefaultFirstBucketBytes,
                  std::vector<size_t> row_sparse = {});
  ~GradientReducer();  // removes the hooks
  GradientReducer(const GradientReducer&) = delete;
  GradientReducer& operator=(const GradientReducer&) = delete;

  // Averages every parameter's gradient over the ranks (see above).
  absl::Status AllReduceGradients();

  // Note [row-sparse gradients]: `rows` (integer ids into dimension 0 of
  // params[param_index], any shape) may have a non-zero gradient after this step's
  // backward on this rank. Kept until the next AllReduceGradients() or ZeroGradients().
  void AddTouchedRows(size_t param_index, const at::Tensor& rows);
  bool is_row_sparse(size_t param_index) const {
    return param_index < sparse_of_param_.size() && sparse_of_param_[param_index] >= 0;
  }

  // Note [gradients as bucket views]. Zeroes every gradient (whole buckets; gradients
  // that were replaced become views again), in place of the optimizer's zero_grad.
  void ZeroGradients();
  // The tensors that hold every parameter's gradient, for clipping: the bucket buffers
  // (plus each row-sparse parameter's own gradient) when every gradient is its view,
  // else each parameter's defined gradient.
  std::vector<at::Tensor> FlatGradients() const;

  // Note [overlap with backward]. EnableOverlap() once (it registers the hooks; a world
  // of one registers none); then ArmForBackward() before each step's last backward.
  void EnableOverlap();
  void ArmForBackward();
  bool overlap_enabled() const { return overlap_; }
  // Buckets started by the hooks during the last armed backward (for tests and logs).
  size_t buckets_started_in_backward() const { return started_in_backward_; }
  // Distinct rows this rank has sent for its row-sparse parameters since construction.
  int64_t rows_sent() const { return rows_sent_; }
  // Reductions of a row-sparse parameter that all-reduced its whole table instead (the
  // row exchange would have moved more bytes).
  int64_t whole_table_steps() const { return whole_table_steps_; }

  // The plan: for each bucket, in the order they are reduced, the indices (into
  // `params`) of its parameters in the order they sit in the bucket.
  const std::vector<std::vector<size_t>>& bucket_param_indices() const { return bucket_param_indices_; }
  // Bytes of each bucket's buffer.
  std::vector<int64_t> bucket_sizes_bytes() const;
  size_t num_buckets() const { return buckets_.size(); }
  int64_t bucket_bytes_cap() const { return bucket_bytes_; }

 private:
  struct Slot {
    size_t param_index;
    int64_t offset;  // elements into the bucket buffer
    int64_t numel;
    at::Tensor view;  // the slot, shaped like its parameter: the parameter's gradient
  };
  struct Bucket {
    at::Tensor buffer;  // flat, dtype/device of its parameters
    std::vector<Slot> slots;
  };
  // Note [row-sparse gradients]. The exchange buffers grow to the largest step seen
  // and are reused (fresh pages are slow here).
  struct SparseParam {
    size_t param_index;
    Slot slot;                     // slot.view: the dense gradient, its own storage
    std::vector<at::Tensor> rows;  // named since the last reduction
    at::Tensor send_ids, send_rows, recv_ids, recv_rows;
  };

  void Plan();
  // The hook of params_[index] (armed only).
  void OnGradientReady(size_t index);
  // Whether the parameter's gradient is still `slot`'s view.
  bool IsBound(const Slot& slot) const;
  // Makes the gradient `slot`'s view again, copying its values in (zeros if undefined).
  void Bind(const Slot& slot);
  // Starts bucket `b`'s all-reduce and keeps its work.
  absl::Status StartBucket(size_t b);
  // Sums a row-sparse parameter's touched rows over the ranks (Note [row-sparse gradients]).
  absl::Status ReduceRows(SparseParam& sparse);

  Communicator& comm_;
  std::vector<at::Tensor> params_;
  int64_t bucket_bytes_;
  int64_t first_bucket_bytes_;
  bool async_host_buckets_;
  std::vector<Bucket> buckets_;
  std::vector<std::vector<size_t>> bucket_param_indices_;
  std::vector<SparseParam> sparse_;
  std::vector<int> sparse_of_param_;  // per param index: index into sparse_, or -1
  int64_t rows_sent_ = 0;
  int64_t whole_table_steps_ = 0;

  // Overlap state (Note [overlap with backward]).
  bool overlap_ = false;
  bool armed_ = false;
  std::vector<c10::intrusive_ptr<torch::autograd::Node>> accumulators_;
  std::vector<uintptr_t> hook_keys_;
  std::vector<std::pair<size_t, size_t>> slot_of_param_;  // param index -> (bucket, slot)
  std::vector<char> slot_filled_;                         // per param index
  std::vector<size_t> pending_;                           // per bucket: slots not filled
  size_t next_to_start_ = 0;
  size_t started_in_backward_ = 0;
  std::vector<std::unique_ptr<Work>> works_;
  absl::Status start_error_;
};

}  // namespace distrnn::comm
