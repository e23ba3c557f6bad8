#include "data/lm_batcher.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace distrnn::data {

absl::StatusOr<ColumnRange> ColumnsOfRank(int64_t global_batch, int rank, int world_size) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " is outside world size ", world_size));
  }
  if (global_batch < 1) return absl::InvalidArgumentError("batch size must be positive");
  if (global_batch % world_size != 0) {
    return absl::InvalidArgumentError(absl::StrCat("global batch size ", global_batch,
                                                   " is not divisible by the world size ", world_size));
  }
  const int64_t per_rank = global_batch / world_size;
  return ColumnRange{rank * per_rank, (rank + 1) * per_rank};
}

absl::StatusOr<LmBatcher> LmBatcher::Create(const std::vector<int64_t>& tokens, int64_t global_batch,
                                            int64_t num_steps, int rank, int world_size,
                                            bool full_windows_only) {
  if (num_steps < 1) return absl::InvalidArgumentError("num_steps must be positive");
  auto columns = ColumnsOfRank(global_batch, rank, world_size);
  if (!columns.ok()) return columns.status();
  const int64_t column_length = static_cast<int64_t>(tokens.size()) / global_batch;
  if (column_length < 2) {
    return absl::InvalidArgumentError(absl::StrCat("corpus of ", tokens.size(), " tokens is too short for batch size ",
                                                   global_batch, " (each column needs at least 2 tokens)"));
  }
  LmBatcher b;
  b.columns_ = *columns;
  b.num_steps_ = num_steps;
  b.column_length_ = column_length;
  const int64_t predictable = column_length - 1;  // the last token of a column is only a target
  b.num_windows_ = full_windows_only ? predictable / num_steps : (predictable + num_steps - 1) / num_steps;
  if (b.num_windows_ < 1) {
    return absl::InvalidArgumentError(absl::StrCat("corpus too short: columns of ", column_length,
                                                   " tokens give no full window of ", num_steps, " steps"));
  }
  const int64_t batch = b.columns_.size();
  b.matrix_.resize(column_length * batch);
  for (int64_t j = 0; j < batch; ++j) {
    const int64_t offset = (b.columns_.begin + j) * column_length;
    for (int64_t t = 0; t < column_length; ++t) b.matrix_[t * batch + j] = tokens[offset + t];
  }
  return b;
}

void LmBatcher::FillWindow(int64_t i, LmWindow& out) const {
  const int64_t batch = local_batch();
  const int64_t start = i * num_steps_;
  const int64_t steps = std::min(num_steps_, column_length_ - 1 - start);
  out.steps = steps;
  out.batch = batch;
  out.inputs.assign(matrix_.begin() + start * batch, matrix_.begin() + (start + steps) * batch);
  out.targets.assign(matrix_.begin() + (start + 1) * batch, matrix_.begin() + (start + 1 + steps) * batch);
}

}  // namespace distrnn::data
