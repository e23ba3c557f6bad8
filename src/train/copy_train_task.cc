#include "train/copy_train_task.h"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "absl/strings/str_cat.h"
#include "common/device.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "common/validation.h"
#include "model/column_dropout.h"
#include "train/checkpoint.h"
#include "train/step_utils.h"

namespace distrnn::train {
namespace {

constexpr char kCurriculumLevelTensor[] = "copy_curriculum_level";

}  // namespace

absl::Status CopyTaskConfig::Validate() const {
  RETURN_IF_ERROR(train_spec.Validate());
  RETURN_IF_ERROR(test_spec.Validate());
  RETURN_IF_ERROR(curriculum.Validate(train_spec));
  RETURN_IF_ERROR(common::RequirePositive(train_samples, "copy_train_samples"));
  RETURN_IF_ERROR(common::RequirePositive(eval_samples, "copy_test_samples"));
  RETURN_IF_ERROR(common::RequirePositive(batch_size, "batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(eval_batch_size, "eval_batch_size"));
  if (steps_per_epoch < 0) return absl::InvalidArgumentError("--steps_per_epoch must be >= 0");
  if (!(stop_accuracy >= 0.0 && stop_accuracy <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--copy_stop_accuracy must be in [0, 1], got ", stop_accuracy));
  }
  if (train_samples > (int64_t{1} << 62) - eval_samples) {
    return absl::InvalidArgumentError("--copy_train_samples + --copy_test_samples is too large");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> CopyTrainIndices(int64_t step, int64_t global_batch, int64_t train_samples,
                                                      int shard, int shards) {
  if (step < 0 || global_batch < 1 || train_samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("copy task: bad batch position (step ", step, ", batch ",
                                                   global_batch, ", samples ", train_samples, ")"));
  }
  // (k*G) mod n first, so the index stays small however long the run.
  const int64_t first = static_cast<int64_t>((static_cast<unsigned __int128>(step) * global_batch) % train_samples);
  ASSIGN_OR_RETURN(std::vector<int64_t> indices, data::CopyShardIndices(first, global_batch, shard, shards));
  for (int64_t& i : indices) i %= train_samples;
  return indices;
}

absl::StatusOr<CopyEvaluation> EvaluateCopy(model::LanguageModel& model, const data::CopyTaskSpec& spec,
                                            uint64_t seed, int64_t first_index, int64_t count, int64_t batch_size) {
  if (count < 1 || batch_size < 1 || first_index < 0) {
    return absl::InvalidArgumentError(absl::StrCat("copy evaluation needs count and batch size >= 1 (got ", count,
                                                   ", ", batch_size, ")"));
  }
  CopyEvaluation eval;
  double nll = 0.0;
  int64_t positions = 0;
  RETURN_IF_ERROR(common::GuardTorch("copy evaluation failed", [&]() -> absl::Status {
    torch::NoGradGuard no_grad;
    const bool was_training = model->is_training();
    model->eval();
    const c10::Device device = common::ModuleDevice(*model);
    at::Tensor host_inputs, host_targets, inputs, targets;  // ids built on the host, used on the model's device
    for (int64_t begin = 0; begin < count; begin += batch_size) {
      std::vector<int64_t> indices;
      for (int64_t i = begin; i < std::min(count, begin + batch_size); ++i) indices.push_back(first_index + i);
      ASSIGN_OR_RETURN(data::CopyBatch batch, data::MakeCopyBatch(spec, seed, indices));
      LoadIds(batch.inputs, batch.steps, batch.batch, host_inputs);
      LoadIds(batch.targets, batch.steps, batch.batch, host_targets);
      inputs = common::ToDevice(host_inputs, device);
      targets = common::ToDevice(host_targets, device);
      // The whole sequence in one call from a zero state: the state carries across all T steps.
      auto [logits, state] = model->forward(inputs);
      nll += SummedCrossEntropy(logits, targets).item<double>();
      positions += batch.steps * batch.batch;
      const at::Tensor predicted = logits.argmax(-1).to(at::kCPU).contiguous();
      const int64_t* p = predicted.data_ptr<int64_t>();
      ASSIGN_OR_RETURN(data::CopyAccuracy acc,
                       data::ScoreCopyBatch(batch, std::vector<int64_t>(p, p + predicted.numel())));
      eval.accuracy += acc;
    }
    model->train(was_training);
    return absl::OkStatus();
  }));
  eval.loss = nll / static_cast<double>(positions);
  return eval;
}

absl::StatusOr<std::unique_ptr<CopyTrainTask>> CopyTrainTask::Create(model::LanguageModel model, CopyTaskConfig config,
                                                                     Shard shard, nlohmann::json meta) {
  RETURN_IF_ERROR(config.Validate());
  if (config.batch_size % shard.count() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", config.batch_size,
                                                   " is not divisible by world size x micro-batches ", shard.count()));
  }
  return std::unique_ptr<CopyTrainTask>(new CopyTrainTask(std::move(model), config, shard, std::move(meta)));
}

absl::StatusOr<MicroBatchLoss> CopyTrainTask::Forward(int64_t /*step*/, int64_t global_step, int micro) {
  const int shard = shard_.index(micro);
  ASSIGN_OR_RETURN(std::vector<int64_t> indices,
                   CopyTrainIndices(global_step, config_.batch_size, config_.train_samples, shard, shard_.count()));
  const data::CopyTaskSpec spec = SpecWithSymbols(
      config_.train_spec, CurriculumSymbols(config_.curriculum, level_, config_.train_spec, config_.seed, global_step));
  ASSIGN_OR_RETURN(data::CopyBatch batch, data::MakeCopyBatch(spec, config_.seed, indices));
  LoadIds(batch.inputs, batch.steps, batch.batch, inputs_);
  LoadIds(batch.targets, batch.steps, batch.batch, targets_);
  // Built on the host, used on the model's device (pinned, non-blocking copy on CUDA).
  const c10::Device device = common::ModuleDevice(*model_);
  const at::Tensor inputs = common::ToDevice(inputs_, device), targets = common::ToDevice(targets_, device);
  model_->SetDropoutKey(model::DropoutKey{config_.seed, global_step, shard * config_.batch_size / shard_.count()});
  auto [logits, state] = model_->forward(inputs);
  MicroBatchLoss loss;
  loss.loss_sum = SummedCrossEntropy(logits, targets);
  loss.units = batch.steps * batch.batch;
  loss.normalizer = static_cast<double>(loss.units);  // mean over all T*G positions
  // Train accuracy over all time steps, as the original copy-task plots show it.
  RETURN_IF_ERROR(common::GuardTorch("cannot score the copy batch", [&] {
    torch::NoGradGuard no_grad;
    loss.correct = logits.argmax(-1).eq(targets).sum().item<int64_t>();
    return absl::OkStatus();
  }));
  return loss;
}

absl::StatusOr<Evaluation> CopyTrainTask::Evaluate(Split split) {
  if (split != Split::kValid) return absl::InvalidArgumentError("the copy task has no test split");
  Evaluation out;
  const data::CopyTaskSpec level_spec = SpecWithSymbols(config_.train_spec, level_);
  std::vector<std::pair<const char*, const data::CopyTaskSpec*>> lengths = {{"valid_", &config_.train_spec},
                                                                            {"test_length_", &config_.test_spec}};
  if (config_.curriculum.enabled() && level_ < config_.train_spec.symbols) lengths.push_back({"level_", &level_spec});
  for (const auto& [prefix, spec] : lengths) {
    ASSIGN_OR_RETURN(CopyEvaluation e, EvaluateCopy(model_, *spec, config_.seed, config_.train_samples,
                                                    config_.eval_samples, config_.eval_batch_size));
    const std::string p = prefix;
    out[p + "loss"] = e.loss;
    out[p + "step_accuracy"] = e.accuracy.step_accuracy();
    out[p + "position_accuracy"] = e.accuracy.position_accuracy();
    out[p + "copy_accuracy"] = e.accuracy.copy_accuracy();
    out[p + "sequence_accuracy"] = e.accuracy.sequence_accuracy();
  }
  if (config_.curriculum.enabled()) {
    out["curriculum_level"] = static_cast<double>(level_);
    // At the full length the level's figures are valid_'s: not scored twice.
    out.emplace("level_step_accuracy", out.at("valid_step_accuracy"));
  }
  return out;
}

bool CopyTrainTask::ShouldStop(const Evaluation& valid) const {
  return config_.stop_accuracy > 0.0 && valid.at("valid_sequence_accuracy") >= config_.stop_accuracy;
}

absl::Status CopyTrainTask::AfterEpochEvaluation(const Evaluation& valid) {
  if (!config_.curriculum.enabled()) return absl::OkStatus();
  const auto accuracy = valid.find("level_step_accuracy");
  if (accuracy == valid.end()) return absl::InternalError("copy curriculum: the evaluation has no level_step_accuracy");
  const int64_t next = NextCurriculumLevel(config_.curriculum, level_, config_.train_spec, accuracy->second);
  if (next != level_) {
    common::Log0(absl::StrCat("[copy] curriculum: K=", level_, " -> K=", next, " (held-out copied symbols at K=",
                              level_, ": ", absl::SixDigits(100.0 * accuracy->second), "% >= ",
                              absl::SixDigits(100.0 * config_.curriculum.threshold), "%)"));
  }
  level_ = next;
  return absl::OkStatus();
}

absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> CopyTrainTask::GatherCarriedState(
    comm::Communicator&) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  if (config_.curriculum.enabled()) out.emplace_back(kCurriculumLevelTensor, at::full({1}, level_, at::kLong));
  return out;
}

absl::Status CopyTrainTask::RestoreCarriedState(const CheckpointReader& checkpoint) {
  if (!config_.curriculum.enabled()) return absl::OkStatus();
  const std::vector<std::string>& names = checkpoint.tensor_names();
  if (std::find(names.begin(), names.end(), kCurriculumLevelTensor) == names.end()) {
    common::Log0(absl::StrCat("[copy] curriculum: ", checkpoint.name(),
                              " was trained without one; starting it at K=", level_));
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(at::Tensor level, checkpoint.Tensor(kCurriculumLevelTensor));
  const int64_t k = level.numel() == 1 && level.scalar_type() == at::kLong ? level.item<int64_t>() : -1;
  if (k < 1 || k > config_.train_spec.symbols) {
    return absl::InvalidArgumentError(absl::StrCat(checkpoint.name(), ": curriculum level ", k,
                                                   " is not in [1, --copy_train_symbols=", config_.train_spec.symbols,
                                                   "]"));
  }
  level_ = k;
  return absl::OkStatus();
}

}  // namespace distrnn::train
