// ColumnDropout: dropout whose mask for one batch entry ("column") is a pure function of
// (seed, step, site, global column), so N data-parallel ranks that each hold a slice of the
// columns apply exactly the masks one process holding the whole batch would.
//
// Per local column b (global column key.first_column + b) a CPU mt19937 generator, seeded by a
// SplitMix64 chain of (seed, step, site, column), draws u ~ U[0, 1) for the column's elements in
// the row-major order of x.select(batch_dim, b); an element is kept iff u >= p and then scaled by
// 1/(1-p). The draws are sequential, so for time-major [T, B, F] a shorter T gets a prefix of
// the same mask: ranks that pad their slice to its own max length still agree. The mask is
// built on CPU in float and then moved, so CPU and CUDA runs apply identical masks (at the cost
// of one host-to-device copy per site).
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/core/Tensor.h>

namespace distrnn::model {

struct DropoutKey {
  uint64_t seed = 0;
  int64_t step = 0;          // global training step: fresh masks every step
  int64_t first_column = 0;  // global index of the first local column
};

// Site ids: one per place a model draws a mask in a forward pass.
constexpr int64_t kEmbeddingDropoutSite = 0;  // embedding output
constexpr int64_t kOutputDropoutSite = 1;     // stack output (LM), pooled features (classifier)
// Input of stack layer `layer` >= 1.
constexpr int64_t BetweenLayersDropoutSite(int64_t layer) { return 16 + layer; }

// p in [0, 1); p == 0 returns x. Differentiable: x times a constant mask.
at::Tensor ColumnDropout(const at::Tensor& x, double p, const DropoutKey& key, int64_t site, int64_t batch_dim);

// What every model site applies: nothing unless training and p > 0; ColumnDropout when a key is
// set; otherwise at::dropout with torch's global RNG (masks then differ across ranks).
at::Tensor SiteDropout(const at::Tensor& x, double p, bool training, const std::optional<DropoutKey>& key,
                       int64_t site, int64_t batch_dim);

}  // namespace distrnn::model
