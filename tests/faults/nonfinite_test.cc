// Non-finite values (--on_nonfinite): a NaN injected into one rank's loss or gradient
// (--fault_kind=nan_loss|nan_grad at --fault_step on --fault_rank). stop (the default):
// every rank stops at that step, exit 3, one line naming the step, the rank and loss or
// gradient. skip: every rank skips the update, the metrics count it, the run goes on;
// past --max_skipped it stops.
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "faults/job.h"
#include "faults/tiny_lm.h"
#include "support/temp_dir.h"

namespace distrnn::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Ran {
  int exit_code = -1;
  std::string output;
};

Ran Train(const TinyLm& lm, int ranks, const std::string& run, const std::string& extra) {
  Job job(lm.Command(ranks, run, extra));
  Ran out;
  if (!job.Wait(120)) ADD_FAILURE() << "hung\n" << job.output();
  out.exit_code = job.exit_code();
  out.output = job.output();
  return out;
}

TEST(NonFinite, NanLossOnOneProcessStops) {
  TempDir dir;
  TinyLm lm(dir);
  Ran ran = Train(lm, 1, dir.Join("run"), "--fault_rank=0 --fault_step=7 --fault_kind=nan_loss");
  EXPECT_EQ(ran.exit_code, 3) << ran.output;
  EXPECT_THAT(ran.output, HasSubstr("distrnn: error: non-finite loss (nan) on rank 0 of 1 at global step 7 "
                                    "(step 7 of epoch 1); stopping (--on_nonfinite=skip would skip such updates)"));
}

TEST(NonFinite, NanLossOnRank1Of2StopsBothRanksWithOneLine) {
  TempDir dir;
  TinyLm lm(dir);
  Ran ran = Train(lm, 2, dir.Join("run"), "--fault_rank=1 --fault_step=7 --fault_kind=nan_loss");
  EXPECT_EQ(ran.exit_code, 3) << ran.output;
  EXPECT_EQ(Count(ran.output, "non-finite loss (nan) on rank 1 of 2 at global step 7 (step 7 of epoch 1)"), 1)
      << ran.output;
  EXPECT_THAT(ran.output, Not(HasSubstr("MPI_Abort"))) << "every rank takes the same branch: nothing to abort";
  // Nothing was trained past the bad step: its progress line is the last.
  EXPECT_EQ(LastLoggedStep(ran.output), 6) << ran.output;
}

TEST(NonFinite, NanGradientOnRank0Of3Stops) {
  TempDir dir;
  TinyLm lm(dir);
  Ran ran = Train(lm, 3, dir.Join("run"),
                  "--batch_size=6 --fault_rank=0 --fault_step=4 --fault_kind=nan_grad");
  EXPECT_EQ(ran.exit_code, 3) << ran.output;
  EXPECT_EQ(Count(ran.output, "distrnn: error: non-finite gradient (norm nan after averaging over 3 ranks; every "
                              "rank's loss was finite"), 1)
      << ran.output;
  EXPECT_THAT(ran.output, HasSubstr(") at global step 4 (step 4 of epoch 1); stopping"));
}

TEST(NonFinite, SkipSkipsTheUpdateOnEveryRankAndCountsIt) {
  TempDir dir;
  TinyLm lm(dir);
  const std::string run = dir.Join("run");
  Ran ran = Train(lm, 2, run, "--on_nonfinite=skip --fault_rank=1 --fault_step=7 --fault_kind=nan_loss");
  ASSERT_EQ(ran.exit_code, 0) << ran.output;
  EXPECT_THAT(ran.output, HasSubstr("non-finite loss (nan) on rank 1 of 2 at global step 7 (step 7 of epoch 1): "
                                    "update skipped (1 of at most 10, --max_skipped)"));
  EXPECT_THAT(ran.output, HasSubstr("| skipped 1 steps |"));
  const auto records = MetricsRecords(run, "nonfinite");
  ASSERT_EQ(records.size(), 1u);
  EXPECT_THAT(records[0], HasSubstr("\"action\":\"skip\""));
  EXPECT_THAT(records[0], HasSubstr("\"ranks\":[1]"));
  const auto loss = FinalValidLoss(run);
  ASSERT_TRUE(loss.has_value());
  EXPECT_TRUE(std::isfinite(*loss));
  // The skipped step changed the trajectory (no update at step 7), and only that.
  EXPECT_NE(*loss, TinyLm::ReferenceValidLoss(2));
}

TEST(NonFinite, SkipStopsPastMaxSkipped) {
  TempDir dir;
  TinyLm lm(dir);
  Ran ran = Train(lm, 2, dir.Join("run"),
                  "--on_nonfinite=skip --max_skipped=0 --fault_rank=0 --fault_step=3 --fault_kind=nan_grad");
  EXPECT_EQ(ran.exit_code, 3) << ran.output;
  EXPECT_THAT(ran.output, HasSubstr("at global step 3 (step 3 of epoch 1); stopping: 1 steps skipped, more than "
                                    "--max_skipped=0"));
}

TEST(NonFinite, BadFlagsAreRefused) {
  TempDir dir;
  TinyLm lm(dir);
  Ran ran = Train(lm, 1, dir.Join("run"), "--on_nonfinite=ignore");
  EXPECT_EQ(ran.exit_code, 2) << ran.output;
  EXPECT_THAT(ran.output, HasSubstr("unknown --on_nonfinite 'ignore' (expected stop or skip)"));
  ran = Train(lm, 1, dir.Join("run"), "--max_skipped=-1");
  EXPECT_EQ(ran.exit_code, 2) << ran.output;
  ran = Train(lm, 1, dir.Join("run"), "--fault_kind=segv");
  EXPECT_EQ(ran.exit_code, 2) << ran.output;
}

}  // namespace
}  // namespace distrnn::testing
