// Batches of variable-length labelled sequences (IMDB), sharded by rank without changing
// the data (DESIGN.md invariant 1):
//
//   epoch e: one global permutation of the N examples from (seed, e)
//            [std::mt19937_64 seeded with SplitMix64(seed, e), our own Fisher-Yates with
//             unbiased bounded draws, so the order is the same on every platform]
//   optional length bucketing: chunks of bucket_batches * G consecutive examples of the
//            permutation are stable-sorted by length and cut into global batches of G;
//            then the order of the batches is shuffled by the same generator
//   global batch k (size n; n == G except perhaps the last one):
//            rank r of W takes positions [r*n/W, (r+1)*n/W)  (integer division)
//
// G must be divisible by W, so full batches split evenly. With drop_last (training) the
// last partial global batch is dropped and every rank runs the same number of steps; without
// it (evaluation) the partial batch is last (also after bucketing and shuffling) and is
// split by the same formula, so a rank may get fewer examples, or none when n < W
// (FillBatch then gives batch == 0; the caller skips compute but still joins collectives).
//
// Batches are time-major: tokens[t * batch + b] for t < max_len, padded with pad_id after
// each sequence's length (the layout pack_padded_sequence takes with batch_first=false;
// lengths are not sorted, use enforce_sorted=false).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace distrnn::data {

// Uniform in [0, n) from a 64-bit engine, the same on every platform (Lemire's method).
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n);
// A permutation of 0..n-1 drawn by Fisher-Yates with UniformBelow.
std::vector<int64_t> Permutation(int64_t n, std::mt19937_64& rng);
// The engine for (seed, stream): epochs use stream = epoch.
std::mt19937_64 MakeEngine(uint64_t seed, uint64_t stream);

// A seeded split of 0..n-1: `valid` = floor(n * valid_fraction) indices of a permutation
// drawn from (seed, stream 2^63), `train` the rest; both sorted ascending.
// valid_fraction in [0, 1); InvalidArgument if a non-empty part would be empty.
struct IndexSplit {
  std::vector<int64_t> train, valid;
};
absl::StatusOr<IndexSplit> SplitIndices(int64_t n, double valid_fraction, uint64_t seed);

struct ClassificationDataset {
  std::vector<std::vector<int64_t>> sequences;  // token ids, each non-empty
  std::vector<int64_t> labels;                  // one per sequence
};

struct ClassificationBatcherOptions {
  int64_t global_batch = 32;  // G
  uint64_t seed = 0;
  bool shuffle = true;          // false: permutation = identity and batch order kept
  bool bucket_by_length = true;
  int64_t bucket_batches = 50;  // chunk size in global batches
  bool drop_last = true;        // training: true; evaluation: false
  int64_t pad_id = 0;
};

struct ClassificationBatch {
  int64_t batch = 0;    // B: this rank's examples
  int64_t max_len = 0;  // T_max: the longest of them
  std::vector<int64_t> tokens;   // [T_max, B] time-major, padded with pad_id
  std::vector<int64_t> lengths;  // [B]
  std::vector<int64_t> labels;   // [B]
  std::vector<int64_t> example_indices;  // [B] indices into the dataset
};

// Examples `indices` of `data` as one batch (any indices, e.g. a rank's slice).
ClassificationBatch MakeClassificationBatch(const ClassificationDataset& data, const std::vector<int64_t>& indices,
                                            int64_t pad_id);

class ClassificationBatcher {
 public:
  // InvalidArgument: G < 1, G % world_size != 0, bad rank, bucket_batches < 1, labels and
  // sequences of different sizes, an empty sequence (naming its index), no full global
  // batch with drop_last.
  static absl::StatusOr<ClassificationBatcher> Create(ClassificationDataset data,
                                                      const ClassificationBatcherOptions& options, int rank,
                                                      int world_size);

  // The global batches of `epoch` (example indices); the same for every rank and world size.
  std::vector<std::vector<int64_t>> PlanEpoch(int64_t epoch) const;
  // Plans `epoch` for FillBatch.
  void StartEpoch(int64_t epoch) { plan_ = PlanEpoch(epoch); }
  int64_t num_batches() const { return static_cast<int64_t>(plan_.size()); }
  // This rank's slice of global batch i of the current epoch (0 <= i < num_batches()).
  void FillBatch(int64_t i, ClassificationBatch& out) const;
  // The positions [begin, end) of a global batch of size n that `rank` takes.
  static std::pair<int64_t, int64_t> SliceOfRank(int64_t n, int rank, int world_size);

  const ClassificationDataset& data() const { return data_; }
  int64_t num_examples() const { return static_cast<int64_t>(data_.labels.size()); }

 private:
  ClassificationBatcher() = default;
  ClassificationDataset data_;
  ClassificationBatcherOptions options_;
  int rank_ = 0;
  int world_size_ = 1;
  std::vector<std::vector<int64_t>> plan_;
};

}  // namespace distrnn::data
