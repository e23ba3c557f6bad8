#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace distrnn::train {

absl::StatusOr<LrScheduleKind> ParseLrSchedule(const std::string& name) {
  if (name == "zaremba") return LrScheduleKind::kZaremba;
  if (name == "plateau") return LrScheduleKind::kPlateau;
  return absl::InvalidArgumentError(absl::StrCat("unknown --lr_schedule '", name, "' (expected zaremba or plateau)"));
}

double ZarembaLr(const LrScheduleConfig& config, int64_t epoch) {
  return config.base_lr * std::pow(config.decay, static_cast<double>(std::max<int64_t>(epoch - config.decay_start, 0)));
}

double LrSchedule::LrForEpoch(int64_t epoch) const {
  return config_.kind == LrScheduleKind::kZaremba ? ZarembaLr(config_, epoch) : config_.base_lr;
}

double LrSchedule::NextAfterEpoch(int64_t epoch, double valid_loss) {
  if (config_.kind == LrScheduleKind::kZaremba) {
    lr_ = ZarembaLr(config_, epoch + 1);
  } else if (!(valid_loss < best_loss_)) {
    lr_ *= config_.decay;
  }
  best_loss_ = std::min(best_loss_, valid_loss);
  return lr_;
}

}  // namespace distrnn::train
