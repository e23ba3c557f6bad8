// SplitMix64 (Steele, Lea, Flood 2014): a counter-based 64-bit mixer. Data that must be
// the same whatever the sharding (copy-task samples, per-epoch permutations) is drawn
// from it, keyed by (seed, index), instead of from a sequential generator.
#pragma once

#include <cstdint>

namespace distrnn::common {

inline uint64_t SplitMix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

}  // namespace distrnn::common
