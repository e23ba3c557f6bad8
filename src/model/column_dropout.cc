#include "model/column_dropout.h"

#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/WrapDimUtils.h>
#include <ATen/core/Generator.h>

#include "common/split_mix.h"

namespace distrnn::model {
namespace {

using common::SplitMix64;

uint64_t Mix(uint64_t h, int64_t v) { return SplitMix64(h ^ SplitMix64(static_cast<uint64_t>(v))); }

uint64_t ColumnSeed(const DropoutKey& key, int64_t site, int64_t column) {
  const uint64_t h = Mix(Mix(Mix(SplitMix64(key.seed), key.step), site), column);
  // at::mt19937 keeps only the low 32 bits of its seed: fold the high half in.
  return h ^ (h >> 32);
}

}  // namespace

at::Tensor ColumnDropout(const at::Tensor& x, double p, const DropoutKey& key, int64_t site, int64_t batch_dim) {
  TORCH_CHECK(p >= 0.0 && p < 1.0, "dropout probability must lie in [0, 1), got ", p);
  if (p == 0.0) return x;
  TORCH_CHECK(x.dim() >= 1 && x.is_floating_point(), "column dropout takes a floating tensor with a batch axis");
  TORCH_CHECK(key.first_column >= 0, "first_column must be non-negative, got ", key.first_column);
  const int64_t dim = c10::maybe_wrap_dim(batch_dim, x.dim());
  const int64_t columns = x.size(dim);
  // [B, rest...]: column b's draws contiguous, in the row-major order of x.select(dim, b).
  std::vector<int64_t> shape = x.sizes().vec();
  shape.erase(shape.begin() + dim);
  shape.insert(shape.begin(), columns);
  at::Tensor uniform = at::empty(shape, at::kFloat);
  for (int64_t b = 0; b < columns; ++b) {
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(ColumnSeed(key, site, key.first_column + b));
    uniform.select(0, b).uniform_(0.0, 1.0, gen);
  }
  const at::Tensor keep = uniform.ge(p).to(at::kFloat).movedim(0, dim);
  return x * keep.to(x.options()).mul_(1.0 / (1.0 - p));
}

at::Tensor SiteDropout(const at::Tensor& x, double p, bool training, const std::optional<DropoutKey>& key,
                       int64_t site, int64_t batch_dim) {
  if (!training || p == 0.0) return x;
  if (key) return ColumnDropout(x, p, *key, site, batch_dim);
  return at::dropout(x, p, /*train=*/true);
}

}  // namespace distrnn::model
