// LM batching as in the reference implementations (Zaremba's TensorFlow reader, the
// PyTorch word_language_model example), sharded by rank without changing the data:
//
//   token stream (N tokens) -> G columns of L = N / G consecutive tokens (tail dropped)
//   -> this rank owns columns [r*G/W, (r+1)*G/W)  (G = global batch, W = world size)
//   -> window i: inputs  = rows [i*T, i*T + T_i) of the [L, b] time-major matrix,
//                targets = the same rows shifted down by one.
//
// So W ranks with batch G/W see exactly the columns one rank with batch G sees.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"

namespace distrnn::data {

// Which of the G global columns rank `rank` of `world_size` owns: [begin, end).
struct ColumnRange {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
};
absl::StatusOr<ColumnRange> ColumnsOfRank(int64_t global_batch, int rank, int world_size);

// One BPTT window, time-major and row-major: element (t, j) is at t * batch + j.
struct LmWindow {
  int64_t steps = 0;
  int64_t batch = 0;
  std::vector<int64_t> inputs;
  std::vector<int64_t> targets;
};

class LmBatcher {
 public:
  // `full_windows_only`: drop the last, shorter window (training, as Zaremba); keep it
  // for evaluation so every token but the column tails is scored.
  static absl::StatusOr<LmBatcher> Create(const std::vector<int64_t>& tokens, int64_t global_batch,
                                          int64_t num_steps, int rank, int world_size,
                                          bool full_windows_only);

  int64_t num_windows() const { return num_windows_; }
  int64_t local_batch() const { return columns_.size(); }
  int64_t column_length() const { return column_length_; }
  ColumnRange columns() const { return columns_; }
  // Window i (0 <= i < num_windows()), written into `out` (buffers reused).
  void FillWindow(int64_t i, LmWindow& out) const;

 private:
  LmBatcher() = default;
  ColumnRange columns_;
  int64_t num_steps_ = 0;
  int64_t column_length_ = 0;
  int64_t num_windows_ = 0;
  std::vector<int64_t> matrix_;  // [column_length, local_batch], time-major
};

}  // namespace distrnn::data
