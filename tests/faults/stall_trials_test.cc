// Stall trials (DESIGN.md invariant 5): SIGSTOP one rank of a 2- or 3-rank run at a
// random step. The ranks left waiting in a collective end the job through the watchdog
// (--collective_timeout_s, 5 s here) with exit 75 within 30 s, every waiting rank
// logging a line that names itself and the collective, the stopped one logging none.
#include <signal.h>

#include <chrono>
#include <random>
#include <regex>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "faults/job.h"
#include "faults/tiny_lm.h"
#include "support/temp_dir.h"

namespace distrnn::testing {
namespace {

using ::testing::HasSubstr;

void StallTrial(int ranks, int victim, int64_t step) {
  SCOPED_TRACE(::testing::Message() << ranks << " ranks, SIGSTOP rank " << victim << " after step " << step);
  TempDir dir;
  TinyLm lm(dir);
  Job job(lm.Command(ranks, dir.Join("run"), "--collective_timeout_s=5"));
  ASSERT_TRUE(job.WaitFor([&](const std::string& out) { return LastLoggedStep(out) >= step; }, 90)) << job.output();
  const auto rank_pids = job.Ranks();
  ASSERT_EQ(static_cast<int>(rank_pids.size()), ranks);
  const auto stopped_at = std::chrono::steady_clock::now();
  ASSERT_EQ(::kill(rank_pids.at(victim), SIGSTOP), 0);
  ASSERT_TRUE(job.Wait(60)) << "the job hung\n" << job.output();
  const double seconds = std::chrono::duration<double>(job.end_time() - stopped_at).count();
  std::printf("[stall trial] %d ranks, rank %d stopped: job ended with %d after %.1f s\n", ranks, victim,
              job.exit_code(), seconds);
  EXPECT_EQ(job.exit_code(), 75) << job.output();
  EXPECT_LT(seconds, 30.0) << job.output();
  EXPECT_THAT(job.output(), HasSubstr("a peer rank is stalled or gone"));
  const std::string world = "/" + std::to_string(ranks);
  for (int r = 0; r < ranks; ++r) {
    // "[rank r/W] [comm] MPI_Allreduce on rank r/W (host h, pid p) has waited 3.0 s ..."
    const std::regex line("\\[rank " + std::to_string(r) + world + "\\] \\[comm\\] MPI_\\w+ on rank " +
                          std::to_string(r) + world + " \\(host [^)]*\\) has waited");
    const bool found = std::regex_search(job.output(), line);
    if (r == victim) {
      EXPECT_FALSE(found) << "the stopped rank cannot report\n" << job.output();
    } else {
      EXPECT_TRUE(found) << "no watchdog line of waiting rank " << r << "\n" << job.output();
    }
  }
}

TEST(StallTrials, TwoRanks) {
  std::mt19937 rng(11);
  StallTrial(2, std::uniform_int_distribution<int>(0, 1)(rng), std::uniform_int_distribution<int64_t>(2, 40)(rng));
}

TEST(StallTrials, ThreeRanks) {
  std::mt19937 rng(12);
  StallTrial(3, std::uniform_int_distribution<int>(0, 2)(rng), std::uniform_int_distribution<int64_t>(2, 40)(rng));
}

}  // namespace
}  // namespace distrnn::testing
