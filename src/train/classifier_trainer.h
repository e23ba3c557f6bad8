// ClassifierTrainer: data-parallel training of a sequence Classifier (IMDB sentiment),
// following LmTrainer's pattern (rank 0's initial parameters broadcast, persistent
// GradientReducer, rank-0 decisions broadcast, checkpoints by rank 0).
//
// One step: global batch k of the epoch's plan (ClassificationBatcher: one permutation
// from (seed, epoch), optional length buckets), this rank's slice [T_max, G/W] ->
// forward -> loss summed over the slice and divided by G/W -> backward -> gradients
// averaged over ranks (Note [classifier loss scale]) -> clip by global norm -> Adam.
// Each epoch rank 0 evaluates on valid, decides whether this is the best model (valid
// accuracy, ties by lower valid loss), broadcasts the decision and writes model.pt (and
// best.pt). At the end every rank restores the best parameters (all ranks keep the same
// copy, as the decision is shared) and rank 0 evaluates on test.
//
// Loss: num_classes == 1: BCE-with-logits on the single logit, label in {0, 1};
// num_classes K >= 2: cross entropy over K logits. Accuracy: logit > 0, or argmax.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "comm/gradient_reducer.h"
#include "data/classification_batcher.h"
#include "model/classifier.h"
#include "train/metrics_log.h"

namespace distrnn::train {

struct ClassifierTrainConfig {
  int64_t batch_size = 64;        // global batch G, split over ranks (G % W == 0)
  int64_t eval_batch_size = 256;  // valid/test batches (rank 0 alone)
  int64_t max_epochs = 2;
  int64_t max_steps = 0;          // stop after this many optimizer steps in total (0: no limit)
  double lr = 1e-3;               // Adam
  double clip_norm = 5.0;         // 0: no clipping
  bool bucket_by_length = true;
  int64_t bucket_batches = 50;    // length-bucket chunk, in global batches
  uint64_t seed = 0;              // data order
  int64_t log_every = 0;          // steps between progress lines (0: ten per epoch)
  int64_t warmup_steps = 5;       // steps of each epoch left out of throughput
  std::string run_dir;            // metrics.jsonl and checkpoints ("" = none)
  int64_t bucket_bytes = int64_t{25} << 20;
  int64_t check_replicas_every = 0;
  // Fault injection (see LmTrainConfig).
  int fault_rank = -1;
  int64_t fault_step = 0;

  absl::Status Validate() const;
};

// train on every rank; valid (required) and test (optional) on rank 0 only.
struct ClassifierSplits {
  const data::ClassificationDataset* train = nullptr;
  const data::ClassificationDataset* valid = nullptr;
  const data::ClassificationDataset* test = nullptr;
};

// Loss summed over examples and the number classified correctly.
struct ClassificationEval {
  double loss_sum = 0.0;
  int64_t correct = 0;
  int64_t examples = 0;
  double loss() const { return examples > 0 ? loss_sum / static_cast<double>(examples) : 0.0; }
  double accuracy() const { return examples > 0 ? static_cast<double>(correct) / static_cast<double>(examples) : 0.0; }
};

// Evaluates `model` (eval mode, no grad) on all of `data` in batches of `batch`, sorted
// by length to limit padding.
absl::StatusOr<ClassificationEval> EvaluateClassifier(model::Classifier& model, const data::ClassificationDataset& data,
                                                      int64_t batch);

struct ClassifierResult {
  int64_t epochs = 0;
  int64_t steps = 0;
  std::vector<double> step_losses;   // per step, the global mean loss that was differentiated
  std::vector<double> step_grad_norms;  // per step, the averaged gradients' norm before clipping
  double last_valid_accuracy = 0.0;
  double best_valid_accuracy = 0.0;
  double best_valid_loss = 0.0;
  int64_t best_epoch = 0;
  double test_accuracy = 0.0;        // 0 when no test split
  double test_loss = 0.0;
  double last_epoch_seconds = 0.0;   // wall time of the last epoch's training (no evaluation)
  double train_examples_per_s = 0.0; // all ranks, warm-up steps excluded, last epoch
};

class ClassifierTrainer {
 public:
  // `checkpoint_meta` (task, model config, vocabulary, ...) is stored in each checkpoint.
  ClassifierTrainer(comm::Communicator& comm, model::Classifier model, ClassifierTrainConfig config,
                    ClassifierSplits data, nlohmann::json checkpoint_meta);
  ~ClassifierTrainer();

  // Starts from rank 0's parameters (broadcast), trains, restores the best epoch's
  // parameters on every rank, evaluates test on rank 0.
  absl::StatusOr<ClassifierResult> Run();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace distrnn::train
