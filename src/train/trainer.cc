#include "train/trainer.h"

#include <algorithm>
#include <csignal>
#include <cmath>
#include <limits>

#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Context.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/sgd.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "comm/gradient_reducer.h"
#include "comm/parameter_sync.h"
#include "common/device.h"
#include "common/logging.h"
#include "common/runtime.h"
#include "common/status_macros.h"
#include "common/timer.h"
#include "common/torch_status.h"
#include "common/validation.h"
#include "train/checkpoint.h"
#include "train/checkpoint_dir.h"
#include "train/metrics_log.h"
#include "train/resume.h"
#include "train/run_state.h"
#include "train/step_utils.h"

namespace distrnn::train {

absl::StatusOr<OptimizerKind> ParseOptimizer(const std::string& name) {
  if (name == "sgd") return OptimizerKind::kSgd;
  if (name == "adam") return OptimizerKind::kAdam;
  return absl::InvalidArgumentError(absl::StrCat("unknown --optimizer '", name, "' (expected sgd or adam)"));
}

const char* OptimizerName(OptimizerKind kind) { return kind == OptimizerKind::kSgd ? "sgd" : "adam"; }

absl::StatusOr<NonFinitePolicy> ParseNonFinitePolicy(const std::string& name) {
  if (name == "stop") return NonFinitePolicy::kStop;
  if (name == "skip") return NonFinitePolicy::kSkip;
  return absl::InvalidArgumentError(absl::StrCat("unknown --on_nonfinite '", name, "' (expected stop or skip)"));
}

const char* NonFinitePolicyName(NonFinitePolicy policy) { return policy == NonFinitePolicy::kStop ? "stop" : "skip"; }

absl::StatusOr<FaultKind> ParseFaultKind(const std::string& name) {
  if (name == "exit") return FaultKind::kExit;
  if (name == "nan_loss") return FaultKind::kNanLoss;
  if (name == "nan_grad") return FaultKind::kNanGrad;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --fault_kind '", name, "' (expected exit, nan_loss or nan_grad)"));
}

absl::Status TrainerConfig::Validate() const {
  RETURN_IF_ERROR(common::RequirePositive(batch_size, "batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(micro_batches, "micro_batches"));
  RETURN_IF_ERROR(common::RequirePositive(max_epochs, "max_epochs"));
  RETURN_IF_ERROR(lr.Validate());
  if (max_steps < 0) return absl::InvalidArgumentError(absl::StrCat("--max_steps must be >= 0, got ", max_steps));
  if (!(clip_value >= 0.0)) return absl::InvalidArgumentError(absl::StrCat("--clip_value must be >= 0, got ", clip_value));
  if (!(clip_norm >= 0.0)) return absl::InvalidArgumentError(absl::StrCat("--clip_norm must be >= 0, got ", clip_norm));
  if (log_every < 0) return absl::InvalidArgumentError("--log_every must be >= 0");
  if (warmup_steps < 0) return absl::InvalidArgumentError("--warmup_steps must be >= 0");
  if (checkpoint_every_steps < 0) return absl::InvalidArgumentError("--checkpoint_every_steps must be >= 0");
  if (keep_checkpoints < 1) return absl::InvalidArgumentError("--keep_checkpoints must be >= 1");
  if (bucket_bytes < 1) return absl::InvalidArgumentError("--bucket_mb must be positive");
  if (first_bucket_bytes < 1) return absl::InvalidArgumentError("--first_bucket_mb must be positive");
  if (check_replicas_every < 0) return absl::InvalidArgumentError("--check_replicas_every must be >= 0");
  if (max_skipped < 0) return absl::InvalidArgumentError(absl::StrCat("--max_skipped must be >= 0, got ", max_skipped));
  if (resume.empty()) return absl::InvalidArgumentError("--resume must be auto, none or a checkpoint path");
  if (batch_size % micro_batches != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", batch_size, " is not divisible by --micro_batches ",
                                                   micro_batches));
  }
  return absl::OkStatus();
}

nlohmann::json TrainerConfig::ToJson() const {
  return {{"batch_size", batch_size},         {"micro_batches", micro_batches},
          {"max_epochs", max_epochs},         {"max_steps", max_steps},
          {"optimizer", OptimizerName(optimizer)}, {"lr", lr.base_lr},
          {"lr_schedule", LrScheduleName(lr.kind)}, {"lr_decay", lr.decay},
          {"decay_start_epoch", lr.decay_start}, {"clip_value", clip_value},
          {"clip_norm", clip_norm},           {"checkpoint_every_steps", checkpoint_every_steps},
          {"keep_checkpoints", keep_checkpoints}};
}

namespace {

// Sums over the steps between two progress lines (global: over all ranks); skipped
// steps (non-finite, --on_nonfinite=skip) count in `steps` and `skipped` only.
struct Meter {
  double loss_sum = 0.0, units = 0.0, correct = 0.0, ms = 0.0, grad_norm = 0.0;
  // Host time spent in the gradient all-reduce after backward: on CPU the communication
  // that backward did not hide; on NCCL only the enqueueing (the host does not wait).
  double allreduce_ms = 0.0;
  int64_t steps = 0, skipped = 0;
};

// Note [the step's figures]: every step all-reduces (sum) one small double tensor,
//   {loss sum, units, correct, ranks whose loss is non-finite, ranks whose averaged
//    gradient is non-finite, ranks with SIGTERM pending, ranks with SIGINT pending},
// after the gradients are averaged and clipped and before the optimizer steps. The loss
// figures need this collective anyway; the flags ride along, so every rank sees the
// same counts and takes the same branch (update, skip, stop) at the same step with no
// collective of their own. A signal or a non-finite value on one rank thus never leaves
// another rank waiting in a collective.
enum Figure { kLossSum, kUnits, kCorrect, kBadLossRanks, kBadGradRanks, kTermRanks, kIntRanks, kFigures };

const char* SignalName(int signo) {
  switch (signo) {
    case SIGTERM: return "SIGTERM";
    case SIGINT: return "SIGINT";
    default: return "a stop signal";
  }
}

// "nan", "inf" or "-inf".
std::string NonFiniteName(double value) { return std::isnan(value) ? "nan" : value > 0 ? "inf" : "-inf"; }

// Testing aid (--fault_kind=nan_loss|nan_grad) on the fault rank's first micro-batch: a
// NaN loss (so NaN gradients too), or a NaN in one gradient element with the loss left
// finite. Returns the objective to differentiate.
at::Tensor InjectNonFinite(FaultKind kind, at::Tensor objective, at::Tensor& loss_sum,
                           const std::vector<at::Tensor>& params, int64_t global_step) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (kind == FaultKind::kNanLoss) {
    common::LogLine("fault", absl::StrCat("injected fault: NaN loss at global step ", global_step));
    loss_sum = loss_sum * nan;
    return objective * nan;
  }
  if (kind == FaultKind::kNanGrad) {
    common::LogLine("fault", absl::StrCat("injected fault: NaN gradient at global step ", global_step));
    return objective + params.front().reshape({-1})[0] * nan;
  }
  return objective;
}

}  // namespace

struct Trainer::State {
  State(comm::Communicator& c, TrainTask& t, TrainerConfig cfg)
      : comm(c), task(t), config(std::move(cfg)), schedule(config.lr) {}

  absl::Status Setup();
  absl::Status Resume(const std::string& path);
  absl::Status TrainEpoch();
  absl::Status Step(Meter& interval);
  absl::Status OnNonFinite(double local_loss, bool bad_loss, double grad_norm);
  absl::Status StopForSignal(const Meter& interval, int64_t steps_in_epoch);
  void LogProgress(int64_t steps_in_epoch, const Meter& m);
  absl::Status LogEpochEnd(double timed_ms, int64_t timed_steps, double epoch_ms);
  absl::Status Evaluate(bool epoch_complete, bool& stop);
  absl::StatusOr<EpochDecision> Decide(bool epoch_complete);
  absl::Status SaveCheckpoint(bool step_file, bool best_file);
  absl::Status Test();
  void SetLr(double lr);
  bool StepLimitReached() const {
    return config.max_steps > 0 && progress.global_step >= config.max_steps;
  }

  comm::Communicator& comm;
  TrainTask& task;
  TrainerConfig config;
  LrSchedule schedule;
  Shard shard;
  MetricsLog metrics;
  std::optional<CheckpointDirectory> checkpoints;  // rank 0 with a run dir
  std::vector<torch::Tensor> params;
  std::unique_ptr<comm::GradientReducer> reducer;
  std::vector<size_t> row_sparse;  // indices into params, one per task.RowSparseParameters() (or none)
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  std::vector<torch::Tensor> best_params;  // RestoreBestAtEnd tasks: every rank (decisions are shared)
  torch::Tensor reduced;                   // Note [the step's figures]
  int stop_signal = 0;                     // agreed by all ranks at the last step (0: none)
  int64_t saved_step = -1;                 // global step of the last step checkpoint written
  RunProgress progress;
  TrainResult result;
};

Trainer::Trainer(comm::Communicator& comm, TrainTask& task, TrainerConfig config)
    : s_(std::make_unique<State>(comm, task, std::move(config))) {}

Trainer::~Trainer() = default;

absl::StatusOr<std::string> Trainer::ResolveResume(const TrainerConfig& config) {
  if (config.resume == "none") return std::string();
  if (config.resume != "auto") return config.resume;
  if (config.run_dir.empty()) return std::string();
  ASSIGN_OR_RETURN(std::optional<std::string> latest, CheckpointDirectory(config.run_dir, 1).Latest());
  return latest.value_or("");
}

void Trainer::State::SetLr(double lr) {
  progress.lr = lr;
  for (auto& group : optimizer->param_groups()) group.options().set_lr(lr);
}

absl::Status Trainer::State::Setup() {
  RETURN_IF_ERROR(config.Validate());
  shard = {comm.rank(), comm.world_size(), config.micro_batches};
  if (task.GlobalBatch() != config.batch_size) {
    return absl::InvalidArgumentError(absl::StrCat("the task was built for global batch ", task.GlobalBatch(),
                                                   " but the trainer has ", config.batch_size));
  }
  if (config.batch_size % shard.count() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", config.batch_size,
                                                   " (the global batch) is not divisible by world size x micro-batches ",
                                                   comm.world_size(), " x ", config.micro_batches));
  }
  absl::Status dir_ok;
  if (comm.is_root() && !config.run_dir.empty()) {
    dir_ok = CheckpointDirectory::CheckWritable(config.run_dir);
    if (dir_ok.ok()) {
      checkpoints.emplace(config.run_dir, config.keep_checkpoints);
      auto log = MetricsLog::Open(config.run_dir + "/metrics.jsonl");
      if (log.ok()) metrics = std::move(*log); else dir_ok = log.status();
    }
  }
  RETURN_IF_ERROR(BroadcastStatus(comm, dir_ok));
  params = task.model().parameters();
  return common::GuardTorch("cannot set up training", [&] {
    // Replicas start from rank 0's parameters, not from equal seeds.
    std::vector<torch::Tensor> state = params;
    for (auto& b : task.model().buffers()) state.push_back(b);
    RETURN_IF_ERROR(comm::BroadcastParameters(comm, state, 0));
    row_sparse.clear();
    if (config.sparse_embedding_grad && comm.world_size() > 1) {
      for (const torch::Tensor& table : task.RowSparseParameters()) {
        const auto it = std::find_if(params.begin(), params.end(), [&](const torch::Tensor& p) { return p.is_same(table); });
        if (it == params.end()) return absl::InternalError("a row-sparse parameter is not a parameter of the model");
        row_sparse.push_back(static_cast<size_t>(it - params.begin()));
      }
    }
    reducer = std::make_unique<comm::GradientReducer>(comm, params, config.bucket_bytes, /*async_host_buckets=*/false,
                                                     config.first_bucket_bytes, row_sparse);
    if (config.overlap_allreduce) reducer->EnableOverlap();  // Note [overlap with backward]
    // Every gradient is now bound dense (a bucket view or a row-sparse table's own), so the
    // embedding may hand autograd its rows only (train_task.h).
    task.SetSparseEmbeddingBackward(config.sparse_embedding_grad);
    if (config.optimizer == OptimizerKind::kSgd) {
      optimizer = std::make_unique<torch::optim::SGD>(params, torch::optim::SGDOptions(config.lr.base_lr));
    } else {
      optimizer = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(config.lr.base_lr));
    }
    reduced = torch::zeros({kFigures}, torch::kDouble);
    SetLr(schedule.lr());
    return absl::OkStatus();
  });
}

absl::Status Trainer::State::Resume(const std::string& path) {
  ResumeTarget target{task, *optimizer, params, config, comm};
  ASSIGN_OR_RETURN(progress, ResumeFrom(target, path));
  schedule.Restore(progress.lr, progress.schedule_best_loss);
  SetLr(progress.lr);
  if (task.RestoreBestAtEnd() && progress.best_epoch > 0) {
    ASSIGN_OR_RETURN(best_params, LoadBestParameters(target, config.run_dir));
  }
  result.resumed_from = path;
  common::Log0(absl::StrFormat("[train] resumed from %s: epoch %d, step %d of it, global step %d, lr %g", path,
                               progress.epoch, progress.step, progress.global_step, progress.lr));
  metrics.Write({{"type", "resume"}, {"path", path}, {"epoch", progress.epoch}, {"step", progress.step},
                 {"global_step", progress.global_step}, {"world_size", comm.world_size()}});
  return absl::OkStatus();
}

absl::StatusOr<TrainResult> Trainer::Run() {
  State& s = *s_;
  RETURN_IF_ERROR(s.Setup());
  std::string path;
  absl::Status resolved;
  if (s.comm.is_root()) {
    auto r = ResolveResume(s.config);
    if (r.ok()) path = *r; else resolved = r.status();
  }
  RETURN_IF_ERROR(BroadcastStatus(s.comm, resolved));
  RETURN_IF_ERROR(comm::BroadcastString(s.comm, path, 0));
  if (!path.empty()) RETURN_IF_ERROR(s.Resume(path));
  bool stop = false;
  while (!stop && s.progress.epoch <= s.config.max_epochs && !s.StepLimitReached()) {
    s.result.epoch_lrs.push_back(s.progress.lr);
    RETURN_IF_ERROR(s.TrainEpoch());
    const bool complete = s.progress.step == s.task.StepsPerEpoch();
    RETURN_IF_ERROR(s.Evaluate(complete, stop));
    // A signal at an epoch's last step waits for its evaluation and checkpoint; a run with
    // nothing left but the test finishes.
    if (s.stop_signal != 0 && !stop && s.progress.epoch <= s.config.max_epochs && !s.StepLimitReached()) {
      return s.StopForSignal(Meter(), s.task.StepsPerEpoch());
    }
  }
  s.result.epochs = s.progress.epoch - 1;
  s.result.steps = s.progress.global_step;
  s.result.skipped_steps = s.progress.skipped_steps;
  s.result.stopped_early = stop;
  s.result.best_epoch = s.progress.best_epoch;
  s.result.best_valid = s.progress.best_valid;
  RETURN_IF_ERROR(s.Test());
  return s.result;
}

absl::Status Trainer::State::TrainEpoch() {
  RETURN_IF_ERROR(task.StartEpoch(progress.epoch, progress.step));
  const int64_t steps = task.StepsPerEpoch();
  const int64_t log_every = config.log_every > 0 ? config.log_every : std::max<int64_t>(steps / 10, 1);
  const int64_t first = progress.step;
  task.model().train();
  Meter interval;
  double timed_ms = 0.0;
  int64_t timed_steps = 0;
  common::Stopwatch epoch_clock;
  while (progress.step < steps && !StepLimitReached()) {
    if (config.fault_kind == FaultKind::kExit) {
      MaybeInjectFault(comm.rank(), config.fault_rank, config.fault_step, progress.global_step + 1);
    }
    common::Stopwatch step_clock;
    RETURN_IF_ERROR(Step(interval));
    if (common::TrimFreedMemory()) ++result.heap_trims;  // timed: a trim's cost is the step's
    const double ms = step_clock.ElapsedMs();
    interval.ms += ms;
    if (progress.step - first > config.warmup_steps) {
      timed_ms += ms;
      ++timed_steps;
    }
    const bool last = progress.step == steps || StepLimitReached();
    if (progress.step % log_every == 0 || last) {
      LogProgress(steps, interval);
      interval = Meter();
    }
    if (!last && config.checkpoint_every_steps > 0 && progress.global_step % config.checkpoint_every_steps == 0) {
      RETURN_IF_ERROR(SaveCheckpoint(/*step_file=*/true, /*best_file=*/false));
    }
    if (stop_signal != 0 && !last) return StopForSignal(interval, steps);
  }
  return LogEpochEnd(timed_ms, timed_steps, epoch_clock.ElapsedMs());
}

absl::Status Trainer::State::Step(Meter& interval) {
  return common::GuardTorch("training step failed", [&]() -> absl::Status {
    reducer->ZeroGradients();  // whole buckets; the gradients are views into them
    const bool fault_here = config.fault_kind != FaultKind::kExit && config.fault_step > 0 &&
                            comm.rank() == config.fault_rank && progress.global_step + 1 == config.fault_step;
    at::Tensor step_loss;  // on the device: read once, with the norm, after clipping
    double units = 0.0, correct = 0.0;
    for (int micro = 0; micro < config.micro_batches; ++micro) {
      // --precision=bf16 autocasts the forward pass on CUDA (common/device.h); not backward.
      std::optional<common::AutocastScope> autocast(std::in_place,
                                                    params.empty() ? c10::kCPU : params.front().device().type());
      ASSIGN_OR_RETURN(MicroBatchLoss loss, task.Forward(progress.step, progress.global_step, micro));
      autocast.reset();
      if (!row_sparse.empty()) {
        if (loss.touched_rows.size() != row_sparse.size()) {
          return absl::InternalError(absl::StrCat("the task reported touched rows for ", loss.touched_rows.size(),
                                                  " row-sparse parameters, not ", row_sparse.size()));
        }
        for (size_t k = 0; k < row_sparse.size(); ++k) reducer->AddTouchedRows(row_sparse[k], loss.touched_rows[k]);
      }
      // Note [loss normalisation] in train_task.h.
      at::Tensor objective = loss.loss_sum / (loss.normalizer * config.micro_batches);
      if (fault_here && micro == 0) {
        objective = InjectNonFinite(config.fault_kind, objective, loss.loss_sum, params, config.fault_step);
      }
      // The last micro-batch's backward completes each gradient: its hooks may start buckets.
      if (micro + 1 == config.micro_batches) reducer->ArmForBackward();
      objective.backward();
      const at::Tensor micro_loss = loss.loss_sum.detach().to(at::kDouble);
      step_loss = micro == 0 ? micro_loss : step_loss + micro_loss;
      units += static_cast<double>(loss.units);
      correct += static_cast<double>(std::max<int64_t>(loss.correct, 0));
    }
    const common::Stopwatch allreduce_clock;
    RETURN_IF_ERROR(reducer->AllReduceGradients());
    interval.allreduce_ms += allreduce_clock.ElapsedMs();
    result.buckets_overlapped += static_cast<int64_t>(reducer->buckets_started_in_backward());
    result.embedding_rows_sent = reducer->rows_sent();
    // Every rank clips the same averaged gradients, so replicas take the same step. The
    // step's one host synchronisation: the loss and the norm come back together.
    const at::Tensor norm = ClipGradients(reducer->FlatGradients(), config.clip_value, config.clip_norm);
    const at::Tensor figures = at::stack({step_loss, norm.to(at::kDouble)}).cpu();
    const double loss_sum = figures[0].item<double>();
    const double grad_norm = figures[1].item<double>();
    // Note [the step's figures].
    const int signo = config.stop_signal ? config.stop_signal() : 0;
    auto r = reduced.accessor<double, 1>();
    r[kLossSum] = loss_sum;
    r[kUnits] = units;
    r[kCorrect] = correct;
    r[kBadLossRanks] = std::isfinite(loss_sum) ? 0.0 : 1.0;
    r[kBadGradRanks] = std::isfinite(grad_norm) ? 0.0 : 1.0;
    r[kTermRanks] = signo != 0 && signo != SIGINT ? 1.0 : 0.0;
    r[kIntRanks] = signo == SIGINT ? 1.0 : 0.0;
    RETURN_IF_ERROR(comm.AllReduce(reduced, comm::ReduceOp::kSum));
    ++progress.step;
    ++progress.global_step;
    result.step_losses.push_back(r[kLossSum] / r[kUnits]);
    result.step_grad_norms.push_back(grad_norm);
    ++interval.steps;
    if (r[kBadLossRanks] > 0 || r[kBadGradRanks] > 0) {
      RETURN_IF_ERROR(OnNonFinite(loss_sum, r[kBadLossRanks] > 0, grad_norm));
      ++interval.skipped;  // the parameters stay as they were
    } else {
      optimizer->step();
      progress.epoch_loss_sum += r[kLossSum];
      progress.epoch_units += r[kUnits];
      progress.epoch_correct += r[kCorrect];
      interval.loss_sum += r[kLossSum];
      interval.units += r[kUnits];
      interval.correct += r[kCorrect];
      interval.grad_norm += grad_norm;
    }
    if (config.check_replicas_every > 0 && progress.global_step % config.check_replicas_every == 0) {
      RETURN_IF_ERROR(comm::CheckReplicasAgree(comm, params));
    }
    if (r[kTermRanks] > 0 || r[kIntRanks] > 0) stop_signal = r[kTermRanks] > 0 ? SIGTERM : SIGINT;
    return absl::OkStatus();
  });
}

absl::Status Trainer::State::OnNonFinite(double local_loss, bool bad_loss, double grad_norm) {
  // Which ranks: a collective every rank makes, on this path only.
  ASSIGN_OR_RETURN(const std::vector<double> losses, comm.AllGather(local_loss));
  std::vector<int> ranks;
  for (int r = 0; r < static_cast<int>(losses.size()); ++r) {
    if (!std::isfinite(losses[r])) ranks.push_back(r);
  }
  std::string what;
  if (bad_loss) {
    what = absl::StrCat("non-finite loss (", NonFiniteName(losses[ranks.front()]), ") on rank",
                        ranks.size() > 1 ? "s " : " ", absl::StrJoin(ranks, ", "), " of ", comm.world_size());
  } else {
    // Every rank holds the same averaged gradients: name the parameters (this path only),
    // unless clipping by norm already spread the NaN to all of them.
    std::vector<std::string> names;
    size_t with_grad = 0;
    RETURN_IF_ERROR(common::GuardTorch("cannot inspect the gradients", [&] {
      for (const auto& item : task.model().named_parameters()) {
        const at::Tensor& grad = item.value().grad();
        if (!grad.defined()) continue;
        ++with_grad;
        if (!grad.isfinite().all().item<bool>()) names.push_back(item.key());
      }
      return absl::OkStatus();
    }));
    const bool informative = !names.empty() && names.size() < with_grad;
    if (names.size() > 3) {
      names.resize(3);
      names.push_back("...");
    }
    what = absl::StrCat("non-finite gradient (norm ", NonFiniteName(grad_norm), " after averaging over ",
                        comm.world_size(), comm.world_size() > 1 ? " ranks" : " rank",
                        "; every rank's loss was finite",
                        informative ? absl::StrCat("; in ", absl::StrJoin(names, ", ")) : "",
                        ")");
  }
  const std::string where = absl::StrFormat("at global step %d (step %d of epoch %d)", progress.global_step,
                                            progress.step, progress.epoch);
  const bool skip = config.on_nonfinite == NonFinitePolicy::kSkip && progress.skipped_steps < config.max_skipped;
  if (config.on_nonfinite == NonFinitePolicy::kSkip) ++progress.skipped_steps;
  metrics.Write({{"type", "nonfinite"}, {"epoch", progress.epoch}, {"step", progress.step},
                 {"global_step", progress.global_step}, {"what", bad_loss ? "loss" : "gradient"}, {"ranks", ranks},
                 {"action", skip ? "skip" : "stop"}, {"skipped_steps", progress.skipped_steps}});
  if (skip) {
    common::Log0(absl::StrFormat("[train] %s %s: update skipped (%d of at most %d, --max_skipped)", what, where,
                                 progress.skipped_steps, config.max_skipped));
    return absl::OkStatus();
  }
  return Diverged(absl::StrCat(
      what, " ", where, "; stopping",
      config.on_nonfinite == NonFinitePolicy::kSkip
          ? absl::StrCat(": ", progress.skipped_steps, " steps skipped, more than --max_skipped=", config.max_skipped)
          : " (--on_nonfinite=skip would skip such updates)"));
}

absl::Status Trainer::State::StopForSignal(const Meter& interval, int64_t steps_in_epoch) {
  if (interval.steps > 0) LogProgress(steps_in_epoch, interval);
  if (saved_step != progress.global_step) RETURN_IF_ERROR(SaveCheckpoint(/*step_file=*/true, /*best_file=*/false));
  const std::string where = absl::StrFormat("after global step %d (step %d of epoch %d)", progress.global_step,
                                            progress.step, progress.epoch);
  const std::string checkpoint =
      config.run_dir.empty() ? "no checkpoint (no --run_dir)"
                             : absl::StrCat("checkpoint ", CheckpointDirectory(config.run_dir, 1).StepPath(progress.global_step),
                                            " written; continue with --resume=auto");
  metrics.Write({{"type", "stop"}, {"signal", SignalName(stop_signal)}, {"epoch", progress.epoch},
                 {"step", progress.step}, {"global_step", progress.global_step}});
  return StoppedBySignal(stop_signal, absl::StrCat("stopped by ", SignalName(stop_signal), " ", where, ": ",
                                                   checkpoint));
}

void Trainer::State::LogProgress(int64_t steps_in_epoch, const Meter& m) {
  const TaskReport report = task.report();
  const double loss = m.loss_sum / m.units;
  const double ms_per_step = m.ms / static_cast<double>(m.steps);
  const double units_s = m.units / (m.ms / 1000.0);
  const double eta_s = ms_per_step * static_cast<double>(steps_in_epoch - progress.step) / 1000.0;
  const double grad_norm = m.grad_norm / static_cast<double>(std::max<int64_t>(m.steps - m.skipped, 1));
  const bool accuracy = m.correct > 0 || report.unit == "ex";
  std::string figures = absl::StrFormat("loss %7.4f |", loss);
  if (m.skipped > 0) absl::StrAppendFormat(&figures, " skipped %d |", m.skipped);
  if (report.perplexity) absl::StrAppendFormat(&figures, " ppl %8.2f |", std::exp(loss));
  if (accuracy) absl::StrAppendFormat(&figures, " acc %6.2f%% |", 100.0 * m.correct / m.units);
  common::Log0(absl::StrFormat(
      "| epoch %3d | %5d/%5d steps | lr %.4g | %s grad norm %6.2f | ms/step %7.1f | %s/s %8.0f | eta %4.0fs |",
      progress.epoch, progress.step, steps_in_epoch, progress.lr, figures, grad_norm, ms_per_step, report.unit, units_s,
      eta_s));
  nlohmann::json record = {{"type", "progress"}, {"epoch", progress.epoch}, {"step", progress.step},
                           {"steps", steps_in_epoch}, {"global_step", progress.global_step}, {"lr", progress.lr},
                           {"loss", loss}, {"grad_norm", grad_norm}, {"ms_per_step", ms_per_step},
                           {"units_per_s", units_s}, {"unit", report.unit}, {"world_size", comm.world_size()}};
  if (report.perplexity) record["ppl"] = std::exp(loss);
  if (accuracy) record["accuracy"] = m.correct / m.units;
  if (config.on_nonfinite == NonFinitePolicy::kSkip) record["skipped_steps"] = progress.skipped_steps;
  if (comm.world_size() > 1) record["allreduce_ms_per_step"] = m.allreduce_ms / static_cast<double>(m.steps);
  metrics.Write(record);
}

absl::Status Trainer::State::LogEpochEnd(double timed_ms, int64_t timed_steps, double epoch_ms) {
  if (timed_steps == 0) {  // an epoch (or the rest of one) shorter than the warm-up: time it all
    timed_ms = epoch_ms;
    timed_steps = result.step_losses.empty() ? 0 : std::min<int64_t>(progress.step, result.step_losses.size());
  }
  // Throughput: units of all ranks over the slowest rank's time, warm-up excluded.
  ASSIGN_OR_RETURN(const double slowest_ms, comm::AllReduceScalar(comm, timed_ms, comm::ReduceOp::kMax));
  const double units_per_step = progress.epoch_units / std::max<double>(static_cast<double>(progress.step), 1.0);
  result.units_per_s = slowest_ms > 0 ? units_per_step * static_cast<double>(timed_steps) / (slowest_ms / 1000.0) : 0.0;
  result.last_epoch_seconds = epoch_ms / 1000.0;
  const TaskReport report = task.report();
  const double loss = progress.epoch_units > 0 ? progress.epoch_loss_sum / progress.epoch_units : 0.0;
  std::string figures = absl::StrFormat("train loss %7.4f |", loss);
  if (report.perplexity) absl::StrAppendFormat(&figures, " train ppl %8.2f |", std::exp(loss));
  nlohmann::json record = {{"type", "train_epoch"}, {"epoch", progress.epoch}, {"global_step", progress.global_step},
                           {"train_loss", loss}, {"epoch_s", result.last_epoch_seconds},
                           {"units_per_s", result.units_per_s}, {"unit", report.unit}};
  if (report.perplexity) record["train_ppl"] = std::exp(loss);
  if (progress.epoch_correct > 0) {
    const double acc = progress.epoch_correct / progress.epoch_units;
    absl::StrAppendFormat(&figures, " train acc %6.2f%% |", 100.0 * acc);
    record["train_accuracy"] = acc;
  }
  common::Log0(absl::StrFormat("| epoch %3d | %s epoch time %6.1fs | %s/s %8.0f |", progress.epoch, figures,
                               result.last_epoch_seconds, report.unit, result.units_per_s));
  metrics.Write(record);
  return absl::OkStatus();
}

absl::StatusOr<EpochDecision> Trainer::State::Decide(bool epoch_complete) {
  EpochDecision d;
  auto valid = task.Evaluate(Split::kValid);
  if (!valid.ok()) {
    d.error = std::string(valid.status().message());
    return d;
  }
  d.valid = *valid;
  if (epoch_complete && config.test_each_epoch && task.HasSplit(Split::kTest)) {
    auto test = task.Evaluate(Split::kTest);
    if (!test.ok()) {
      d.error = std::string(test.status().message());
      return d;
    }
    d.valid.insert(test->begin(), test->end());  // test_* names: no clash with valid_*
  }
  const SelectionMetric metric = task.selection_metric();
  const double value = d.valid.at(metric.name);
  // Only whole epochs compete for best: an evaluation at a step limit inside an epoch is
  // reported, but a resumed run must pick the same best model as an uninterrupted one.
  d.best = epoch_complete && (progress.best_epoch == 0 ||
           (metric.higher_is_better ? value > progress.best_metric : value < progress.best_metric));
  // A step limit inside an epoch ends the run without an lr decision (a resumed run
  // continues the epoch as if uninterrupted).
  d.next_lr = epoch_complete ? schedule.NextAfterEpoch(progress.epoch, d.valid.at("valid_loss")) : progress.lr;
  d.stop = epoch_complete && task.ShouldStop(d.valid);
  return d;
}

absl::Status Trainer::State::Evaluate(bool epoch_complete, bool& stop) {
  EpochDecision decision;
  if (comm.is_root()) {
    ASSIGN_OR_RETURN(decision, Decide(epoch_complete));
    if (common::TrimFreedMemory()) ++result.heap_trims;
  }
  RETURN_IF_ERROR(BroadcastRecord(comm, decision));
  if (!decision.error.empty()) return absl::InternalError(absl::StrCat("evaluation failed: ", decision.error));
  result.last_valid = decision.valid;
  const SelectionMetric metric = task.selection_metric();
  if (decision.best) {
    progress.best_epoch = progress.epoch;
    progress.best_metric = decision.valid.at(metric.name);
    progress.best_valid = decision.valid;
    if (task.RestoreBestAtEnd()) {
      RETURN_IF_ERROR(common::GuardTorch("cannot keep the best parameters", [&] {
        best_params.clear();
        for (const auto& p : params) best_params.push_back(p.detach().clone());
        return absl::OkStatus();
      }));
    }
  }
  std::string figures;
  for (const auto& [name, value] : decision.valid) absl::StrAppendFormat(&figures, " %s %.4f |", name, value);
  const std::string where = epoch_complete ? absl::StrFormat("end of epoch %3d", progress.epoch)
                                           : absl::StrFormat("step limit at step %d of epoch %d", progress.step,
                                                             progress.epoch);
  common::Log0(absl::StrFormat("| %s |%s next lr %.4g |%s", where, figures, decision.next_lr,
                               decision.best ? " best so far |" : ""));
  nlohmann::json record = {{"type", "valid"}, {"epoch", progress.epoch}, {"global_step", progress.global_step},
                           {"next_lr", decision.next_lr}, {"best", decision.best}, {"complete", epoch_complete}};
  for (const auto& [name, value] : decision.valid) record[name] = value;
  metrics.Write(record);
  if (epoch_complete) {
    RETURN_IF_ERROR(task.AfterEpochEvaluation(decision.valid));
    progress.schedule_best_loss = schedule.best_loss();
    ++progress.epoch;
    progress.step = 0;
    progress.epoch_loss_sum = progress.epoch_units = progress.epoch_correct = 0.0;
    SetLr(decision.next_lr);
  }
  stop = decision.stop;
  return SaveCheckpoint(/*step_file=*/true, /*best_file=*/decision.best);
}

absl::Status Trainer::State::SaveCheckpoint(bool step_file, bool best_file) {
  if (config.run_dir.empty()) return absl::OkStatus();
  // Collective: the carried state of all G columns is gathered on every rank.
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  RETURN_IF_ERROR(common::GuardTorch("cannot gather the training state", [&]() -> absl::Status {
    ASSIGN_OR_RETURN(tensors, task.GatherCarriedState(comm));
    tensors.emplace_back(kRngStateTensor, at::detail::getDefaultCPUGenerator().get_state());
    return absl::OkStatus();
  }));
  absl::Status saved;
  if (comm.is_root()) {
    progress.schedule_best_loss = schedule.best_loss();
    CheckpointContents contents;
    contents.meta = TrainingMeta(task, config, progress, comm.world_size());
    contents.model = &task.model();
    contents.optimizer = optimizer.get();
    contents.tensors = std::move(tensors);
    auto bytes = SerializeCheckpoint(contents);
    saved = bytes.status();
    if (saved.ok() && step_file) saved = checkpoints->SaveStepBytes(progress.global_step, *bytes);
    if (saved.ok() && best_file) saved = checkpoints->SaveBestBytes(*bytes);
    if (!saved.ok() && bytes.ok()) {
      // A full or read-only disk: say what is still there (the writes are atomic).
      auto latest = checkpoints->Latest();
      const std::string kept = !latest.ok() ? std::string(latest.status().message())
                               : latest->has_value() ? absl::StrCat("the last complete checkpoint, ", **latest,
                                                                    ", is intact (resume with --resume=auto)")
                                                     : "no earlier checkpoint exists";
      saved = absl::Status(saved.code(), absl::StrCat("cannot write the checkpoint of global step ",
                                                      progress.global_step, ": ", saved.message(), "; ", kept));
    }
  }
  RETURN_IF_ERROR(BroadcastStatus(comm, saved));
  if (step_file) saved_step = progress.global_step;
  return absl::OkStatus();
}

absl::Status Trainer::State::Test() {
  if (task.RestoreBestAtEnd() && !best_params.empty()) {
    RETURN_IF_ERROR(common::GuardTorch("cannot restore the best parameters", [&] {
      torch::NoGradGuard no_grad;
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(best_params[i]);
      return absl::OkStatus();
    }));
  }
  TestRecord test;
  if (comm.is_root() && config.evaluate_test && task.HasSplit(Split::kTest)) {
    test.present = true;
    auto figures = task.Evaluate(Split::kTest);
    if (figures.ok()) test.figures = *figures; else test.error = std::string(figures.status().message());
  }
  RETURN_IF_ERROR(BroadcastRecord(comm, test));
  if (!test.error.empty()) return absl::InternalError(absl::StrCat("test evaluation failed: ", test.error));
  if (!test.present) return absl::OkStatus();
  result.test = test.figures;
  std::string figures;
  for (const auto& [name, value] : test.figures) absl::StrAppendFormat(&figures, " %s %.4f |", name, value);
  common::Log0(absl::StrFormat("| end of training |%s", figures));
  nlohmann::json record = {{"type", "test"}, {"best_epoch", progress.best_epoch}};
  for (const auto& [name, value] : test.figures) record[name] = value;
  metrics.Write(record);
  return absl::OkStatus();
}

}  // namespace distrnn::train
