#include "data/copy_task.h"

#include "absl/strings/str_cat.h"
#include "common/split_mix.h"
#include "data/lm_batcher.h"

namespace distrnn::data {
namespace {

// Symbol j (0..8) of sample `index`.
int64_t SymbolAt(uint64_t sample_key, int64_t j) {
  const uint64_t bits = common::SplitMix64(sample_key + static_cast<uint64_t>(j));
  return static_cast<int64_t>((static_cast<unsigned __int128>(bits) * kCopyNumSymbols) >> 64);
}

}  // namespace

Vocabulary CopyTaskVocabulary() {
  std::vector<std::string> tokens = {" ", "$"};
  for (int64_t i = 0; i < kCopyNumSymbols; ++i) tokens.emplace_back(1, kCopySymbols[i]);
  return Vocabulary(tokens);
}

absl::Status CopyTaskSpec::Validate() const {
  const std::string values = absl::StrCat(" (K=", symbols, ", P=", delimiters, ", L=", copy_length, ")");
  if (symbols < 1) return absl::InvalidArgumentError(absl::StrCat("copy task: K (symbols) must be >= 1", values));
  if (delimiters < 0) {
    return absl::InvalidArgumentError(absl::StrCat("copy task: P (delimiters) must be >= 0", values));
  }
  if (copy_length < 1) {
    return absl::InvalidArgumentError(absl::StrCat("copy task: L (copy length) must be >= 1", values));
  }
  if (copy_length > symbols) {
    return absl::InvalidArgumentError(absl::StrCat(
        "copy task: L (copy length) must be <= K (symbols): only the K input symbols can be copied", values));
  }
  if (symbols > kCopyMaxLength || delimiters > kCopyMaxLength || length() > kCopyMaxLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("copy task: sequence length K+P+L must be <= ", kCopyMaxLength, values));
  }
  return absl::OkStatus();
}

CopySample MakeCopySample(const CopyTaskSpec& spec, uint64_t seed, int64_t index) {
  const uint64_t key = common::SplitMix64(seed ^ common::SplitMix64(static_cast<uint64_t>(index)));
  CopySample s;
  s.inputs.assign(spec.length(), kCopyBlankId);
  s.targets.assign(spec.length(), kCopyBlankId);
  for (int64_t j = 0; j < spec.symbols; ++j) s.inputs[j] = kCopyFirstSymbolId + SymbolAt(key, j);
  for (int64_t j = 0; j < spec.delimiters; ++j) s.inputs[spec.symbols + j] = kCopyDelimiterId;
  for (int64_t j = 0; j < spec.copy_length; ++j) s.targets[spec.copy_begin() + j] = s.inputs[j];
  return s;
}

absl::StatusOr<CopyBatch> MakeCopyBatch(const CopyTaskSpec& spec, uint64_t seed,
                                        const std::vector<int64_t>& indices) {
  if (absl::Status s = spec.Validate(); !s.ok()) return s;
  if (indices.empty()) return absl::InvalidArgumentError("copy task: a batch needs at least one sample index");
  CopyBatch b;
  b.steps = spec.length();
  b.batch = static_cast<int64_t>(indices.size());
  b.copy_begin = spec.copy_begin();
  b.copy_end = spec.copy_end();
  b.sample_indices = indices;
  b.inputs.resize(b.steps * b.batch);
  b.targets.resize(b.steps * b.batch);
  b.mask.assign(b.steps * b.batch, 0.0f);
  for (int64_t j = 0; j < b.batch; ++j) {
    if (indices[j] < 0) {
      return absl::InvalidArgumentError(absl::StrCat("copy task: negative sample index ", indices[j]));
    }
    const CopySample s = MakeCopySample(spec, seed, indices[j]);
    for (int64_t t = 0; t < b.steps; ++t) {
      b.inputs[t * b.batch + j] = s.inputs[t];
      b.targets[t * b.batch + j] = s.targets[t];
    }
  }
  for (int64_t t = b.copy_begin; t < b.copy_end; ++t) {
    for (int64_t j = 0; j < b.batch; ++j) b.mask[t * b.batch + j] = 1.0f;
  }
  return b;
}

absl::StatusOr<std::vector<int64_t>> CopyShardIndices(int64_t first_index, int64_t global_batch, int rank,
                                                      int world_size) {
  if (first_index < 0) return absl::InvalidArgumentError(absl::StrCat("copy task: negative sample index ", first_index));
  absl::StatusOr<ColumnRange> range = ColumnsOfRank(global_batch, rank, world_size);
  if (!range.ok()) return range.status();
  std::vector<int64_t> indices;
  for (int64_t c = range->begin; c < range->end; ++c) indices.push_back(first_index + c);
  return indices;
}

CopyAccuracy& CopyAccuracy::operator+=(const CopyAccuracy& other) {
  correct_steps += other.correct_steps;
  correct_positions += other.correct_positions;
  total_positions += other.total_positions;
  total_steps += other.total_steps;
  correct_copies += other.correct_copies;
  correct_sequences += other.correct_sequences;
  total_sequences += other.total_sequences;
  return *this;
}

absl::StatusOr<CopyAccuracy> ScoreCopyBatch(const CopyBatch& batch, const std::vector<int64_t>& predictions) {
  if (static_cast<int64_t>(predictions.size()) != batch.steps * batch.batch) {
    return absl::InvalidArgumentError(absl::StrCat("copy task: ", predictions.size(),
                                                   " predictions for a batch of ", batch.steps, " steps x ",
                                                   batch.batch, " sequences"));
  }
  CopyAccuracy acc;
  acc.total_sequences = batch.batch;
  acc.total_steps = batch.batch * (batch.copy_end - batch.copy_begin);
  acc.total_positions = batch.batch * batch.steps;
  for (int64_t j = 0; j < batch.batch; ++j) {
    bool copy_right = true;
    bool all_right = true;
    for (int64_t t = 0; t < batch.steps; ++t) {
      const bool right = predictions[t * batch.batch + j] == batch.targets[t * batch.batch + j];
      all_right = all_right && right;
      acc.correct_positions += right ? 1 : 0;
      if (t >= batch.copy_begin && t < batch.copy_end) {
        acc.correct_steps += right ? 1 : 0;
        copy_right = copy_right && right;
      }
    }
    acc.correct_copies += copy_right ? 1 : 0;
    acc.correct_sequences += all_right ? 1 : 0;
  }
  return acc;
}

}  // namespace distrnn::data
