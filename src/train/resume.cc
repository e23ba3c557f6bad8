#include "train/resume.h"

#include <mutex>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/nn/module.h>
#include <torch/optim/optimizer.h>

#include "absl/strings/str_cat.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "train/checkpoint.h"

namespace distrnn::train {
namespace {

// Rank 0 reads and verifies `path`; every rank gets a reader over the same bytes.
absl::StatusOr<CheckpointReader> ReadEverywhere(comm::Communicator& comm, const std::string& path) {
  std::string bytes;
  absl::Status read;
  if (comm.is_root()) {
    auto reader = CheckpointReader::FromFile(path);
    if (reader.ok()) bytes = reader->bytes(); else read = reader.status();
  }
  RETURN_IF_ERROR(BroadcastStatus(comm, read));
  RETURN_IF_ERROR(comm::BroadcastString(comm, bytes, 0));
  return CheckpointReader::FromBytes(std::move(bytes), path);
}

std::string Short(const nlohmann::json& value) {
  std::string text = value.dump();
  return text.size() > 60 ? text.substr(0, 57) + "..." : text;
}

}  // namespace

nlohmann::json TrainingMeta(TrainTask& task, const TrainerConfig& config, const RunProgress& progress,
                            int world_size) {
  nlohmann::json meta = task.Meta();
  meta["trainer"] = config.ToJson();
  meta["progress"] = progress;
  meta["progress"]["skipped_steps"] = progress.skipped_steps;  // see RunProgress
  meta["world_size"] = world_size;
  return meta;
}

absl::Status CheckCompatible(const nlohmann::json& saved, const nlohmann::json& task_meta, const TrainerConfig& config,
                             const std::string& path) {
  if (!saved.contains("trainer") || !saved.contains("progress")) {
    return absl::InvalidArgumentError(absl::StrCat(path, " holds no training state (a checkpoint of an older format "
                                                   "or not written by `distrnn train`)"));
  }
  for (const auto& [key, value] : task_meta.items()) {
    if (!saved.contains(key) || saved.at(key) != value) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cannot resume from ", path, ": '", key, "' differs (checkpoint ",
          saved.contains(key) ? Short(saved.at(key)) : "(absent)", ", now ", Short(value), ")"));
    }
  }
  const nlohmann::json now = config.ToJson();
  const nlohmann::json& before = saved.at("trainer");
  if (before.value("batch_size", int64_t{-1}) != config.batch_size) {
    return absl::InvalidArgumentError(absl::StrCat("cannot resume from ", path, ": 'batch_size' (the global batch) "
                                                   "differs (checkpoint ", Short(before.value("batch_size", nlohmann::json())),
                                                   ", now ", config.batch_size, ")"));
  }
  for (const auto& [key, value] : now.items()) {
    if (before.contains(key) && before.at(key) != value) {
      common::Log0(absl::StrCat("[train] resume: ", key, " changed from ", Short(before.at(key)), " to ", Short(value)));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RunProgress> ResumeFrom(ResumeTarget& target, const std::string& path) {
  ASSIGN_OR_RETURN(CheckpointReader reader, ReadEverywhere(target.comm, path));
  const nlohmann::json& meta = reader.meta();
  RETURN_IF_ERROR(CheckCompatible(meta, target.task.Meta(), target.config, path));
  RunProgress progress;
  try {
    progress = meta.at("progress").get<RunProgress>();
    progress.skipped_steps = meta.at("progress").value("skipped_steps", int64_t{0});
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": malformed training state (", e.what(), ")"));
  }
  RETURN_IF_ERROR(reader.LoadModel(target.task.model()));
  RETURN_IF_ERROR(reader.LoadOptimizer(target.optimizer));
  RETURN_IF_ERROR(target.task.RestoreCarriedState(reader));
  ASSIGN_OR_RETURN(at::Tensor rng, reader.Tensor(kRngStateTensor));
  RETURN_IF_ERROR(common::GuardTorch(absl::StrCat("cannot restore the RNG state from ", path), [&] {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
    return absl::OkStatus();
  }));
  const int saved_world = meta.value("world_size", 0);
  if (saved_world != target.comm.world_size()) {
    common::Log0(absl::StrCat("[train] resume: world size ", saved_world, " -> ", target.comm.world_size(),
                              " (same global batch ", target.config.batch_size, ": same trajectory)"));
  }
  return progress;
}

absl::StatusOr<std::vector<at::Tensor>> LoadBestParameters(ResumeTarget& target, const std::string& run_dir) {
  const std::string path = run_dir + "/best.pt";
  // The live parameters are borrowed to decode best.pt, then the caller's state returns.
  std::vector<at::Tensor> saved, best;
  RETURN_IF_ERROR(common::GuardTorch("cannot keep the best parameters", [&] {
    for (const auto& p : target.params) saved.push_back(p.detach().clone());
    return absl::OkStatus();
  }));
  ASSIGN_OR_RETURN(CheckpointReader reader, ReadEverywhere(target.comm, path));
  RETURN_IF_ERROR(reader.LoadModel(target.task.model()));
  RETURN_IF_ERROR(common::GuardTorch("cannot keep the best parameters", [&] {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < target.params.size(); ++i) {
      best.push_back(target.params[i].detach().clone());
      target.params[i].copy_(saved[i]);
    }
    return absl::OkStatus();
  }));
  return best;
}

}  // namespace distrnn::train
