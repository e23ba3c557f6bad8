#include "app/train_command.h"

#include <algorithm>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/config_table.h"
#include "app/run_context.h"
#include "app/stop_signals.h"
#include "common/device.h"
#include "common/logging.h"
#include "common/runtime.h"
#include "common/status_macros.h"

namespace distrnn::app {
namespace {

std::string OrNone(int64_t value) { return value == 0 ? "none" : absl::StrCat(value); }

std::string DescribeSchedule(const train::LrScheduleConfig& lr) {
  switch (lr.kind) {
    case train::LrScheduleKind::kConstant: return absl::StrCat(lr.base_lr, ", constant");
    case train::LrScheduleKind::kZaremba:
      return absl::StrCat(lr.base_lr, ", zaremba: x", lr.decay, " per epoch after epoch ", lr.decay_start);
    case train::LrScheduleKind::kPlateau:
      return absl::StrCat(lr.base_lr, ", plateau: x", lr.decay, " when valid does not improve");
  }
  return "";
}

// Rows every task shares; `resume` is rank 0's reading of --resume.
void AddTrainerRows(const train::TrainerConfig& t, const RunOptions& run, const comm::Communicator& comm,
                    const std::string& resume, ConfigRows& rows) {
  rows.push_back({"global batch / micro-batches", absl::StrCat(t.batch_size, " / ", t.micro_batches, " per rank")});
  rows.push_back({"optimizer / lr", absl::StrCat(train::OptimizerName(t.optimizer), ", lr ", DescribeSchedule(t.lr))});
  rows.push_back({"clip value / norm", absl::StrCat(t.clip_value == 0 ? "off" : absl::StrCat(t.clip_value), " / ",
                                                    t.clip_norm == 0 ? "off" : absl::StrCat(t.clip_norm))});
  rows.push_back({"epochs / max steps", absl::StrCat(t.max_epochs, " / ", OrNone(t.max_steps))});
  rows.push_back({"checkpoints", t.run_dir.empty() ? "(none: no run dir)"
                                                    : absl::StrCat("every epoch", t.checkpoint_every_steps > 0
                                                                   ? absl::StrCat(" and ", t.checkpoint_every_steps, " steps")
                                                                   : "", ", keep ", t.keep_checkpoints)});
  rows.push_back({"resume", resume});
  rows.push_back({"non-finite loss/gradient", t.on_nonfinite == train::NonFinitePolicy::kStop
                                                  ? "stop"
                                                  : absl::StrCat("skip the update (at most ", t.max_skipped, " steps)")});
  rows.push_back({"process", DescribeProcess(run, comm)});
  if (comm.world_size() > 1) {
    rows.push_back({"gradient all-reduce", absl::StrCat("buckets of ", t.bucket_bytes / double{1 << 20}, " MiB (the first ",
                                                        std::min(t.first_bucket_bytes, t.bucket_bytes) / double{1 << 20},
                                                        " MiB), ",
                                                        t.overlap_allreduce ? "started during backward" : "after backward",
                                                        t.sparse_embedding_grad ? "; untied input embeddings: touched rows only" : "")});
  }
  rows.push_back({"seed", absl::StrCat(run.seed)});
  rows.push_back({"run dir", t.run_dir.empty() ? "(none)" : t.run_dir});
}

std::string DescribeResume(const train::TrainerConfig& config) {
  auto path = train::Trainer::ResolveResume(config);
  if (!path.ok()) return absl::StrCat("error: ", path.status().message());
  if (!path->empty()) return absl::StrCat("from ", *path);
  if (config.resume == "auto") return "fresh start (no checkpoint in the run dir)";
  return "fresh start";
}

}  // namespace

absl::StatusOr<train::TrainerConfig> TrainerConfigFromFlags(const RunOptions& run, const TaskEntry& task) {
  RETURN_IF_ERROR(ValidateCommonFlags());
  train::TrainerConfig t;
  t.batch_size = absl::GetFlag(FLAGS_batch_size);
  t.micro_batches = absl::GetFlag(FLAGS_micro_batches);
  t.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  t.max_steps = absl::GetFlag(FLAGS_max_steps);
  const std::string optimizer = absl::GetFlag(FLAGS_optimizer);
  t.optimizer = task.default_optimizer;
  if (!optimizer.empty()) {
    ASSIGN_OR_RETURN(t.optimizer, train::ParseOptimizer(optimizer));
  }
  const std::string schedule = absl::GetFlag(FLAGS_lr_schedule);
  t.lr.kind = task.default_schedule;
  if (!schedule.empty()) {
    ASSIGN_OR_RETURN(t.lr.kind, train::ParseLrSchedule(schedule));
  }
  t.lr.base_lr = absl::GetFlag(FLAGS_lr);
  t.lr.decay = absl::GetFlag(FLAGS_lr_decay);
  t.lr.decay_start = absl::GetFlag(FLAGS_decay_start_epoch);
  t.clip_value = absl::GetFlag(FLAGS_clip_value);
  t.clip_norm = absl::GetFlag(FLAGS_clip_norm);
  t.log_every = absl::GetFlag(FLAGS_log_every);
  t.warmup_steps = absl::GetFlag(FLAGS_warmup_steps);
  t.run_dir = run.run_dir;
  t.checkpoint_every_steps = absl::GetFlag(FLAGS_checkpoint_every_steps);
  t.keep_checkpoints = absl::GetFlag(FLAGS_keep_checkpoints);
  t.test_each_epoch = absl::GetFlag(FLAGS_test_each_epoch);
  t.overlap_allreduce = absl::GetFlag(FLAGS_overlap_allreduce);
  t.sparse_embedding_grad = absl::GetFlag(FLAGS_sparse_embedding_grad);
  t.resume = absl::GetFlag(FLAGS_resume);
  t.bucket_bytes = static_cast<int64_t>(absl::GetFlag(FLAGS_bucket_mb) * (1 << 20));
  t.first_bucket_bytes = std::max<int64_t>(1, static_cast<int64_t>(absl::GetFlag(FLAGS_first_bucket_mb) * (1 << 20)));
  t.check_replicas_every = absl::GetFlag(FLAGS_check_replicas_every);
  t.fault_rank = run.fault_rank;
  t.fault_step = run.fault_step;
  ASSIGN_OR_RETURN(t.fault_kind, train::ParseFaultKind(absl::GetFlag(FLAGS_fault_kind)));
  ASSIGN_OR_RETURN(t.on_nonfinite, train::ParseNonFinitePolicy(absl::GetFlag(FLAGS_on_nonfinite)));
  t.max_skipped = absl::GetFlag(FLAGS_max_skipped);
  RETURN_IF_ERROR(t.Validate());
  return t;
}

absl::Status RunTrain() {
  ASSIGN_OR_RETURN(RunOptions run, RunOptionsFromFlags());
  ASSIGN_OR_RETURN(const TaskEntry* entry, FindTask(run.task));
  ASSIGN_OR_RETURN(train::TrainerConfig config, TrainerConfigFromFlags(run, *entry));
  ASSIGN_OR_RETURN(std::unique_ptr<PreparedTask> prepared, entry->prepare(run));
  return RunWithCommunicator(run, [&](comm::Communicator& comm, c10::Device device) -> absl::Status {
    InstallStopSignalHandlers();  // from here SIGTERM/SIGINT stop at a step boundary (stop_signals.h)
    const train::Shard shard{comm.rank(), comm.world_size(), config.micro_batches};
    if (config.batch_size % shard.count() != 0) {
      return absl::InvalidArgumentError(absl::StrCat("--batch_size ", config.batch_size,
                                                     " (the global batch) is not divisible by the world size ",
                                                     comm.world_size(), " x --micro_batches ", config.micro_batches));
    }
    ConfigRows rows = {{"task", absl::StrCat(entry->name, ": ", entry->description)}};
    ASSIGN_OR_RETURN(std::unique_ptr<train::TrainTask> task, prepared->Build(comm, shard, rows));
    // Built (and any --init_from loaded) on the CPU with the seed, then moved: every
    // device starts from the same parameters. The task follows its model's device.
    RETURN_IF_ERROR(common::MoveModule(task->model(), device));
    AddTrainerRows(config, run, comm, comm.is_root() ? DescribeResume(config) : "", rows);
    common::Log0(FormatConfigTable(rows));
    config.stop_signal = PendingStopSignal;
    train::Trainer trainer(comm, *task, config);
    ASSIGN_OR_RETURN(train::TrainResult result, trainer.Run());
    common::Log0(absl::StrFormat("| done | epochs %d | steps %d | %s |%s peak memory %.0f MiB |%s", result.epochs,
                                 result.steps, prepared->Summary(result),
                                 result.skipped_steps > 0 ? absl::StrCat(" skipped ", result.skipped_steps, " steps |")
                                                          : "",
                                 common::PeakRssMiB(),
                                 result.heap_trims > 0 ? absl::StrCat(" freed memory returned ", result.heap_trims,
                                                                      " times |")
                                                       : ""));
    return absl::OkStatus();
  });
}

}  // namespace distrnn::app
