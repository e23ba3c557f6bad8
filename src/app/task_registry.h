// The tasks `distrnn train --task=NAME` knows: one entry each (name, description, the
// optimizer and lr schedule it defaults to, and how its options are read from flags).
// Options are read and validated before any communicator exists, so a bad flag fails
// on every rank alike; Build() then loads data and makes the model and the TrainTask.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "app/common_flags.h"
#include "app/config_table.h"
#include "comm/communicator.h"
#include "train/lr_schedule.h"
#include "train/train_task.h"
#include "train/trainer.h"

namespace distrnn::app {

// A task whose flags have been read and checked.
class PreparedTask {
 public:
  virtual ~PreparedTask() = default;
  // Loads this rank's data, builds the model (seeded, before rank 0's broadcast) and the
  // task; adds the task's rows to the start-up table.
  virtual absl::StatusOr<std::unique_ptr<train::TrainTask>> Build(comm::Communicator& comm, const train::Shard& shard,
                                                                 ConfigRows& rows) = 0;
  // The task's figures for the closing line, e.g. "best valid ppl 117.24".
  virtual std::string Summary(const train::TrainResult& result) const = 0;
};

struct TaskEntry {
  std::string name;
  std::string description;
  train::OptimizerKind default_optimizer;
  train::LrScheduleKind default_schedule;
  std::function<absl::StatusOr<std::unique_ptr<PreparedTask>>(const RunOptions&)> prepare;
};

const std::vector<TaskEntry>& TaskRegistry();
// InvalidArgument naming the known tasks when `name` is not one of them.
absl::StatusOr<const TaskEntry*> FindTask(const std::string& name);

// The registered tasks' factories (one per task file).
absl::StatusOr<std::unique_ptr<PreparedTask>> PrepareLmTask(const RunOptions& run);
absl::StatusOr<std::unique_ptr<PreparedTask>> PrepareCopyTask(const RunOptions& run);
absl::StatusOr<std::unique_ptr<PreparedTask>> PrepareImdbTask(const RunOptions& run);

}  // namespace distrnn::app
