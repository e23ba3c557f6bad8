// Helpers of the multi-rank training tests:
//  - assertions that a data-parallel run followed the single-process reference with the
//    same global batch (DESIGN.md invariant 1): per-step values to 1e-4 relative,
//    parameters to 1e-5 absolute (float summation order is all that may differ);
//  - SharedRunDir: one run directory for all ranks of the job (same host), unique per run.
//
// Collectives here (AllGather, Barrier, BroadcastString) are called by every rank at the
// same point; the assertions come after them.
#pragma once

#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "train/train_task.h"

namespace distrnn::testing {

inline void ExpectSameSteps(const std::vector<double>& got, const std::vector<double>& want, size_t steps,
                            const std::string& what) {
  ASSERT_EQ(got.size(), steps) << what;
  ASSERT_EQ(want.size(), steps) << what;
  for (size_t i = 0; i < steps; ++i) {
    EXPECT_NEAR(got[i], want[i], 1e-4 * std::abs(want[i])) << what << " at step " << i + 1;
  }
}

inline void ExpectSameParameters(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& want,
                                 const std::string& what = "") {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].sizes(), want[i].sizes()) << what << " parameter " << i;
    EXPECT_LT((got[i] - want[i]).abs().max().item<double>(), 1e-5) << what << " parameter " << i;
  }
}

// The same names, and each figure within 1e-4 relative (1e-6 absolute near zero).
inline void ExpectSameFigures(const train::Evaluation& got, const train::Evaluation& want, const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  for (const auto& [name, value] : want) {
    auto it = got.find(name);
    if (it == got.end()) {
      ADD_FAILURE() << what << ": no '" << name << "'";
      continue;
    }
    EXPECT_NEAR(it->second, value, 1e-4 * std::abs(value) + 1e-6) << what << ": " << name;
  }
}

// The data-parallel run and its one-process reference trained, the replicas agree and rank
// 0's evaluation reached every rank; a failure is fatal (call in ASSERT_NO_FATAL_FAILURE).
inline void ExpectTrainedAndAgreed(const absl::Status& distributed, const absl::Status& reference,
                                   const absl::StatusOr<bool>& agree, const absl::StatusOr<bool>& same_valid) {
  ASSERT_TRUE(distributed.ok()) << distributed;
  ASSERT_TRUE(reference.ok()) << reference;
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "replicas differ";
  ASSERT_TRUE(same_valid.ok()) << same_valid.status();
  EXPECT_TRUE(*same_valid) << "rank 0's evaluation did not reach every rank";
}

// Collective: whether `value` is bitwise the same on every rank (one all-gather).
inline absl::StatusOr<bool> SameOnEveryRank(comm::Communicator& comm, double value) {
  auto all = comm.AllGather(value);
  if (!all.ok()) return all.status();
  for (double v : *all) {
    if (!(v == value)) return false;
  }
  return true;
}

// A run directory shared by every rank of the job: rank 0 makes it (mkdtemp) and
// broadcasts its path. The destructor waits for every rank (so nobody still reads it),
// then rank 0 removes it. Every rank constructs and destroys it at the same point.
class SharedRunDir {
 public:
  explicit SharedRunDir(comm::Communicator& comm) : comm_(comm) {
    if (comm_.is_root()) {
      std::string pattern = (std::filesystem::temp_directory_path() /
                             ("distrnn_mpi_test_" + std::to_string(::getpid()) + "_XXXXXX")).string();
      if (::mkdtemp(pattern.data()) != nullptr) path_ = pattern;
    }
    status_ = comm::BroadcastString(comm_, path_, 0);
    if (status_.ok() && path_.empty()) status_ = absl::InternalError("rank 0 could not make a run dir");
  }
  ~SharedRunDir() {
    (void)comm_.Barrier();
    if (comm_.is_root() && !path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  SharedRunDir(const SharedRunDir&) = delete;
  SharedRunDir& operator=(const SharedRunDir&) = delete;

  const std::string& path() const { return path_; }
  const absl::Status& status() const { return status_; }

 private:
  comm::Communicator& comm_;
  std::string path_;
  absl::Status status_;
};

}  // namespace distrnn::testing
