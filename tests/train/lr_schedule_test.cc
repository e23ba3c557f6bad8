#include "train/lr_schedule.h"

#include <cmath>

#include <gtest/gtest.h>

namespace distrnn::train {
namespace {

TEST(LrScheduleTest, ZarembaIsConstantThenDecays) {
  LrScheduleConfig config{LrScheduleKind::kZaremba, 1.0, 0.5, 4};
  LrSchedule schedule(config);
  std::vector<double> lrs = {schedule.lr()};
  for (int epoch = 1; epoch < 8; ++epoch) lrs.push_back(schedule.NextAfterEpoch(epoch, 5.0));
  EXPECT_EQ(lrs, (std::vector<double>{1, 1, 1, 1, 0.5, 0.25, 0.125, 0.0625}));
}

TEST(LrScheduleTest, PlateauDecaysOnlyWithoutImprovement) {
  LrScheduleConfig config{LrScheduleKind::kPlateau, 20.0, 0.25, 0};
  LrSchedule schedule(config);
  EXPECT_DOUBLE_EQ(schedule.NextAfterEpoch(1, 5.0), 20.0);  // first epoch improves on nothing
  EXPECT_DOUBLE_EQ(schedule.NextAfterEpoch(2, 4.0), 20.0);  // improved
  EXPECT_DOUBLE_EQ(schedule.NextAfterEpoch(3, 4.5), 5.0);   // worse: decay
  EXPECT_DOUBLE_EQ(schedule.NextAfterEpoch(4, 4.0), 1.25);  // equal is no improvement
  EXPECT_DOUBLE_EQ(schedule.NextAfterEpoch(5, 3.0), 1.25);
  EXPECT_DOUBLE_EQ(schedule.best_loss(), 3.0);
}

// A resume restores the checkpoint's lr for the rest of its epoch; a constant schedule
// then takes its base lr (which the user may have changed for the resumed run).
TEST(LrScheduleTest, ConstantTakesItsBaseLrAgainAfterARestore) {
  LrSchedule schedule(LrScheduleConfig{LrScheduleKind::kConstant, 0.001, 1.0, 0});
  schedule.Restore(0.005, 2.0);
  EXPECT_DOUBLE_EQ(schedule.lr(), 0.005);
  EXPECT_DOUBLE_EQ(schedule.NextAfterEpoch(7, 3.0), 0.001);
  EXPECT_DOUBLE_EQ(schedule.best_loss(), 2.0);
}

TEST(LrScheduleTest, ParsesNames) {
  EXPECT_EQ(*ParseLrSchedule("zaremba"), LrScheduleKind::kZaremba);
  EXPECT_EQ(*ParseLrSchedule("plateau"), LrScheduleKind::kPlateau);
  EXPECT_FALSE(ParseLrSchedule("cosine").ok());
}

}  // namespace
}  // namespace distrnn::train
