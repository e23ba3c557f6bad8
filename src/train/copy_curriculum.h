// A curriculum over the copy task's length K (Zaremba & Sutskever 2014, "Learning to
// Execute": their "combined" strategy). Copying 100 symbols from a zero state is out of
// reach of every cell in the original's 10 epochs (README); growing K is the standard way.
//
// The curriculum has a level K_c (start..K). Global step k trains on K_k symbols:
//   with probability `mix`, K_k uniform in [1, K] (every length stays in view; a model that
//   only ever saw K_c forgets the shorter ones and never meets the longer ones), else K_k = K_c.
// The draw depends only on (seed, k), so every rank and any world size sees the same K_k
// in step k, and a resumed run the same sequence (DESIGN.md invariant 1). The copy length
// follows: L_k = min(L, K_k), P stays.
//
// After each complete epoch rank 0 scores the held-out samples at the level's spec; when
// their copied-segment accuracy reaches `threshold`, the level grows by `step` (capped at
// K); threshold 0 makes it a fixed schedule, one step per epoch. The level is broadcast
// with the epoch's decision and saved in every checkpoint.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "data/copy_task.h"

namespace distrnn::train {

struct CopyCurriculum {
  int64_t start = 0;        // K_c of the first epoch; 0: no curriculum (always the full K)
  int64_t step = 5;         // how much K_c grows when the level is learnt
  double threshold = 0.95;  // held-out copied-segment accuracy that counts as learnt (0: every epoch)
  double mix = 0.25;        // share of steps at a uniform random K in [1, K]

  bool enabled() const { return start > 0; }
  // InvalidArgument naming the flag: start in [0, K], step >= 1, threshold in [0, 1],
  // mix in [0, 1].
  absl::Status Validate(const data::CopyTaskSpec& full) const;
};

// The full spec with K = symbols and L = min(full L, symbols).
data::CopyTaskSpec SpecWithSymbols(const data::CopyTaskSpec& full, int64_t symbols);

// K_k of global step `global_step` at level `level` (see top).
int64_t CurriculumSymbols(const CopyCurriculum& curriculum, int64_t level, const data::CopyTaskSpec& full,
                          uint64_t seed, int64_t global_step);

// The level after an epoch whose held-out copied-segment accuracy at `level` was
// `level_accuracy`.
int64_t NextCurriculumLevel(const CopyCurriculum& curriculum, int64_t level, const data::CopyTaskSpec& full,
                            double level_accuracy);

}  // namespace distrnn::train
