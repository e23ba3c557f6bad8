// The copy task (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016; Krause et al. 2016):
//
//   input  = K random symbols of {a,x,c,r,y,w,b,t,o}, P delimiters '$', L blanks ' '
//   target = K + P blanks, then the first L input symbols
//
// so a sample is T = K + P + L steps long and the copied segment is steps
// [K + P, K + P + L). Sample i depends only on (seed, i): symbol j of sample i is
// SplitMix64(SplitMix64(seed ^ SplitMix64(i)) + j) mapped to 0..8 by a multiply-high,
// so any sharding of the indices sees the same data, and the first K symbols of a sample
// do not depend on K, P or L (a test sample with K + M symbols extends the train one).
// Use different seeds (or disjoint index ranges) for train and test.
//
// Batches are time-major and row-major like LmWindow: element (t, b) is at t * batch + b.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "data/vocabulary.h"

namespace distrnn::data {

// Fixed ids: blank 0, delimiter 1, then the 9 symbols in the order of kCopySymbols.
inline constexpr char kCopySymbols[] = "axcrywbto";
inline constexpr int64_t kCopyNumSymbols = 9;
inline constexpr int64_t kCopyBlankId = 0;
inline constexpr int64_t kCopyDelimiterId = 1;
inline constexpr int64_t kCopyFirstSymbolId = 2;
inline constexpr int64_t kCopyVocabSize = 11;
// Upper bound on K + P + L: keeps batch sizes in int64 and catches unit mistakes.
inline constexpr int64_t kCopyMaxLength = 1 << 20;

// {" ", "$", "a", "x", "c", "r", "y", "w", "b", "t", "o"}.
Vocabulary CopyTaskVocabulary();

struct CopyTaskSpec {
  int64_t symbols = 10;     // K: random symbols to remember
  int64_t delimiters = 1;   // P: delimiters after them (the delay)
  int64_t copy_length = 10; // L: symbols to reproduce (the first L of the K)

  // K >= 1, P >= 0, 1 <= L <= K, K + P + L <= kCopyMaxLength; InvalidArgument otherwise,
  // naming the offending values.
  absl::Status Validate() const;
  int64_t length() const { return symbols + delimiters + copy_length; }
  int64_t copy_begin() const { return symbols + delimiters; }
  int64_t copy_end() const { return length(); }
};

// One sample: inputs and targets of length spec.length(). The spec must be valid.
struct CopySample {
  std::vector<int64_t> inputs;
  std::vector<int64_t> targets;
};
CopySample MakeCopySample(const CopyTaskSpec& spec, uint64_t seed, int64_t index);

// Time-major [steps, batch] inputs and targets of the samples `indices` (in that order),
// and mask[t * batch + b] = 1 on the copied segment t in [copy_begin, copy_end), else 0.
struct CopyBatch {
  int64_t steps = 0;
  int64_t batch = 0;
  int64_t copy_begin = 0;
  int64_t copy_end = 0;
  std::vector<int64_t> sample_indices;
  std::vector<int64_t> inputs;
  std::vector<int64_t> targets;
  std::vector<float> mask;
};
// InvalidArgument if the spec is invalid, `indices` is empty or has a negative index.
absl::StatusOr<CopyBatch> MakeCopyBatch(const CopyTaskSpec& spec, uint64_t seed, const std::vector<int64_t>& indices);

// The sample indices rank `rank` of `world_size` uses from the global batch of samples
// [first_index, first_index + global_batch): the slice [first_index + r*G/W,
// first_index + (r+1)*G/W). InvalidArgument as ColumnsOfRank (G not divisible by W, ...).
absl::StatusOr<std::vector<int64_t>> CopyShardIndices(int64_t first_index, int64_t global_batch, int rank,
                                                      int world_size);

// Counts (not ratios) so they add up over batches and ranks.
struct CopyAccuracy {
  int64_t correct_steps = 0;      // copied-segment positions predicted right
  int64_t total_steps = 0;        // copied-segment positions scored (batch * L)
  int64_t correct_copies = 0;     // sequences whose whole copied segment is right
  int64_t correct_sequences = 0;  // sequences right at every one of the T steps (blanks too)
  int64_t total_sequences = 0;
  // Every position (blanks and delimiters too): the original projects' "accuracy
  // averaged over all time steps".
  int64_t correct_positions = 0;
  int64_t total_positions = 0;

  double position_accuracy() const { return total_positions ? double(correct_positions) / total_positions : 0.0; }
  double step_accuracy() const { return total_steps ? double(correct_steps) / total_steps : 0.0; }
  double copy_accuracy() const { return total_sequences ? double(correct_copies) / total_sequences : 0.0; }
  double sequence_accuracy() const { return total_sequences ? double(correct_sequences) / total_sequences : 0.0; }
  CopyAccuracy& operator+=(const CopyAccuracy& other);
};
// Scores `predictions` (time-major [steps, batch] argmax ids, as batch.targets) against
// the batch's targets; InvalidArgument if the size differs.
absl::StatusOr<CopyAccuracy> ScoreCopyBatch(const CopyBatch& batch, const std::vector<int64_t>& predictions);

}  // namespace distrnn::data
