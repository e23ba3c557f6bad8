#include "train/resume.h"

#include <cmath>
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

// A checkpoint's CRCs catch corruption, not a header written by hand or by another tool:
// a position outside the run would fail (or spin) later, far from its cause.
absl::Status CheckProgress(const RunProgress& p, int64_t steps_per_epoch, const std::string& path) {
  auto bad = [&](absl::string_view what) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": malformed training state (", what, ")"));
  };
  if (p.epoch < 1) return bad(absl::StrCat("epoch ", p.epoch, " < 1"));
  if (p.step < 0 || p.step > steps_per_epoch) {
    return bad(absl::StrCat("step ", p.step, " outside the epoch's 0..", steps_per_epoch));
  }
  if (p.global_step < p.step) return bad(absl::StrCat("global_step ", p.global_step, " < step ", p.step));
  if (p.skipped_steps < 0 || p.skipped_steps > p.global_step) {
    return bad(absl::StrCat("skipped_steps ", p.skipped_steps, " outside 0..", p.global_step));
  }
  if (!std::isfinite(p.lr) || p.lr <= 0 || p.lr > 1e6) return bad(absl::StrCat("lr ", p.lr, " not in (0, 1e6]"));
  if (p.best_epoch < 0 || p.best_epoch >= p.epoch) {
    return bad(absl::StrCat("best_epoch ", p.best_epoch, " outside 0..", p.epoch - 1));
  }
  for (double v : {p.schedule_best_loss, p.best_metric, p.epoch_loss_sum, p.epoch_units, p.epoch_correct}) {
    if (std::isnan(v)) return bad("a NaN running value");
  }
  if (p.epoch_units < 0 || p.epoch_correct < 0) return bad("negative running counts");
  return absl::OkStatus();
}

// json::value() throws on a value of another type; a checkpoint's header is input.
int64_t IntOr(const nlohmann::json& object, const char* key, int64_t fallback) {
  if (!object.is_object() || !object.contains(key) || !object.at(key).is_number_integer()) return fallback;
  return object.at(key).get<int64_t>();
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
  if (!before.is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": malformed training state ('trainer' is not an object)"));
  }
  if (IntOr(before, "batch_size", -1) != config.batch_size) {
    return absl::InvalidArgumentError(absl::StrCat(
        "cannot resume from ", path, ": 'batch_size' (the global batch) differs (checkpoint ",
        before.contains("batch_size") ? Short(before.at("batch_size")) : "(absent)", ", now ", config.batch_size, ")"));
  }
  for (const auto& [key, value] : now.items()) {
    if (before.contains(key) && before.at(key) != value) {
      std::string effect;
      if (key == "lr") {
        effect = config.lr.kind == LrScheduleKind::kPlateau
                     ? " (ignored: the plateau schedule carries the checkpoint's decayed lr on)"
                     : " (from the next epoch; the current one finishes at the checkpoint's lr)";
      }
      common::Log0(absl::StrCat("[train] resume: ", key, " changed from ", Short(before.at(key)), " to ", Short(value),
                                effect));
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
  RETURN_IF_ERROR(CheckProgress(progress, target.task.StepsPerEpoch(), path));
  RETURN_IF_ERROR(reader.LoadModel(target.task.model()));
  RETURN_IF_ERROR(reader.LoadOptimizer(target.optimizer));
  RETURN_IF_ERROR(target.task.RestoreCarriedState(reader));
  ASSIGN_OR_RETURN(at::Tensor rng, reader.Tensor(kRngStateTensor));
  // A malformed state is the file's fault (exit 2), not ours.
  const absl::Status rng_restored = common::GuardTorch("", [&] {
    at::Generator generator = at::detail::getDefaultCPUGenerator();
    std::lock_guard<std::mutex> lock(generator.mutex());
    generator.set_state(rng);
    return absl::OkStatus();
  });
  if (!rng_restored.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cannot restore the RNG state from ", path, rng_restored.message()));
  }
  const int64_t saved_world = IntOr(meta, "world_size", 0);
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
