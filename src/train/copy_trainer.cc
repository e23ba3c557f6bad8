#include "train/copy_trainer.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/validation.h"
#include "common/timer.h"
#include "common/torch_status.h"
#include "comm/parameter_sync.h"
#include "train/checkpoint.h"
#include "train/step_utils.h"

namespace distrnn::train {

// Note [copy loss]
// The differentiated loss is the cross entropy averaged over all T*G positions of the
// global batch (every step counts, the blanks before the copied segment too: the
// issue's "per-step cross entropy"). Rank r sums over its T*G/W positions, S_r, and
// differentiates S_r / (T*G/W). The reducer averages over W ranks:
//   (1/W) * sum_r grad S_r / (T*G/W) = sum_r grad S_r / (T*G) = grad (sum of all T*G) / (T*G),
// the gradient of the global mean whatever W is. The logged loss is the same quantity,
// from an all-reduced sum of S_r divided by T*G.

absl::Status CopyTrainConfig::Validate() const {
  RETURN_IF_ERROR(train_spec.Validate());
  RETURN_IF_ERROR(test_spec.Validate());
  RETURN_IF_ERROR(common::RequirePositive(train_samples, "copy_train_samples"));
  RETURN_IF_ERROR(common::RequirePositive(eval_samples, "copy_test_samples"));
  RETURN_IF_ERROR(common::RequirePositive(batch_size, "batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(eval_batch_size, "eval_batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(max_epochs, "max_epochs"));
  if (steps_per_epoch < 0) return absl::InvalidArgumentError("--steps_per_epoch must be >= 0");
  if (max_steps < 0) return absl::InvalidArgumentError(absl::StrCat("--max_steps must be >= 0, got ", max_steps));
  if (!(lr > 0.0)) return absl::InvalidArgumentError(absl::StrCat("--lr must be positive, got ", lr));
  if (!(clip_value >= 0.0)) return absl::InvalidArgumentError(absl::StrCat("--clip_value must be >= 0, got ", clip_value));
  if (!(clip_norm >= 0.0)) return absl::InvalidArgumentError(absl::StrCat("--clip_norm must be >= 0, got ", clip_norm));
  if (!(stop_accuracy >= 0.0 && stop_accuracy <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--copy_stop_accuracy must be in [0, 1], got ", stop_accuracy));
  }
  if (log_every < 0) return absl::InvalidArgumentError("--log_every must be >= 0");
  if (bucket_bytes < 1) return absl::InvalidArgumentError("--bucket_mb must be positive");
  if (check_replicas_every < 0) return absl::InvalidArgumentError("--check_replicas_every must be >= 0");
  if (train_samples > (int64_t{1} << 62) - eval_samples) {
    return absl::InvalidArgumentError("--copy_train_samples + --copy_test_samples is too large");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> CopyTrainIndices(int64_t step, int64_t global_batch, int64_t train_samples,
                                                      int rank, int world_size) {
  if (step < 0 || global_batch < 1 || train_samples < 1) {
    return absl::InvalidArgumentError(absl::StrCat("copy task: bad batch position (step ", step, ", batch ",
                                                   global_batch, ", samples ", train_samples, ")"));
  }
  // (k*G) mod n first, so the index stays small however long the run.
  const int64_t first = static_cast<int64_t>((static_cast<unsigned __int128>(step) * global_batch) % train_samples);
  ASSIGN_OR_RETURN(std::vector<int64_t> indices, data::CopyShardIndices(first, global_batch, rank, world_size));
  for (int64_t& i : indices) i %= train_samples;
  return indices;
}

namespace {

CopyEvalResult ToResult(const CopyEvaluation& e) {
  return {e.accuracy.step_accuracy(), e.accuracy.copy_accuracy(), e.accuracy.sequence_accuracy(), e.loss};
}

std::vector<double> Pack(const CopyEvalResult& r) {
  return {r.step_accuracy, r.copy_accuracy, r.sequence_accuracy, r.loss};
}

CopyEvalResult Unpack(const std::vector<double>& v, size_t at) { return {v[at], v[at + 1], v[at + 2], v[at + 3]}; }

nlohmann::json EvalJson(const CopyEvalResult& r) {
  return {{"step_accuracy", r.step_accuracy}, {"copy_accuracy", r.copy_accuracy},
          {"sequence_accuracy", r.sequence_accuracy}, {"loss", r.loss}};
}

nlohmann::json SpecJson(const data::CopyTaskSpec& s) {
  return {{"symbols", s.symbols}, {"delimiters", s.delimiters}, {"copy_length", s.copy_length}};
}

}  // namespace

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
    torch::Tensor inputs, targets;
    for (int64_t begin = 0; begin < count; begin += batch_size) {
      std::vector<int64_t> indices;
      for (int64_t i = begin; i < std::min(count, begin + batch_size); ++i) indices.push_back(first_index + i);
      ASSIGN_OR_RETURN(data::CopyBatch batch, data::MakeCopyBatch(spec, seed, indices));
      LoadIds(batch.inputs, batch.steps, batch.batch, inputs);
      LoadIds(batch.targets, batch.steps, batch.batch, targets);
      // The whole sequence in one call from a zero state: the state carries across all T steps.
      auto [logits, state] = model->forward(inputs);
      nll += SummedCrossEntropy(logits, targets).item<double>();
      positions += batch.steps * batch.batch;
      torch::Tensor predicted = logits.argmax(-1).contiguous();
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

CopyTrainer::CopyTrainer(comm::Communicator& comm, model::LanguageModel model, CopyTrainConfig config,
                         nlohmann::json checkpoint_meta)
    : comm_(comm), model_(std::move(model)), config_(std::move(config)), checkpoint_meta_(std::move(checkpoint_meta)) {}

CopyTrainer::~CopyTrainer() = default;

absl::StatusOr<CopyResult> CopyTrainer::Run() {
  RETURN_IF_ERROR(config_.Validate());
  if (config_.batch_size % comm_.world_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", config_.batch_size,
                                                   " (the global batch) is not divisible by the world size ",
                                                   comm_.world_size()));
  }
  if (comm_.is_root() && !config_.run_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config_.run_dir, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create --run_dir ", config_.run_dir, ": ", ec.message()));
    ASSIGN_OR_RETURN(metrics_, MetricsLog::Open(config_.run_dir + "/metrics.jsonl"));
  }
  params_ = model_->parameters();
  RETURN_IF_ERROR(common::GuardTorch("cannot share the initial parameters", [&] {
    // Replicas start from rank 0's parameters, not from equal seeds.
    std::vector<torch::Tensor> state = params_;
    for (auto& b : model_->buffers()) state.push_back(b);
    return comm::BroadcastParameters(comm_, state, 0);
  }));
  reducer_ = std::make_unique<comm::GradientReducer>(comm_, params_, config_.bucket_bytes);
  optimizer_ = std::make_unique<torch::optim::Adam>(params_, torch::optim::AdamOptions(config_.lr));
  CopyResult result;
  for (int64_t epoch = 1; epoch <= config_.max_epochs; ++epoch) {
    RETURN_IF_ERROR(TrainEpoch(epoch, result));
    result.epochs = epoch;
    const bool cut_short = config_.max_steps > 0 && total_steps_ >= config_.max_steps;
    ASSIGN_OR_RETURN(bool stop, EndOfEpoch(epoch, result));
    if (stop) {
      result.stopped_early = true;
      break;
    }
    if (cut_short) break;
  }
  result.steps = total_steps_;
  return result;
}

struct CopyTrainer::EpochStats {
  double nll = 0.0;            // global, summed over positions
  double positions = 0.0;      // global
  double timed_ms = 0.0;       // after warm-up
  int64_t timed_sequences = 0; // this rank's, after warm-up
};

absl::Status CopyTrainer::TrainEpoch(int64_t epoch, CopyResult& result) {
  const int64_t steps = config_.EffectiveStepsPerEpoch();
  const int64_t log_every = config_.log_every > 0 ? config_.log_every : std::max<int64_t>(steps / 10, 1);
  const int64_t global_batch = config_.batch_size;
  const int64_t length = config_.train_spec.length();
  const double global_positions = static_cast<double>(length * global_batch);

  EpochStats stats;
  torch::Tensor inputs, targets;
  model_->train();
  double interval_nll = 0.0, interval_positions = 0.0, interval_ms = 0.0, interval_norm = 0.0;
  int64_t interval_steps = 0, interval_sequences = 0;
  common::Stopwatch epoch_clock;

  RETURN_IF_ERROR(common::GuardTorch("training step failed", [&]() -> absl::Status {
    for (int64_t i = 0; i < steps; ++i) {
      if (config_.max_steps > 0 && total_steps_ >= config_.max_steps) break;
      MaybeInjectFault(comm_.rank(), config_.fault_rank, config_.fault_step, total_steps_ + 1);
      common::Stopwatch step_clock;
      ASSIGN_OR_RETURN(std::vector<int64_t> indices, CopyTrainIndices(total_steps_, global_batch, config_.train_samples,
                                                                       comm_.rank(), comm_.world_size()));
      ASSIGN_OR_RETURN(data::CopyBatch batch, data::MakeCopyBatch(config_.train_spec, config_.seed, indices));
      LoadIds(batch.inputs, batch.steps, batch.batch, inputs);
      LoadIds(batch.targets, batch.steps, batch.batch, targets);
      optimizer_->zero_grad(/*set_to_none=*/false);
      auto [logits, state] = model_->forward(inputs);
      torch::Tensor nll_sum = SummedCrossEntropy(logits, targets);
      // Note [copy loss]: divide by this rank's positions; the reducer's average does the rest.
      (nll_sum / static_cast<double>(batch.steps * batch.batch)).backward();
      RETURN_IF_ERROR(reducer_->AllReduceGradients());
      const double grad_norm = ClipGradients(params_, config_.clip_value, config_.clip_norm);
      optimizer_->step();
      ++total_steps_;
      if (config_.check_replicas_every > 0 && total_steps_ % config_.check_replicas_every == 0) {
        RETURN_IF_ERROR(comm::CheckReplicasAgree(comm_, params_));
      }

      ASSIGN_OR_RETURN(double global_nll, comm::AllReduceScalar(comm_, nll_sum.item<double>(), comm::ReduceOp::kSum));
      result.step_losses.push_back(global_nll / global_positions);
      const double ms = step_clock.ElapsedMs();
      stats.nll += global_nll;
      stats.positions += global_positions;
      if (i >= config_.warmup_steps) {
        stats.timed_ms += ms;
        stats.timed_sequences += batch.batch;
      }
      interval_nll += global_nll;
      interval_positions += global_positions;
      interval_ms += ms;
      interval_norm += grad_norm;
      interval_sequences += global_batch;
      ++interval_steps;
      const bool last = i + 1 == steps || (config_.max_steps > 0 && total_steps_ >= config_.max_steps);
      if ((i + 1) % log_every == 0 || last) {
        const double loss = interval_nll / interval_positions;
        const double ms_per_step = interval_ms / static_cast<double>(interval_steps);
        const double seq_s = static_cast<double>(interval_sequences) / (interval_ms / 1000.0);
        const double norm = interval_norm / static_cast<double>(interval_steps);
        common::Log0(absl::StrFormat(
            "| epoch %3d | %5d/%5d steps | lr %.2e | loss %7.4f | grad norm %6.2f | ms/step %6.1f | seq/s %7.0f |",
            epoch, i + 1, steps, config_.lr, loss, norm, ms_per_step, seq_s));
        metrics_.Write({{"type", "progress"}, {"epoch", epoch}, {"step", i + 1}, {"steps", steps},
                        {"global_step", total_steps_}, {"lr", config_.lr}, {"loss", loss}, {"grad_norm", norm},
                        {"ms_per_step", ms_per_step}, {"seq_per_s", seq_s}, {"world_size", comm_.world_size()}});
        interval_nll = interval_positions = interval_ms = interval_norm = 0.0;
        interval_steps = interval_sequences = 0;
      }
    }
    return absl::OkStatus();
  }));
  ASSIGN_OR_RETURN(double timed_sequences, comm::AllReduceScalar(comm_, static_cast<double>(stats.timed_sequences),
                                                                 comm::ReduceOp::kSum));
  ASSIGN_OR_RETURN(double timed_ms, comm::AllReduceScalar(comm_, stats.timed_ms, comm::ReduceOp::kMax));
  result.train_seq_per_s = timed_ms > 0 ? timed_sequences / (timed_ms / 1000.0) : 0.0;
  const double train_loss = stats.positions > 0 ? stats.nll / stats.positions : 0.0;
  const double epoch_s = epoch_clock.ElapsedMs() / 1000.0;
  common::Log0(absl::StrFormat("| epoch %3d | train loss %7.4f | epoch time %6.1fs | seq/s %7.0f |", epoch, train_loss,
                               epoch_s, result.train_seq_per_s));
  metrics_.Write({{"type", "train_epoch"}, {"epoch", epoch}, {"global_step", total_steps_}, {"train_loss", train_loss},
                  {"epoch_s", epoch_s}, {"seq_per_s", result.train_seq_per_s}});
  return absl::OkStatus();
}

absl::StatusOr<bool> CopyTrainer::EndOfEpoch(int64_t epoch, CopyResult& result) {
  // decision = {train-length results (4), test-length results (4), stop}
  std::vector<double> decision(9, 0.0);
  if (comm_.is_root()) {
    ASSIGN_OR_RETURN(CopyEvaluation at_train, EvaluateCopy(model_, config_.train_spec, config_.seed,
                                                           config_.train_samples, config_.eval_samples,
                                                           config_.eval_batch_size));
    ASSIGN_OR_RETURN(CopyEvaluation at_test, EvaluateCopy(model_, config_.test_spec, config_.seed,
                                                          config_.train_samples, config_.eval_samples,
                                                          config_.eval_batch_size));
    decision = Pack(ToResult(at_train));
    for (double v : Pack(ToResult(at_test))) decision.push_back(v);
    const bool stop = config_.stop_accuracy > 0.0 && at_train.accuracy.sequence_accuracy() >= config_.stop_accuracy;
    decision.push_back(stop ? 1.0 : 0.0);
  }
  RETURN_IF_ERROR(comm::BroadcastValues(comm_, decision, 0));
  result.train_length = Unpack(decision, 0);
  result.test_length = Unpack(decision, 4);
  const bool stop = decision[8] > 0.5;
  const auto& a = result.train_length;
  const auto& b = result.test_length;
  common::Log0(absl::StrFormat(
      "| end of epoch %3d | train length T=%d: step acc %6.4f, copy acc %6.4f, seq acc %6.4f | "
      "test length T=%d: step acc %6.4f, copy acc %6.4f, seq acc %6.4f |%s",
      epoch, config_.train_spec.length(), a.step_accuracy, a.copy_accuracy, a.sequence_accuracy,
      config_.test_spec.length(), b.step_accuracy, b.copy_accuracy, b.sequence_accuracy,
      stop ? " target accuracy reached |" : ""));
  metrics_.Write({{"type", "eval"}, {"epoch", epoch}, {"global_step", total_steps_},
                  {"train_length", EvalJson(a)}, {"test_length", EvalJson(b)}, {"stop", stop}});
  if (comm_.is_root() && !config_.run_dir.empty()) {
    nlohmann::json meta = checkpoint_meta_;
    meta["task"] = "copy";
    meta["train_spec"] = SpecJson(config_.train_spec);
    meta["test_spec"] = SpecJson(config_.test_spec);
    meta["seed"] = config_.seed;
    meta["epoch"] = epoch;
    meta["global_step"] = total_steps_;
    meta["train_length"] = EvalJson(a);
    meta["test_length"] = EvalJson(b);
    RETURN_IF_ERROR(SaveCheckpoint(config_.run_dir + "/model.pt", meta, *model_, optimizer_.get()));
  }
  RETURN_IF_ERROR(comm_.Barrier());
  return stop;
}

}  // namespace distrnn::train
