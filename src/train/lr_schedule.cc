#include "train/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"

namespace distrnn::train {

absl::StatusOr<LrScheduleKind> ParseLrSchedule(const std::string& name) {
  if (name == "constant") return LrScheduleKind::kConstant;
  if (name == "zaremba") return LrScheduleKind::kZaremba;
  if (name == "plateau") return LrScheduleKind::kPlateau;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --lr_schedule '", name, "' (expected constant, zaremba or plateau)"));
}

const char* LrScheduleName(LrScheduleKind kind) {
  switch (kind) {
    case LrScheduleKind::kConstant: return "constant";
    case LrScheduleKind::kZaremba: return "zaremba";
    case LrScheduleKind::kPlateau: return "plateau";
  }
  return "?";
}

absl::Status LrScheduleConfig::Validate() const {
  if (!(base_lr > 0.0)) return absl::InvalidArgumentError(absl::StrCat("--lr must be positive, got ", base_lr));
  if (!(decay > 0.0 && decay <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--lr_decay must be in (0, 1], got ", decay));
  }
  if (decay_start < 0) return absl::InvalidArgumentError("--decay_start_epoch must be >= 0");
  return absl::OkStatus();
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
  } else if (config_.kind == LrScheduleKind::kConstant) {
    lr_ = config_.base_lr;  // after a resume with another --lr, the new one from here on
  } else if (config_.kind == LrScheduleKind::kPlateau && !(valid_loss < best_loss_)) {
    lr_ *= config_.decay;
  }
  best_loss_ = std::min(best_loss_, valid_loss);
  return lr_;
}

}  // namespace distrnn::train
