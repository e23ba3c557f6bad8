#include "train/copy_curriculum.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "common/split_mix.h"

namespace distrnn::train {
namespace {

// Keeps the curriculum's draws apart from the sample symbols drawn from the same seed.
constexpr uint64_t kCurriculumSalt = 0x6375727269637531ULL;  // "curricu1"

// A uniform double in [0, 1) and an independent uniform integer in [1, n] from one step.
double UnitDraw(uint64_t key) { return static_cast<double>(common::SplitMix64(key) >> 11) * 0x1.0p-53; }
int64_t UniformUpTo(uint64_t key, int64_t n) {
  const uint64_t bits = common::SplitMix64(key + 1);
  return 1 + static_cast<int64_t>((static_cast<unsigned __int128>(bits) * static_cast<uint64_t>(n)) >> 64);
}

}  // namespace

absl::Status CopyCurriculum::Validate(const data::CopyTaskSpec& full) const {
  if (start < 0 || start > full.symbols) {
    return absl::InvalidArgumentError(absl::StrCat("--copy_curriculum_start must be in [0, ", full.symbols,
                                                   "] (0: no curriculum; at most --copy_train_symbols), got ", start));
  }
  if (step < 1) return absl::InvalidArgumentError(absl::StrCat("--copy_curriculum_step must be >= 1, got ", step));
  if (!(threshold >= 0.0 && threshold <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--copy_curriculum_threshold must be in [0, 1], got ", threshold));
  }
  if (!(mix >= 0.0 && mix <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--copy_curriculum_mix must be in [0, 1], got ", mix));
  }
  return absl::OkStatus();
}

data::CopyTaskSpec SpecWithSymbols(const data::CopyTaskSpec& full, int64_t symbols) {
  return {symbols, full.delimiters, std::min(full.copy_length, symbols)};
}

int64_t CurriculumSymbols(const CopyCurriculum& curriculum, int64_t level, const data::CopyTaskSpec& full,
                          uint64_t seed, int64_t global_step) {
  if (!curriculum.enabled()) return full.symbols;
  const uint64_t key = common::SplitMix64(seed ^ kCurriculumSalt) ^ common::SplitMix64(static_cast<uint64_t>(global_step));
  if (UnitDraw(key) < curriculum.mix) return UniformUpTo(key, full.symbols);
  return std::clamp<int64_t>(level, 1, full.symbols);
}

int64_t NextCurriculumLevel(const CopyCurriculum& curriculum, int64_t level, const data::CopyTaskSpec& full,
                            double level_accuracy) {
  if (!curriculum.enabled() || level_accuracy < curriculum.threshold) return level;
  return std::min(full.symbols, level + curriculum.step);
}

}  // namespace distrnn::train
