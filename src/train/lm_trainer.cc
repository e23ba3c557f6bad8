#include "train/lm_trainer.h"

#include <cmath>
#include <filesystem>

#include <torch/nn/functional/loss.h>
#include <torch/optim/sgd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/validation.h"
#include "common/timer.h"
#include "common/torch_status.h"
#include "comm/parameter_sync.h"
#include "data/lm_batcher.h"
#include "train/checkpoint.h"
#include "train/step_utils.h"

namespace distrnn::train {

// Note [LM loss scale]
// Zaremba et al.'s recipe (lr 1, clip 5) was tuned for a loss that sums the cross entropy
// over the T steps of a window and averages over the batch. A per-token mean makes the
// effective lr T times smaller and PTB small stalls near perplexity 460 after one epoch.
// Under data parallelism "the batch" is the global batch G: each rank divides its local
// sum by its local batch G/W and the gradient average over W ranks then equals the
// gradient of (sum over all G columns) / G.

absl::StatusOr<LossReduction> ParseLossReduction(const std::string& name) {
  if (name == "sum_steps_mean_batch") return LossReduction::kSumStepsMeanBatch;
  if (name == "mean_tokens") return LossReduction::kMeanTokens;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --loss_reduction '", name, "' (expected sum_steps_mean_batch or mean_tokens)"));
}

const char* LossReductionName(LossReduction reduction) {
  return reduction == LossReduction::kSumStepsMeanBatch ? "sum_steps_mean_batch" : "mean_tokens";
}

double LossDivisor(LossReduction reduction, int64_t local_batch, int64_t steps) {
  const double batch = static_cast<double>(local_batch);
  return reduction == LossReduction::kSumStepsMeanBatch ? batch : batch * static_cast<double>(steps);
}

absl::Status LmTrainConfig::Validate() const {
  RETURN_IF_ERROR(common::RequirePositive(batch_size, "batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(num_steps, "num_steps"));
  RETURN_IF_ERROR(common::RequirePositive(eval_batch_size, "eval_batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(max_epochs, "max_epochs"));
  if (max_steps < 0) return absl::InvalidArgumentError(absl::StrCat("--max_steps must be >= 0, got ", max_steps));
  if (!(lr.base_lr > 0.0)) return absl::InvalidArgumentError(absl::StrCat("--lr must be positive, got ", lr.base_lr));
  if (!(lr.decay > 0.0 && lr.decay <= 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--lr_decay must be in (0, 1], got ", lr.decay));
  }
  if (lr.decay_start < 0) return absl::InvalidArgumentError("--decay_start_epoch must be >= 0");
  if (clip_norm < 0.0) return absl::InvalidArgumentError(absl::StrCat("--clip_norm must be >= 0, got ", clip_norm));
  if (log_every < 0) return absl::InvalidArgumentError("--log_every must be >= 0");
  if (bucket_bytes < 1) return absl::InvalidArgumentError("--bucket_mb must be positive");
  if (check_replicas_every < 0) return absl::InvalidArgumentError("--check_replicas_every must be >= 0");
  return absl::OkStatus();
}

double NllSum::perplexity() const { return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : 0.0; }

absl::StatusOr<NllSum> EvaluateLm(model::LanguageModel& model, const std::vector<int64_t>& tokens, int64_t batch,
                                  int64_t num_steps) {
  ASSIGN_OR_RETURN(data::LmBatcher batcher,
                   data::LmBatcher::Create(tokens, batch, num_steps, 0, 1, /*full_windows_only=*/false));
  NllSum sum;
  absl::Status status = common::GuardTorch("evaluation failed", [&] {
    torch::NoGradGuard no_grad;
    const bool was_training = model->is_training();
    model->eval();
    data::LmWindow window;
    torch::Tensor inputs, targets;
    model::RecurrentState state;
    for (int64_t i = 0; i < batcher.num_windows(); ++i) {
      batcher.FillWindow(i, window);
      LoadIds(window.inputs, window.steps, window.batch, inputs);
      LoadIds(window.targets, window.steps, window.batch, targets);
      auto [logits, next] = model->forward(inputs, state);
      sum.nll += SummedCrossEntropy(logits, targets).item<double>();
      sum.tokens += window.steps * window.batch;
      state = next;
    }
    model->train(was_training);
    return absl::OkStatus();
  });
  RETURN_IF_ERROR(status);
  return sum;
}

struct LmTrainer::EpochStats {
  double nll = 0.0;
  int64_t tokens = 0;
  double timed_ms = 0.0;       // after warm-up (all steps when the epoch is shorter)
  int64_t timed_tokens = 0;    // this rank's, after warm-up
  double all_ms = 0.0;
  int64_t all_tokens = 0;      // this rank's
};

LmTrainer::LmTrainer(comm::Communicator& comm, model::LanguageModel model, LmTrainConfig config, LmSplits data,
                     nlohmann::json checkpoint_meta)
    : comm_(comm),
      model_(std::move(model)),
      config_(std::move(config)),
      schedule_(config_.lr),
      data_(data),
      checkpoint_meta_(std::move(checkpoint_meta)) {}

absl::StatusOr<LmResult> LmTrainer::Run() {
  if (comm_.is_root() && !config_.run_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config_.run_dir, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create --run_dir ", config_.run_dir, ": ", ec.message()));
    ASSIGN_OR_RETURN(metrics_, MetricsLog::Open(config_.run_dir + "/metrics.jsonl"));
  }
  if (data_.train == nullptr || (comm_.is_root() && data_.valid == nullptr)) {
    return absl::InvalidArgumentError("training needs a train split and, on rank 0, a valid split");
  }
  params_ = model_->parameters();
  RETURN_IF_ERROR(common::GuardTorch("cannot share the initial parameters", [&] {
    // Replicas start from rank 0's parameters, not from equal seeds.
    std::vector<torch::Tensor> state = params_;
    for (auto& b : model_->buffers()) state.push_back(b);
    return comm::BroadcastParameters(comm_, state, 0);
  }));
  reducer_ = std::make_unique<comm::GradientReducer>(comm_, params_, config_.bucket_bytes);
  optimizer_ = std::make_unique<torch::optim::SGD>(params_, torch::optim::SGDOptions(schedule_.lr()));
  LmResult result;
  double lr = schedule_.lr();
  for (int64_t epoch = 1; epoch <= config_.max_epochs; ++epoch) {
    EpochStats stats;
    result.epoch_lrs.push_back(lr);
    RETURN_IF_ERROR(TrainEpoch(epoch, lr, result, stats));
    result.epochs = epoch;
    const bool cut_short = config_.max_steps > 0 && total_steps_ >= config_.max_steps;
    RETURN_IF_ERROR(EndOfEpoch(epoch, lr, result));
    if (cut_short) break;
  }
  if (config_.evaluate_test && data_.test != nullptr) {
    double test_nll = 0.0;
    if (comm_.is_root()) {
      ASSIGN_OR_RETURN(NllSum test, EvaluateLm(model_, *data_.test, config_.eval_batch_size, config_.num_steps));
      test_nll = test.nll / static_cast<double>(test.tokens);
    }
    std::vector<double> shared = {test_nll};
    RETURN_IF_ERROR(comm::BroadcastValues(comm_, shared, 0));
    result.test_ppl = std::exp(shared[0]);
    common::Log0(absl::StrFormat("| end of training | test ppl %8.2f |", result.test_ppl));
    metrics_.Write({{"type", "test"}, {"test_ppl", result.test_ppl}, {"test_loss", shared[0]}});
  }
  result.steps = total_steps_;
  return result;
}

// Steps between two progress lines, summed over ranks where it says global.
struct LmTrainer::Interval {
  double global_nll = 0.0, ms = 0.0, grad_norm = 0.0;
  int64_t global_tokens = 0, steps = 0;
};

absl::StatusOr<LmTrainer::StepOutcome> LmTrainer::Step(const data::LmWindow& window, model::RecurrentState& state) {
  torch::optim::SGD& optimizer = *optimizer_;
  LoadIds(window.inputs, window.steps, window.batch, inputs_);
  LoadIds(window.targets, window.steps, window.batch, targets_);
  optimizer.zero_grad(/*set_to_none=*/false);  // keep gradient buffers: no fresh pages per step
  auto [logits, next] = model_->forward(inputs_, state.Detached());
  torch::Tensor nll_sum = SummedCrossEntropy(logits, targets_);
  (nll_sum / LossDivisor(config_.loss_reduction, window.batch, window.steps)).backward();
  RETURN_IF_ERROR(reducer_->AllReduceGradients());
  StepOutcome outcome;
  // Every rank clips the same averaged gradients, so replicas take the same step.
  outcome.grad_norm = ClipGradients(params_, /*clip_value=*/0.0, config_.clip_norm);
  optimizer.step();
  state = next;
  ++total_steps_;
  if (config_.check_replicas_every > 0 && total_steps_ % config_.check_replicas_every == 0) {
    RETURN_IF_ERROR(comm::CheckReplicasAgree(comm_, params_));
  }
  ASSIGN_OR_RETURN(outcome.global_nll, comm::AllReduceScalar(comm_, nll_sum.item<double>(), comm::ReduceOp::kSum));
  outcome.global_tokens = window.steps * window.batch * comm_.world_size();
  return outcome;
}

void LmTrainer::LogProgress(int64_t epoch, int64_t step, int64_t steps, double lr, const Interval& interval) {
  const double loss = interval.global_nll / static_cast<double>(interval.global_tokens);
  const double ms_per_step = interval.ms / static_cast<double>(interval.steps);
  const double tok_s = static_cast<double>(interval.global_tokens) / (interval.ms / 1000.0);
  const double eta_s = ms_per_step * static_cast<double>(steps - step) / 1000.0;
  const double grad_norm = interval.grad_norm / static_cast<double>(interval.steps);
  common::Log0(absl::StrFormat(
      "| epoch %3d | %5d/%5d batches | lr %7.4f | loss %6.3f | ppl %8.2f | grad norm %6.2f | "
      "ms/batch %7.1f | tok/s %8.0f | eta %4.0fs |",
      epoch, step, steps, lr, loss, std::exp(loss), grad_norm, ms_per_step, tok_s, eta_s));
  metrics_.Write({{"type", "progress"}, {"epoch", epoch}, {"step", step}, {"steps", steps},
                  {"global_step", total_steps_}, {"lr", lr}, {"loss", loss}, {"ppl", std::exp(loss)},
                  {"grad_norm", grad_norm}, {"ms_per_step", ms_per_step}, {"tok_per_s", tok_s},
                  {"world_size", comm_.world_size()}});
}

absl::Status LmTrainer::TrainEpoch(int64_t epoch, double lr, LmResult& result, EpochStats& stats) {
  ASSIGN_OR_RETURN(data::LmBatcher batcher,
                   data::LmBatcher::Create(*data_.train, config_.batch_size, config_.num_steps, comm_.rank(),
                                           comm_.world_size(), /*full_windows_only=*/true));
  const int64_t windows = batcher.num_windows();
  const int64_t log_every = config_.log_every > 0 ? config_.log_every : std::max<int64_t>(windows / 10, 1);
  static_cast<torch::optim::SGDOptions&>(optimizer_->param_groups()[0].options()).lr(lr);
  data::LmWindow window;
  model::RecurrentState state;  // zeros at epoch start
  model_->train();
  Interval interval;
  common::Stopwatch epoch_clock;

  RETURN_IF_ERROR(common::GuardTorch("training step failed", [&]() -> absl::Status {
    for (int64_t i = 0; i < windows; ++i) {
      if (config_.max_steps > 0 && total_steps_ >= config_.max_steps) break;
      MaybeInjectFault(comm_.rank(), config_.fault_rank, config_.fault_step, total_steps_ + 1);
      common::Stopwatch step_clock;
      batcher.FillWindow(i, window);
      ASSIGN_OR_RETURN(StepOutcome step, Step(window, state));
      const double ms = step_clock.ElapsedMs();
      // The differentiated loss of the global batch (for equivalence checks across world sizes).
      result.step_losses.push_back(step.global_nll /
                                   (LossDivisor(config_.loss_reduction, window.batch, window.steps) *
                                    comm_.world_size()));
      stats.nll += step.global_nll;
      stats.tokens += step.global_tokens;
      stats.all_ms += ms;
      stats.all_tokens += step.global_tokens / comm_.world_size();
      if (i >= config_.warmup_steps) {
        stats.timed_ms += ms;
        stats.timed_tokens += step.global_tokens / comm_.world_size();
      }
      interval.global_nll += step.global_nll;
      interval.global_tokens += step.global_tokens;
      interval.ms += ms;
      interval.grad_norm += step.grad_norm;
      ++interval.steps;
      if ((i + 1) % log_every == 0 || i + 1 == windows) {
        LogProgress(epoch, i + 1, windows, lr, interval);
        interval = Interval();
      }
    }
    return absl::OkStatus();
  }));
  // Throughput: tokens of all ranks over the slowest rank's time, warm-up excluded
  // (unless the epoch was all warm-up).
  if (stats.timed_tokens == 0) {
    stats.timed_ms = stats.all_ms;
    stats.timed_tokens = stats.all_tokens;
  }
  ASSIGN_OR_RETURN(double timed_tokens,
                   comm::AllReduceScalar(comm_, static_cast<double>(stats.timed_tokens), comm::ReduceOp::kSum));
  ASSIGN_OR_RETURN(double timed_ms, comm::AllReduceScalar(comm_, stats.timed_ms, comm::ReduceOp::kMax));
  result.train_tokens_per_s = timed_ms > 0 ? timed_tokens / (timed_ms / 1000.0) : 0.0;
  const double train_loss = stats.tokens > 0 ? stats.nll / static_cast<double>(stats.tokens) : 0.0;
  const double epoch_s = epoch_clock.ElapsedMs() / 1000.0;
  common::Log0(absl::StrFormat("| epoch %3d | train ppl %8.2f | epoch time %6.1fs | tok/s %8.0f |", epoch,
                               std::exp(train_loss), epoch_s, result.train_tokens_per_s));
  metrics_.Write({{"type", "train_epoch"}, {"epoch", epoch}, {"train_loss", train_loss},
                  {"train_ppl", std::exp(train_loss)}, {"epoch_s", epoch_s}, {"tok_per_s", result.train_tokens_per_s}});
  return absl::OkStatus();
}

absl::Status LmTrainer::EndOfEpoch(int64_t epoch, double& lr, LmResult& result) {
  // decision = {valid loss per token, next lr, 1 if best so far}
  std::vector<double> decision(3, 0.0);
  if (comm_.is_root()) {
    ASSIGN_OR_RETURN(NllSum valid, EvaluateLm(model_, *data_.valid, config_.eval_batch_size, config_.num_steps));
    const double valid_loss = valid.nll / static_cast<double>(valid.tokens);
    const bool best = valid_loss < schedule_.best_loss();
    decision = {valid_loss, schedule_.NextAfterEpoch(epoch, valid_loss), best ? 1.0 : 0.0};
  }
  RETURN_IF_ERROR(comm::BroadcastValues(comm_, decision, 0));
  const double valid_ppl = std::exp(decision[0]);
  result.last_valid_ppl = valid_ppl;
  if (decision[2] > 0.5) result.best_valid_ppl = valid_ppl;
  common::Log0(absl::StrFormat("| end of epoch %3d | valid loss %6.3f | valid ppl %8.2f | next lr %7.4f |%s", epoch,
                               decision[0], valid_ppl, decision[1], decision[2] > 0.5 ? " best so far |" : ""));
  metrics_.Write({{"type", "valid"}, {"epoch", epoch}, {"valid_loss", decision[0]}, {"valid_ppl", valid_ppl},
                  {"next_lr", decision[1]}, {"best", decision[2] > 0.5}});
  lr = decision[1];
  if (comm_.is_root() && !config_.run_dir.empty()) {
    nlohmann::json meta = checkpoint_meta_;
    meta["epoch"] = epoch;
    meta["valid_ppl"] = valid_ppl;
    meta["next_lr"] = lr;
    RETURN_IF_ERROR(SaveCheckpoint(config_.run_dir + "/model.pt", meta, *model_, optimizer_.get()));
    if (decision[2] > 0.5) RETURN_IF_ERROR(SaveCheckpoint(config_.run_dir + "/best.pt", meta, *model_, optimizer_.get()));
  }
  return comm_.Barrier();
}

}  // namespace distrnn::train
