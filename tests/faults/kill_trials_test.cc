// Kill trials (DESIGN.md invariants 4 and 5): SIGKILL a randomly chosen rank of a 2- or
// 3-rank run at a random step; the job must end non-zero within 30 s naming the dead
// rank, and `--resume=auto` must then finish with the final validation loss of the
// uninterrupted run, bit for bit (same world size). Also SIGKILL in the middle of a
// checkpoint write: `latest` and the earlier checkpoints stay loadable.
//
// Seeded: DISTRNN_FAULT_SEED (default 8). Trials: DISTRNN_KILL_TRIALS (default 10: six
// on 2 ranks, four on 3); a soak is e.g. DISTRNN_KILL_TRIALS=100. The summary line gives
// the figures the README quotes (median and max seconds from the kill to the job's end).
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "faults/job.h"
#include "faults/tiny_lm.h"
#include "support/temp_dir.h"

namespace distrnn::testing {
namespace {

using ::testing::HasSubstr;

int EnvInt(const char* name, int fallback) {
  const char* value = std::getenv(name);
  return value != nullptr && *value != '\0' ? std::atoi(value) : fallback;
}

// Failed assertions so far in the running test.
int FailureCount() {
  const ::testing::TestResult* result = ::testing::UnitTest::GetInstance()->current_test_info()->result();
  int failed = 0;
  for (int i = 0; i < result->total_part_count(); ++i) failed += result->GetTestPartResult(i).failed() ? 1 : 0;
  return failed;
}

// The global step of a file named checkpoint-<9 digits>.pt.
int64_t StepOf(const std::string& name) { return std::stoll(name.substr(std::string("checkpoint-").size(), 9)); }

struct Trial {
  int ranks = 2;
  int victim = 0;
  int64_t kill_step = 1;   // after rank 0 logged this global step
  int delay_ms = 0;        // and this much later
};

struct TrialOutcome {
  double seconds_to_end = 0;  // from the SIGKILL to the job's end
  bool resumed = false;       // from a checkpoint (else the kill came before the first)
};

// One trial; fills `outcome`. Fatal assertions return early.
void RunTrial(const TinyLm& lm, const TempDir& dir, int index, const Trial& trial, TrialOutcome& outcome) {
  const std::string run = dir.Join("trial_" + std::to_string(index));
  SCOPED_TRACE(::testing::Message() << "trial " << index << ": " << trial.ranks << " ranks, SIGKILL rank "
                                    << trial.victim << " after step " << trial.kill_step << " + "
                                    << trial.delay_ms << " ms");
  Job job(lm.Command(trial.ranks, run));
  ASSERT_TRUE(job.WaitFor([&](const std::string& out) { return LastLoggedStep(out) >= trial.kill_step; }, 90))
      << job.output();
  std::this_thread::sleep_for(std::chrono::milliseconds(trial.delay_ms));
  const auto ranks = job.Ranks();
  ASSERT_EQ(static_cast<int>(ranks.size()), trial.ranks) << job.output();
  ASSERT_TRUE(job.running()) << "the job ended before the kill\n" << job.output();
  const auto killed_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(ranks.at(trial.victim), SIGKILL), 0);
  ASSERT_TRUE(job.Wait(60)) << "the job did not end within 60 s of the kill\n" << job.output();
  outcome.seconds_to_end = std::chrono::duration<double>(job.end_time() - killed_at).count();
  EXPECT_NE(job.exit_code(), 0) << job.output();
  EXPECT_LT(outcome.seconds_to_end, 30.0) << job.output();
  // mpiexec names the dead rank: "process rank 1 with PID ... exited on signal 9 (Killed)".
  EXPECT_THAT(job.output(), HasSubstr("process rank " + std::to_string(trial.victim) + " with PID"));
  EXPECT_THAT(job.output(), HasSubstr("signal 9"));

  const std::string latest = LatestName(run);
  Job resume(lm.Command(trial.ranks, run, "--resume=auto"));
  ASSERT_TRUE(resume.Wait(120)) << resume.output();
  ASSERT_EQ(resume.exit_code(), 0) << resume.output();
  outcome.resumed = !latest.empty();
  if (outcome.resumed) EXPECT_THAT(resume.output(), HasSubstr("resumed from " + run + "/" + latest));
  const std::optional<double> loss = FinalValidLoss(run);
  ASSERT_TRUE(loss.has_value());
  const double want = TinyLm::ReferenceValidLoss(trial.ranks);
  EXPECT_NEAR(*loss, want, 1e-6 * std::abs(want));
  EXPECT_EQ(*loss, want) << "the same world size resumes bit for bit";
}

TEST(KillTrials, RandomRankAtRandomStepThenResume) {
  const int seed = EnvInt("DISTRNN_FAULT_SEED", 8);
  const int count = EnvInt("DISTRNN_KILL_TRIALS", 10);
  std::mt19937 rng(seed);
  std::vector<Trial> trials;
  for (int i = 0; i < count; ++i) {
    Trial t;
    t.ranks = i % 5 < 3 ? 2 : 3;  // 6 of 10 on 2 ranks
    t.victim = std::uniform_int_distribution<int>(0, t.ranks - 1)(rng);
    t.kill_step = std::uniform_int_distribution<int64_t>(1, kTinyLmSteps - 3)(rng);
    t.delay_ms = std::uniform_int_distribution<int>(0, 40)(rng);
    trials.push_back(t);
  }
  TempDir dir;
  TinyLm lm(dir);
  TinyLm::ReferenceValidLoss(2);
  TinyLm::ReferenceValidLoss(3);
  std::vector<double> seconds;
  int passed = 0, resumed = 0;
  for (int i = 0; i < count; ++i) {
    TrialOutcome outcome;
    const int failures_before = FailureCount();
    RunTrial(lm, dir, i, trials[i], outcome);
    std::error_code ec;
    std::filesystem::remove_all(dir.Join("trial_" + std::to_string(i)), ec);
    const bool ok = FailureCount() == failures_before;
    std::printf("[kill trial %d] %d ranks, rank %d after step %lld: %s, job ended %.2f s after the kill, %s\n", i,
                trials[i].ranks, trials[i].victim, static_cast<long long>(trials[i].kill_step), ok ? "passed" : "FAILED",
                outcome.seconds_to_end, outcome.resumed ? "resumed from a checkpoint" : "restarted fresh");
    std::fflush(stdout);
    passed += ok ? 1 : 0;
    resumed += outcome.resumed ? 1 : 0;
    if (outcome.seconds_to_end > 0) seconds.push_back(outcome.seconds_to_end);
  }
  std::sort(seconds.begin(), seconds.end());
  const double median = seconds.empty() ? 0 : seconds[seconds.size() / 2];
  const double max = seconds.empty() ? 0 : seconds.back();
  std::printf("[kill trials] seed %d: %d trials, %d passed, %d resumed from a checkpoint; kill -> job end: median "
              "%.2f s, max %.2f s\n", seed, count, passed, resumed, median, max);
  EXPECT_EQ(passed, count);
}

// SIGKILL while rank 0 writes a checkpoint (a model big enough that the write takes a
// while, caught by its temporary file appearing): `latest` and every step checkpoint
// left load, and the partial file is only ever the temporary one.
TEST(KillTrials, DuringACheckpointWrite) {
  TempDir dir;
  TinyLm lm(dir);
  const std::string run = dir.Join("run");
  // 2 x LSTM 1024: 16.8 M parameters, 67 MB per checkpoint.
  const std::string big = "--hidden_size=1024 --checkpoint_every_steps=1";
  Job job(lm.Command(1, run, big + " --max_steps=12"));
  ASSERT_TRUE(job.WaitFor([&](const std::string&) { return !LatestName(run).empty(); }, 120)) << job.output();
  std::vector<std::string> temporary;
  ASSERT_TRUE(job.WaitFor(
      [&](const std::string&) {
        temporary = FilesMatching(run, "checkpoint-", ".pt.tmp.");
        return !temporary.empty();
      },
      120))
      << "no checkpoint write seen\n" << job.output();
  ASSERT_EQ(::kill(job.pid(), SIGKILL), 0);
  ASSERT_TRUE(job.Wait(30));
  EXPECT_EQ(job.exit_code(), 128 + SIGKILL);
  // The kill landed mid-write: the temporary file is still there, partial.
  EXPECT_FALSE(FilesMatching(run, "checkpoint-", ".pt.tmp.").empty()) << "the write had finished: not a mid-write kill";

  const std::string latest = LatestName(run);
  ASSERT_FALSE(latest.empty());
  std::vector<std::string> steps;
  for (const std::string& name : FilesMatching(run, "checkpoint-", ".pt")) {
    if (name.find(".tmp.") == std::string::npos) steps.push_back(name);
  }
  EXPECT_THAT(steps, ::testing::Contains(latest));
  EXPECT_GE(steps.size(), 1u);
  for (const std::string& name : steps) {
    // Loading with --max_steps equal to its step trains nothing: a pure load (and test).
    Job load(lm.Command(1, run, big + " --max_steps=" + std::to_string(StepOf(name)) + " --resume=" + run + "/" + name));
    ASSERT_TRUE(load.Wait(120)) << load.output();
    EXPECT_EQ(load.exit_code(), 0) << name << "\n" << load.output();
    EXPECT_THAT(load.output(), HasSubstr("resumed from " + run + "/" + name));
  }
  // And --resume=auto takes `latest`.
  Job resume(lm.Command(1, run, big + " --max_steps=" + std::to_string(StepOf(latest)) + " --resume=auto"));
  ASSERT_TRUE(resume.Wait(120)) << resume.output();
  EXPECT_EQ(resume.exit_code(), 0) << resume.output();
  EXPECT_THAT(resume.output(), HasSubstr("resumed from " + run + "/" + latest));
}

}  // namespace
}  // namespace distrnn::testing
