// `distrnn train` under mpiexec: bad input and faults on one rank end the whole job
// non-zero within 30 seconds with a message naming the rank and the cause (DESIGN.md
// invariant 5); a healthy 2-rank run trains with replica checks on.
#include <chrono>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "support/corpus.h"
#include "support/temp_dir.h"

namespace distrnn {
namespace {

using ::testing::HasSubstr;

struct Job {
  int exit_code = 0;
  double seconds = 0;
  std::string output;
};

class TrainFaultsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    testing::WritePtbCorpus(dir_, testing::SmallWordCorpus, 400, 40);
  }
  std::string Train(const std::string& data_dir, const std::string& extra) const {
    return testing::DistrnnBinary() + " train --comm=mpi --data_dir=" + data_dir + " --run_dir=" +
           dir_.Join("run") + " --hidden_size=8 --num_layers=1 --batch_size=4 --num_steps=5 --eval_batch_size=2" +
           " --threads=1 --collective_timeout_s=10 " + extra;
  }
  // Runs mpiexec with `ranks` (an MPMD list "cmd : cmd" or "-n N cmd").
  Job Run(const std::string& ranks) const {
    const std::string command = std::string("OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 timeout -k 10 60 ") +
                                DISTRNN_MPIEXEC + " --oversubscribe " + ranks;
    Job job;
    auto start = std::chrono::steady_clock::now();
    job.exit_code = testing::RunCommand(command, &job.output);
    job.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    return job;
  }
  void ExpectFailedFast(const Job& job) const {
    EXPECT_NE(job.exit_code, 0) << job.output;
    EXPECT_NE(job.exit_code, 124) << "the job hung until timeout killed it\n" << job.output;
    EXPECT_LT(job.seconds, 30.0) << job.output;
  }
  testing::TempDir dir_;
};

TEST_F(TrainFaultsTest, HealthyTwoRankRunTrains) {
  Job job = Run("-n 2 " + Train(dir_.Join("data"), "--max_epochs=1 --check_replicas_every=1"));
  EXPECT_EQ(job.exit_code, 0) << job.output;
  EXPECT_THAT(job.output, HasSubstr("mpi / 2"));
  EXPECT_THAT(job.output, HasSubstr("test ppl"));
}

TEST_F(TrainFaultsTest, GlobalBatchNotDivisibleByWorldSize) {
  Job job = Run("-n 3 " + Train(dir_.Join("data"), "--max_epochs=1"));
  ExpectFailedFast(job);
  EXPECT_THAT(job.output, HasSubstr("--batch_size 4 (the global batch) is not divisible by the world size 3"));
}

TEST_F(TrainFaultsTest, RankFailingAtStartUpEndsTheJob) {
  // Rank 1 is pointed at a directory without the data set.
  dir_.WriteFile("empty/README", "no data here\n");
  Job job = Run("-n 1 " + Train(dir_.Join("data"), "--max_epochs=1") + " : -n 1 " +
                Train(dir_.Join("empty"), "--max_epochs=1"));
  ExpectFailedFast(job);
  EXPECT_THAT(job.output, HasSubstr("[rank 1/2] [error] distrnn: error: no such file"));
}

TEST_F(TrainFaultsTest, RankDyingMidTrainingEndsTheJob) {
  Job job = Run("-n 2 " + Train(dir_.Join("data"), "--max_epochs=5 --fault_rank=1 --fault_step=5"));
  ExpectFailedFast(job);
  EXPECT_THAT(job.output, HasSubstr("[rank 1/2] [fault] injected fault"));
}

}  // namespace
}  // namespace distrnn
