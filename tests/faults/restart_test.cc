// launch/mpirun.sh --max_restarts=R: a job whose rank is SIGKILLed is relaunched with
// --resume=auto and finishes with the uninterrupted run's result; a stop signal to the
// script checkpoints and is not relaunched; nor is bad input.
#include <signal.h>

#include <cstdlib>
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

// launch/mpirun.sh from the source tree, on this build's binary.
std::string MpirunScript(const std::string& args) {
  const std::string binary = DistrnnBinary();
  const std::string build_dir = binary.substr(0, binary.rfind("/src/app/"));
  const char* mpiexec = std::getenv("DISTRNN_MPIEXEC");
  return std::string("DISTRNN_BUILD_DIR=") + build_dir + " MPIRUN=" + (mpiexec ? mpiexec : "mpiexec") +
         " MPIRUN_ARGS=--oversubscribe OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 exec bash " +
         testing::SourceDir() + "/launch/mpirun.sh " + args;
}

TEST(Restart, KilledRankIsRelaunchedAndFinishesLikeTheUninterruptedRun) {
  TempDir dir;
  TinyLm lm(dir);
  const std::string run = dir.Join("run");
  const std::string flags = lm.WriteFlagfile("tiny.flags", run);
  Job job(MpirunScript("--max_restarts=2 2 " + flags));
  ASSERT_TRUE(job.WaitFor([&](const std::string& out) { return LastLoggedStep(out) >= 20; }, 90)) << job.output();
  const auto ranks = job.Ranks();
  ASSERT_EQ(ranks.size(), 2u) << job.output();
  ASSERT_EQ(::kill(ranks.at(1), SIGKILL), 0);
  ASSERT_TRUE(job.Wait(180)) << job.output();
  EXPECT_EQ(job.exit_code(), 0) << job.output();
  EXPECT_EQ(Count(job.output(), "[mpirun.sh]"), 1) << job.output();
  EXPECT_THAT(job.output(), HasSubstr("restart 1/2: the job failed with code 137; relaunching with --resume=auto"));
  EXPECT_THAT(job.output(), HasSubstr("resumed from " + run + "/checkpoint-"));
  EXPECT_EQ(FinalValidLoss(run), TinyLm::ReferenceValidLoss(2));
}

TEST(Restart, StopSignalToTheScriptCheckpointsAndIsNotRelaunched) {
  TempDir dir;
  TinyLm lm(dir);
  const std::string run = dir.Join("run");
  const std::string flags = lm.WriteFlagfile("tiny.flags", run);
  Job job(MpirunScript("--max_restarts=2 2 " + flags));
  ASSERT_TRUE(job.WaitFor([&](const std::string& out) { return LastLoggedStep(out) >= 10; }, 90)) << job.output();
  ASSERT_EQ(::kill(job.pid(), SIGTERM), 0);
  ASSERT_TRUE(job.Wait(60)) << job.output();
  EXPECT_EQ(job.exit_code(), 143) << job.output();
  EXPECT_THAT(job.output(), HasSubstr("SIGTERM: asking the ranks to checkpoint and stop"));
  EXPECT_EQ(Count(job.output(), "distrnn: stopped by SIGTERM after global step "), 1) << job.output();
  EXPECT_THAT(job.output(), Not(HasSubstr("relaunching")));
  EXPECT_FALSE(LatestName(run).empty());
}

TEST(Restart, BadInputIsNotRelaunched) {
  TempDir dir;
  TinyLm lm(dir);
  const std::string flags = lm.WriteFlagfile("tiny.flags", dir.Join("run"));
  Job job(MpirunScript("--max_restarts=3 2 " + flags + " --hidden_size=0"));
  ASSERT_TRUE(job.Wait(60)) << job.output();
  EXPECT_EQ(job.exit_code(), 2) << job.output();
  EXPECT_THAT(job.output(), HasSubstr("the job exited with code 2: not relaunched"));
}

}  // namespace
}  // namespace distrnn::testing
