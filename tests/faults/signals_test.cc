// Stop signals: SIGTERM or SIGINT to one process (or to one rank of two) -> every rank
// finishes the step, the checkpoint of that step is written, the job exits 143 / 130
// with one line, and --resume=auto finishes with the uninterrupted run's result. A
// second signal exits at once; without a run dir there is no checkpoint.
#include <signal.h>

#include <chrono>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "faults/job.h"
#include "faults/tiny_lm.h"
#include "support/temp_dir.h"

namespace distrnn::testing {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

struct Stopped {
  int exit_code = -1;
  double seconds = 0;  // from the signal to the job's end
  std::string output;
};

// Runs the tiny LM on `ranks`, sends `signo` to rank `target` after step `step`.
Stopped SignalRun(const TinyLm& lm, int ranks, const std::string& run, int target, int signo, int64_t step,
                  const std::string& extra = "") {
  Stopped out;
  Job job(lm.Command(ranks, run, extra));
  if (!job.WaitFor([&](const std::string& text) { return LastLoggedStep(text) >= step; }, 90)) {
    ADD_FAILURE() << "never reached step " << step << "\n" << job.output();
    return out;
  }
  const auto sent = std::chrono::steady_clock::now();
  ::kill(job.Ranks().at(target), signo);
  if (!job.Wait(60)) ADD_FAILURE() << "no end within 60 s of the signal\n" << job.output();
  out.exit_code = job.exit_code();
  out.seconds = std::chrono::duration<double>(job.end_time() - sent).count();
  out.output = job.output();
  return out;
}

// "stopped by SIGTERM after global step G (...)": G, or -1.
int64_t StoppedStep(const std::string& output) {
  const size_t at = output.find("after global step ");
  if (at == std::string::npos) return -1;
  return std::stoll(output.substr(at + std::string("after global step ").size()));
}

void ExpectStopsAndResumes(int ranks, int target, int signo) {
  TempDir dir;
  TinyLm lm(dir);
  const std::string run = dir.Join("run");
  const char* name = signo == SIGTERM ? "SIGTERM" : "SIGINT";
  Stopped stopped = SignalRun(lm, ranks, run, target, signo, 10);
  std::printf("[signals] %d ranks, %s to rank %d: exit %d %.2f s after the signal\n", ranks, name, target,
              stopped.exit_code, stopped.seconds);
  EXPECT_EQ(stopped.exit_code, 128 + signo) << stopped.output;
  EXPECT_LT(stopped.seconds, 30.0);
  // The target says it got the signal; rank 0 alone says how the job stopped.
  EXPECT_THAT(stopped.output, HasSubstr("[rank " + std::to_string(target) + "/" + std::to_string(ranks) +
                                        "] [signal] " + name));
  EXPECT_EQ(Count(stopped.output, std::string("distrnn: stopped by ") + name), 1) << stopped.output;
  EXPECT_THAT(stopped.output, Not(HasSubstr("MPI_Abort"))) << "an agreed stop needs no abort";
  const int64_t step = StoppedStep(stopped.output);
  ASSERT_GE(step, 10) << stopped.output;
  char checkpoint[64];
  std::snprintf(checkpoint, sizeof(checkpoint), "checkpoint-%09lld.pt", static_cast<long long>(step));
  EXPECT_EQ(LatestName(run), checkpoint) << "the stop's checkpoint is the latest";
  EXPECT_THAT(stopped.output, HasSubstr(std::string(checkpoint) + " written; continue with --resume=auto"));

  Job resume(lm.Command(ranks, run, "--resume=auto"));
  ASSERT_TRUE(resume.Wait(120)) << resume.output();
  ASSERT_EQ(resume.exit_code(), 0) << resume.output();
  EXPECT_THAT(resume.output(), HasSubstr("resumed from " + run + "/" + checkpoint));
  EXPECT_EQ(FinalValidLoss(run), TinyLm::ReferenceValidLoss(ranks)) << "the stop changed the trajectory";
}

TEST(Signals, SigtermOneProcessCheckpointsAndExits143) { ExpectStopsAndResumes(1, 0, SIGTERM); }
TEST(Signals, SigintOneProcessCheckpointsAndExits130) { ExpectStopsAndResumes(1, 0, SIGINT); }
// One rank alone gets the signal; the step's all-reduce tells the other.
TEST(Signals, SigtermToRank1Of2StopsBothRanks) { ExpectStopsAndResumes(2, 1, SIGTERM); }
TEST(Signals, SigtermToRank0Of2StopsBothRanks) { ExpectStopsAndResumes(2, 0, SIGTERM); }

TEST(Signals, SecondSignalExitsAtOnce) {
  TempDir dir;
  TinyLm lm(dir);
  const std::string run = dir.Join("run");
  // Steps of a few hundred ms (2 x LSTM 1024), so the second signal arrives mid-step.
  Job job(lm.Command(1, run, "--hidden_size=1024 --checkpoint_every_steps=0"));
  ASSERT_TRUE(job.WaitFor([](const std::string& out) { return LastLoggedStep(out) >= 1; }, 90)) << job.output();
  ::kill(job.pid(), SIGTERM);
  // Two signals sent at once would merge into one pending signal: wait for the first.
  ASSERT_TRUE(job.WaitFor([](const std::string& out) { return out.find("[signal] SIGTERM") != std::string::npos; },
                          30))
      << job.output();
  ::kill(job.pid(), SIGTERM);
  ASSERT_TRUE(job.Wait(30)) << job.output();
  EXPECT_EQ(job.exit_code(), 143) << job.output();
  EXPECT_THAT(job.output(), HasSubstr(" again: exiting at once with code 143"));
  EXPECT_THAT(job.output(), Not(HasSubstr("distrnn: stopped by"))) << "no step boundary, no checkpoint";
}

TEST(Signals, WithoutRunDirExitsWithoutCheckpoint) {
  TempDir dir;
  TinyLm lm(dir);
  Stopped stopped = SignalRun(lm, 2, "''", 1, SIGTERM, 5);
  EXPECT_EQ(stopped.exit_code, 143) << stopped.output;
  EXPECT_THAT(stopped.output, HasSubstr("no checkpoint (no --run_dir)"));
}

}  // namespace
}  // namespace distrnn::testing
