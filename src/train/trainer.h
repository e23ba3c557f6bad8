// Trainer: the one training loop, data-parallel over the communicator's ranks, for any
// TrainTask (train_task.h).
//
// One step: for each of k micro-batches, the task's forward and backward of
// loss_sum / (normalizer * k) -> GradientReducer averages over ranks -> clip by value,
// then by global norm -> optimizer (SGD or Adam). Each epoch: rank 0 evaluates, decides
// (next lr, best, stop) and broadcasts the decision as one typed record; rank 0 writes
// the checkpoint. Every --checkpoint_every_steps steps a checkpoint too.
//
// Faults: the small all-reduce of each step's figures (loss sum, units) also carries
// every rank's stop-signal and non-finite flags, so all ranks stop (or skip an update)
// at the same step for no extra collective (Note [the step's figures] in trainer.cc).
//
// Checkpoints hold the whole training state (checkpoint_state.h) so that a run resumed
// on the same world size continues bit for bit, and on another world size (same global
// batch) follows the same trajectory up to float summation order.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "train/agreed_stop.h"
#include "train/lr_schedule.h"
#include "train/train_task.h"

namespace distrnn::train {

enum class OptimizerKind { kSgd, kAdam };
absl::StatusOr<OptimizerKind> ParseOptimizer(const std::string& name);
const char* OptimizerName(OptimizerKind kind);

// What a step with a non-finite loss or gradient does (--on_nonfinite).
enum class NonFinitePolicy { kStop, kSkip };
absl::StatusOr<NonFinitePolicy> ParseNonFinitePolicy(const std::string& name);
const char* NonFinitePolicyName(NonFinitePolicy policy);

// Testing aid (--fault_kind): what --fault_rank does at --fault_step. exit: ends the
// process abruptly before the step; nan_loss / nan_grad: makes its loss / one gradient
// element NaN in the step.
enum class FaultKind { kExit, kNanLoss, kNanGrad };
absl::StatusOr<FaultKind> ParseFaultKind(const std::string& name);

struct TrainerConfig {
  int64_t batch_size = 20;      // global batch G, split over ranks and micro-batches
  int micro_batches = 1;        // k: gradient accumulation, one all-reduce per step
  int64_t max_epochs = 1;       // counted from the start of the run, not of this invocation
  int64_t max_steps = 0;        // optimizer steps over the whole run (0: no limit)
  OptimizerKind optimizer = OptimizerKind::kSgd;
  LrScheduleConfig lr;
  double clip_value = 0.0;      // clamp each gradient element to [-v, v] (0: off)
  double clip_norm = 0.0;       // then clip the global L2 norm (0: off)
  int64_t log_every = 0;        // steps between progress lines (0: ten per epoch)
  int64_t warmup_steps = 5;     // steps of each epoch left out of throughput
  std::string run_dir;          // metrics.jsonl and checkpoints ("" = none)
  int64_t checkpoint_every_steps = 0;  // besides one per epoch (0: per epoch only)
  int keep_checkpoints = 2;     // newest step checkpoints kept
  std::string resume = "none";  // auto | none | a checkpoint path
  bool evaluate_test = true;
  // Also evaluate the test split after each whole epoch (rank 0, logged with the valid
  // figures; never used for a decision), as the original PTB plots show it.
  bool test_each_epoch = false;
  int64_t bucket_bytes = int64_t{25} << 20;
  // The first bucket's cap (c10d's 1 MiB): the first all-reduce can start early.
  int64_t first_bucket_bytes = int64_t{1} << 20;
  // Start each bucket's all-reduce from backward hooks as soon as its gradients are
  // ready (gradient_reducer.h, Note [overlap with backward]).
  bool overlap_allreduce = false;
  // Exchange only the touched rows of the task's row-sparse parameters (input
  // embeddings) instead of all-reducing them whole (Note [row-sparse gradients]).
  bool sparse_embedding_grad = true;
  int64_t check_replicas_every = 0;
  // A non-finite loss or gradient on any rank (the flags travel in the step's all-reduce,
  // so every rank takes the same branch): kStop ends the run with Diverged
  // (agreed_stop.h), one line naming the step, the rank(s) and loss or gradient; kSkip
  // leaves the parameters as they were and goes on, until more than max_skipped steps of
  // the run were skipped.
  NonFinitePolicy on_nonfinite = NonFinitePolicy::kStop;
  int64_t max_skipped = 10;
  // Polled on every rank after each step: the number of a signal that asks the run to
  // stop (SIGTERM, SIGINT), or 0. The answers travel in the step's all-reduce, so one
  // rank's signal stops every rank after the same step; the checkpoint is written (with
  // a run dir) and Run() returns StoppedBySignal (agreed_stop.h). Unset: never polled.
  std::function<int()> stop_signal;
  int fault_rank = -1;          // testing aid: this rank fails at global step fault_step
  int64_t fault_step = 0;       // 1-based; 0: off
  FaultKind fault_kind = FaultKind::kExit;

  absl::Status Validate() const;
  // The part that describes the optimisation (logged; compared on resume).
  nlohmann::json ToJson() const;
};

struct TrainResult {
  int64_t epochs = 0;                 // epochs finished, over the whole run
  int64_t steps = 0;                  // optimizer steps, over the whole run
  std::vector<double> step_losses;    // this invocation's steps: global mean loss per unit
  std::vector<double> step_grad_norms;
  std::vector<double> epoch_lrs;      // lr of each epoch this invocation trained in
  Evaluation last_valid;
  Evaluation best_valid;
  int64_t best_epoch = 0;
  Evaluation test;                    // empty when not evaluated
  double units_per_s = 0.0;           // all ranks, warm-up excluded, last epoch
  double last_epoch_seconds = 0.0;
  bool stopped_early = false;         // the task's stop rule
  int64_t skipped_steps = 0;          // over the whole run: non-finite steps skipped (kSkip)
  int64_t buckets_overlapped = 0;     // this invocation: buckets started during backward
  int64_t embedding_rows_sent = 0;    // this invocation: rows of row-sparse gradients sent
  int64_t heap_trims = 0;             // this invocation: freed memory returned (common/runtime.h)
  std::string resumed_from;           // "" for a fresh start
};

class Trainer {
 public:
  Trainer(comm::Communicator& comm, TrainTask& task, TrainerConfig config);
  ~Trainer();

  // Starts from rank 0's parameters (or the resumed checkpoint), trains, tests. A stop
  // signal or a non-finite step ends it with an agreed-stop status (agreed_stop.h) that
  // every rank returns at the same step.
  absl::StatusOr<TrainResult> Run();

  // What --resume resolves to here ("" for a fresh start); rank 0 decides. Exposed for
  // the start-up table; Run() calls it too.
  static absl::StatusOr<std::string> ResolveResume(const TrainerConfig& config);

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace distrnn::train
