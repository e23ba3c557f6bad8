// The records the Trainer keeps and exchanges: where the run is (RunProgress, saved in
// every checkpoint) and what rank 0 decided after an evaluation (EpochDecision,
// broadcast to every rank as one typed record).
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "train/train_task.h"

namespace distrnn::train {

struct RunProgress {
  int64_t epoch = 1;          // the epoch being trained (1-based); epoch e+1, step 0 once e is evaluated
  int64_t step = 0;           // steps done in it
  int64_t global_step = 0;    // steps done in the run
  double lr = 0.0;            // of the current epoch
  double schedule_best_loss = 1e300;  // plateau schedule state
  int64_t best_epoch = 0;     // 0: no evaluation yet
  double best_metric = 0.0;
  Evaluation best_valid;
  // The current epoch's sums so far (its train loss survives a resume).
  double epoch_loss_sum = 0.0;
  double epoch_units = 0.0;
  double epoch_correct = 0.0;
  // Steps whose update was skipped for a non-finite value (--on_nonfinite=skip). Not in
  // the macro below: TrainingMeta writes it and ResumeFrom reads it with a default of 0,
  // so checkpoints written before it existed still resume.
  int64_t skipped_steps = 0;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(RunProgress, epoch, step, global_step, lr, schedule_best_loss, best_epoch,
                                   best_metric, best_valid, epoch_loss_sum, epoch_units, epoch_correct)

struct EpochDecision {
  Evaluation valid;
  double next_lr = 0.0;
  bool best = false;
  bool stop = false;
  std::string error;  // rank 0 failed to evaluate: every rank stops with this
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(EpochDecision, valid, next_lr, best, stop, error)

// Rank 0's test figures, as every rank receives them.
struct TestRecord {
  bool present = false;  // rank 0 has a test split
  Evaluation figures;
  std::string error;
};
NLOHMANN_DEFINE_TYPE_NON_INTRUSIVE(TestRecord, present, figures, error)

// Rank 0's `value` on every rank (one string broadcast of its JSON).
template <typename T>
absl::Status BroadcastRecord(comm::Communicator& comm, T& value) {
  std::string text;
  // Records carry error messages, which may quote a user's bytes (a file name read from
  // `latest`): invalid UTF-8 becomes U+FFFD rather than an exception (issue 8's fuzzer).
  if (comm.is_root()) text = nlohmann::json(value).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  absl::Status status = comm::BroadcastString(comm, text, 0);
  if (!status.ok() || comm.is_root()) return status;
  try {
    value = nlohmann::json::parse(text).get<T>();
  } catch (const nlohmann::json::exception& e) {
    return absl::InternalError(std::string("malformed record from rank 0: ") + e.what());
  }
  return absl::OkStatus();
}

// Rank 0's status on every rank, so that all ranks leave a collective phase together.
absl::Status BroadcastStatus(comm::Communicator& comm, const absl::Status& rank0_status);

}  // namespace distrnn::train
