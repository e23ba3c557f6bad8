#include "data/classification_batcher.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "common/split_mix.h"

namespace distrnn::data {
namespace {

// Shuffles `v` in place (Fisher-Yates, back to front).
template <typename T>
void Shuffle(std::vector<T>& v, std::mt19937_64& rng) {
  for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[UniformBelow(rng, i)]);
}

}  // namespace

uint64_t UniformBelow(std::mt19937_64& rng, uint64_t n) {
  unsigned __int128 m = static_cast<unsigned __int128>(rng()) * n;
  uint64_t low = static_cast<uint64_t>(m);
  if (low < n) {
    const uint64_t threshold = (0 - n) % n;
    while (low < threshold) {
      m = static_cast<unsigned __int128>(rng()) * n;
      low = static_cast<uint64_t>(m);
    }
  }
  return static_cast<uint64_t>(m >> 64);
}

std::vector<int64_t> Permutation(int64_t n, std::mt19937_64& rng) {
  std::vector<int64_t> p(n);
  for (int64_t i = 0; i < n; ++i) p[i] = i;
  Shuffle(p, rng);
  return p;
}

std::mt19937_64 MakeEngine(uint64_t seed, uint64_t stream) {
  return std::mt19937_64(common::SplitMix64(common::SplitMix64(seed) ^ common::SplitMix64(stream + 0x5851F42D4C957F2DULL)));
}

absl::StatusOr<IndexSplit> SplitIndices(int64_t n, double valid_fraction, uint64_t seed) {
  if (!(valid_fraction >= 0.0 && valid_fraction < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("valid fraction must be in [0, 1), got ", valid_fraction));
  }
  const int64_t n_valid = static_cast<int64_t>(std::floor(static_cast<double>(n) * valid_fraction));
  if (n - n_valid < 1 || (valid_fraction > 0.0 && n_valid < 1)) {
    return absl::InvalidArgumentError(absl::StrCat("cannot split ", n, " examples with valid fraction ",
                                                   valid_fraction, ": a part would be empty"));
  }
  std::mt19937_64 rng = MakeEngine(seed, uint64_t{1} << 63);
  std::vector<int64_t> p = Permutation(n, rng);
  IndexSplit split;
  split.valid.assign(p.begin(), p.begin() + n_valid);
  split.train.assign(p.begin() + n_valid, p.end());
  std::sort(split.valid.begin(), split.valid.end());
  std::sort(split.train.begin(), split.train.end());
  return split;
}

ClassificationBatch MakeClassificationBatch(const ClassificationDataset& data, const std::vector<int64_t>& indices,
                                            int64_t pad_id) {
  ClassificationBatch b;
  b.batch = static_cast<int64_t>(indices.size());
  b.example_indices = indices;
  for (int64_t i : indices) {
    b.lengths.push_back(static_cast<int64_t>(data.sequences[i].size()));
    b.labels.push_back(data.labels[i]);
    b.max_len = std::max(b.max_len, b.lengths.back());
  }
  b.tokens.assign(b.max_len * b.batch, pad_id);
  for (int64_t j = 0; j < b.batch; ++j) {
    const std::vector<int64_t>& seq = data.sequences[indices[j]];
    for (size_t t = 0; t < seq.size(); ++t) b.tokens[t * b.batch + j] = seq[t];
  }
  return b;
}

absl::StatusOr<ClassificationBatcher> ClassificationBatcher::Create(ClassificationDataset data,
                                                                    const ClassificationBatcherOptions& options,
                                                                    int rank, int world_size) {
  const int64_t g = options.global_batch;
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    return absl::InvalidArgumentError(absl::StrCat("rank ", rank, " is outside world size ", world_size));
  }
  if (g < 1) return absl::InvalidArgumentError(absl::StrCat("batch size must be positive, got ", g));
  if (g % world_size != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("global batch size ", g, " is not divisible by the world size ", world_size));
  }
  if (options.bucket_batches < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("bucket size must be at least 1 batch, got ", options.bucket_batches));
  }
  if (data.sequences.size() != data.labels.size()) {
    return absl::InvalidArgumentError(absl::StrCat(data.sequences.size(), " sequences but ", data.labels.size(),
                                                   " labels"));
  }
  for (size_t i = 0; i < data.sequences.size(); ++i) {
    if (data.sequences[i].empty()) {
      return absl::InvalidArgumentError(absl::StrCat("example ", i, " has no tokens"));
    }
  }
  const int64_t n = static_cast<int64_t>(data.labels.size());
  if (n == 0 || (options.drop_last && n < g)) {
    return absl::InvalidArgumentError(absl::StrCat(n, " examples give no full global batch of ", g));
  }
  ClassificationBatcher b;
  b.data_ = std::move(data);
  b.options_ = options;
  b.rank_ = rank;
  b.world_size_ = world_size;
  return b;
}

std::vector<std::vector<int64_t>> ClassificationBatcher::PlanEpoch(int64_t epoch) const {
  const int64_t n = num_examples();
  const int64_t g = options_.global_batch;
  std::mt19937_64 rng = MakeEngine(options_.seed, static_cast<uint64_t>(epoch));
  std::vector<int64_t> order;
  if (options_.shuffle) {
    order = Permutation(n, rng);
  } else {
    order.resize(n);
    for (int64_t i = 0; i < n; ++i) order[i] = i;
  }
  if (options_.bucket_by_length) {
    const int64_t chunk = options_.bucket_batches * g;
    for (int64_t begin = 0; begin < n; begin += chunk) {
      std::stable_sort(order.begin() + begin, order.begin() + std::min(n, begin + chunk),
                       [&](int64_t a, int64_t b) { return data_.sequences[a].size() < data_.sequences[b].size(); });
    }
  }
  std::vector<std::vector<int64_t>> batches;
  for (int64_t begin = 0; begin + g <= n; begin += g) batches.emplace_back(order.begin() + begin, order.begin() + begin + g);
  if (options_.shuffle && options_.bucket_by_length) Shuffle(batches, rng);
  if (!options_.drop_last && n % g != 0) batches.emplace_back(order.end() - n % g, order.end());
  return batches;
}

std::pair<int64_t, int64_t> ClassificationBatcher::SliceOfRank(int64_t n, int rank, int world_size) {
  return {n * rank / world_size, n * (rank + 1) / world_size};
}

void ClassificationBatcher::FillBatch(int64_t i, ClassificationBatch& out) const {
  const std::vector<int64_t>& global = plan_.at(i);
  const auto [begin, end] = SliceOfRank(static_cast<int64_t>(global.size()), rank_, world_size_);
  out = MakeClassificationBatch(data_, std::vector<int64_t>(global.begin() + begin, global.begin() + end),
                                options_.pad_id);
}

}  // namespace distrnn::data
