// Learning-rate schedules decided once per epoch (on rank 0, then broadcast).
//
//  zaremba: lr(e) = base * decay^max(e - decay_start, 0) for epoch e = 1, 2, ... (the
//           TensorFlow PTB recipe: constant for `decay_start` epochs, then decayed).
//  constant: base lr throughout (the Adam tasks).
//  plateau: lr is multiplied by `decay` after an epoch whose validation loss did not
//           improve on the best so far (the PyTorch word_language_model recipe).
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace distrnn::train {

enum class LrScheduleKind { kConstant, kZaremba, kPlateau };
absl::StatusOr<LrScheduleKind> ParseLrSchedule(const std::string& name);
const char* LrScheduleName(LrScheduleKind kind);

struct LrScheduleConfig {
  LrScheduleKind kind = LrScheduleKind::kZaremba;
  double base_lr = 1.0;
  double decay = 0.5;
  int64_t decay_start = 4;  // zaremba: last epoch at base_lr

  absl::Status Validate() const;
};

// The learning rate for epoch `epoch` (1-based) of the zaremba schedule.
double ZarembaLr(const LrScheduleConfig& config, int64_t epoch);

// Applies the schedule after epoch `epoch` ended with validation loss `valid_loss`;
// returns the lr for the next epoch. Stateful for plateau (best loss so far).
class LrSchedule {
 public:
  explicit LrSchedule(const LrScheduleConfig& config) : config_(config), lr_(LrForEpoch(1)) {}
  double lr() const { return lr_; }
  double NextAfterEpoch(int64_t epoch, double valid_loss);
  // Restores state after a resume: the restored lr finishes the current epoch; constant
  // and zaremba schedules then follow their (possibly changed) base lr, plateau carries
  // the restored lr on.
  void Restore(double lr, double best_loss) { lr_ = lr; best_loss_ = best_loss; }
  double best_loss() const { return best_loss_; }

 private:
  double LrForEpoch(int64_t epoch) const;
  LrScheduleConfig config_;
  double lr_;
  double best_loss_ = 1e300;
};

}  // namespace distrnn::train
