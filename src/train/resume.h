// Resuming a run from a checkpoint (DESIGN.md invariant 4): rank 0 reads and verifies
// the file, every rank receives its bytes (no shared file system needed), checks that
// the model and the global batch are those of the checkpoint, and loads parameters,
// optimizer state, the task's carried state and the RNG state. The checkpoint's meta
// is the task's Meta() plus the trainer's record (TrainingMeta).
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "train/run_state.h"
#include "train/train_task.h"
#include "train/trainer.h"

namespace torch::optim {
class Optimizer;
}

namespace distrnn::train {

class CheckpointReader;

// What a resume writes into.
struct ResumeTarget {
  TrainTask& task;
  torch::optim::Optimizer& optimizer;
  const std::vector<at::Tensor>& params;
  const TrainerConfig& config;
  comm::Communicator& comm;
};

// The metadata of a training checkpoint.
nlohmann::json TrainingMeta(TrainTask& task, const TrainerConfig& config, const RunProgress& progress,
                            int world_size);

// Refuses a checkpoint of another model (any field of task.Meta() differs) or another
// global batch, naming the field; logs the optimisation settings that changed.
absl::Status CheckCompatible(const nlohmann::json& saved, const nlohmann::json& task_meta, const TrainerConfig& config,
                             const std::string& path);

// Loads `path` on every rank (collective) and returns where the run stood.
absl::StatusOr<RunProgress> ResumeFrom(ResumeTarget& target, const std::string& path);

// The parameters of <run_dir>/best.pt (collective), for tasks that test the best model.
absl::StatusOr<std::vector<at::Tensor>> LoadBestParameters(ResumeTarget& target, const std::string& run_dir);

// The name of the extra tensor holding the CPU generator's state.
inline constexpr char kRngStateTensor[] = "rng_cpu";

}  // namespace distrnn::train
