// TrainTask: what differs between tasks (word/char LM, copy, classification); the one
// Trainer (trainer.h) owns everything else: the loop, optimizer, clipping, gradient
// reduction, meters, rank-0 decisions, checkpoints and resume.
//
// A task supplies this rank's micro-batches of global step i and their summed loss,
// what resets at an epoch start, rank-0 evaluation into named figures, the metric that
// picks the best model (with its direction), the stop rule, and the state it carries
// from step to step (the LM hidden state) for checkpoints.
//
// Sharding (DESIGN.md invariant 1) with gradient accumulation: rank r of W with k
// micro-batches trains micro-batch m as shard r*k + m of W*k; so any factorisation of
// the global batch G into ranks x micro-batches sees the same columns in every step.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "comm/communicator.h"

namespace torch::nn {
class Module;
}

namespace distrnn::train {

class CheckpointReader;

struct Shard {
  int rank = 0;
  int world_size = 1;
  int micro_batches = 1;
  int index(int micro) const { return rank * micro_batches + micro; }
  int count() const { return world_size * micro_batches; }
};

// What one micro-batch contributes to a step. Note [loss normalisation]: the global
// objective is (sum of loss_sum) / (sum of normalizer) over every micro-batch of every
// rank. All micro-batches of a step have the same normalizer (G % (W*k) == 0), so the
// Trainer differentiates loss_sum / (normalizer * k) and the reducer's average over W
// ranks completes the division.
struct MicroBatchLoss {
  at::Tensor loss_sum;      // scalar, summed over the micro-batch; differentiated
  double normalizer = 0.0;  // this micro-batch's share of the objective's denominator
  int64_t units = 0;        // what the logged loss is a mean over (tokens, positions, examples)
  int64_t correct = -1;     // units predicted right (classification), -1 when not measured
  // One per TrainTask::RowSparseParameters() entry: the row ids (any shape) whose
  // gradient this micro-batch may have made non-zero, i.e. the tokens it looked up.
  std::vector<at::Tensor> touched_rows;
};

// Named figures of one evaluation, e.g. {"valid_loss": 4.8, "valid_ppl": 121.5}.
using Evaluation = std::map<std::string, double>;

enum class Split { kValid, kTest };

struct SelectionMetric {
  std::string name;              // a key of the valid Evaluation
  bool higher_is_better = false;
};

// How progress lines describe the task.
struct TaskReport {
  std::string unit = "tok";      // what units are, for "<unit>/s"
  bool perplexity = false;       // show exp(loss)
};

class TrainTask {
 public:
  virtual ~TrainTask() = default;

  virtual torch::nn::Module& model() = 0;
  // Parameters of model() whose gradient is non-zero only in the rows Forward() reports
  // in MicroBatchLoss::touched_rows (an input embedding not tied to anything): the
  // Trainer exchanges just those rows (comm/gradient_reducer.h, Note [row-sparse
  // gradients]). Empty: every gradient is all-reduced whole.
  virtual std::vector<at::Tensor> RowSparseParameters() { return {}; }
  // Whether the input embedding's backward emits a sparse gradient (the looked-up rows)
  // instead of a dense [V, D] one: autograd then adds those rows into the dense gradient the
  // Trainer keeps bound (a bucket view or the row-sparse table's own), and no step pays for a
  // zero-filled table, its write and its addition (README: "The embedding's backward").
  // Only the Trainer turns it on: a gradient left unbound would become a sparse tensor,
  // which Adam and the clipping do not take.
  virtual void SetSparseEmbeddingBackward(bool on) { (void)on; }
  // Checkpoint metadata that identifies the model (task, architecture, vocabulary):
  // resuming with different values is refused, naming the field.
  virtual nlohmann::json Meta() const = 0;
  virtual TaskReport report() const { return {}; }

  // The global batch G the task was built for (the Trainer checks its own against it).
  virtual int64_t GlobalBatch() const = 0;
  // Global steps per epoch, the same on every rank.
  virtual int64_t StepsPerEpoch() const = 0;
  // Before step `first_step` of `epoch` (1-based): 0 for a new epoch, more when a resume
  // continues one (then the carried state restored from the checkpoint is kept).
  virtual absl::Status StartEpoch(int64_t epoch, int64_t first_step) = 0;
  // Forward of micro-batch `micro` of step `step` (0-based in the epoch); randomness is
  // keyed by `global_step` (0-based over the run), never by the rank.
  virtual absl::StatusOr<MicroBatchLoss> Forward(int64_t step, int64_t global_step, int micro) = 0;

  // Rank 0 alone: whether the split exists here, and its evaluation.
  virtual bool HasSplit(Split split) const = 0;
  virtual absl::StatusOr<Evaluation> Evaluate(Split split) = 0;
  // Must include "valid_loss" (the plateau schedule reads it) and the selection metric.
  virtual SelectionMetric selection_metric() const = 0;
  virtual bool ShouldStop(const Evaluation& valid) const { return false; }
  // Every rank, after a complete epoch's evaluation (rank 0's figures, broadcast, so the
  // same everywhere) and before its checkpoint: state the task derives from them, e.g.
  // the copy task's curriculum level.
  virtual absl::Status AfterEpochEvaluation(const Evaluation& valid) { return absl::OkStatus(); }
  // Train the last epoch's model or restore the best one before testing.
  virtual bool RestoreBestAtEnd() const { return false; }

  // State carried between steps (collective: every rank calls it at the same point).
  // Returned tensors hold all G global columns, so they load on any world size.
  virtual absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> GatherCarriedState(
      comm::Communicator& comm) {
    return std::vector<std::pair<std::string, at::Tensor>>{};
  }
  virtual absl::Status RestoreCarriedState(const CheckpointReader& checkpoint) { return absl::OkStatus(); }
};

}  // namespace distrnn::train
