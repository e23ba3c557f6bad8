// CopyTrainer: the copy task (data/copy_task.h) on a LanguageModel, data-parallel over
// the communicator's ranks.
//
// Data (world-size invariant, DESIGN.md invariant 1): global step k (0-based, counted
// over the whole run) uses the G train samples with indices (k*G + j) mod n_train,
// j = 0..G-1; rank r of W takes the slice j in [r*G/W, (r+1)*G/W) (CopyShardIndices).
// Evaluation samples are indices [n_train, n_train + n_eval): disjoint from training.
//
// One step: this rank's batch [T, G/W] -> forward from a zero state over the whole
// sequence -> cross entropy summed over the rank's T*G/W positions, divided by T*G/W ->
// backward -> GradientReducer averages over W ranks, so the gradient is that of the mean
// cross entropy over all T*G positions of the global batch (Note [copy loss]) -> clip by
// value, then by global norm -> Adam.
//
// Each epoch: rank 0 evaluates at the train length and at the test length (fresh zero
// state, the whole sequence in one forward pass, so the hidden state carries across the
// longer test sequence), decides whether to stop, broadcasts results and decision, and
// writes <run_dir>/model.pt.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "comm/gradient_reducer.h"
#include "data/copy_task.h"
#include "model/language_model.h"
#include "train/metrics_log.h"

namespace distrnn::train {

struct CopyTrainConfig {
  data::CopyTaskSpec train_spec;       // K, P, L of the training samples
  data::CopyTaskSpec test_spec;        // K+M, P, L' of the longer test samples
  uint64_t seed = 0;                   // sample i is generated from (seed, i)
  int64_t train_samples = 100000;      // training indices cycle over [0, train_samples)
  int64_t eval_samples = 1000;         // evaluation indices [train_samples, train_samples + eval_samples)
  int64_t batch_size = 32;             // global batch G, split over ranks
  int64_t eval_batch_size = 250;       // rank 0 alone
  int64_t steps_per_epoch = 0;         // 0: ceil(train_samples / G)
  int64_t max_epochs = 10;
  int64_t max_steps = 0;               // stop after this many optimizer steps in total (0: no limit)
  double lr = 1e-3;                    // Adam
  double clip_value = 0.0;             // clamp each gradient element to [-v, v] (0: off)
  double clip_norm = 0.0;              // then clip the global L2 norm (0: off)
  double stop_accuracy = 0.0;          // stop after an epoch whose train-length whole-sequence
                                       // accuracy reaches this (0: never)
  int64_t log_every = 0;               // steps between progress lines (0: ten per epoch)
  int64_t warmup_steps = 5;            // steps of each epoch left out of throughput
  std::string run_dir;                 // metrics.jsonl and model.pt ("" = none)
  int64_t bucket_bytes = int64_t{25} << 20;
  int64_t check_replicas_every = 0;    // steps between replica checksums (0: never)
  int fault_rank = -1;                 // testing aid: this rank exits abruptly before step fault_step
  int64_t fault_step = 0;              // 0: off

  absl::Status Validate() const;
  int64_t EffectiveStepsPerEpoch() const {
    return steps_per_epoch > 0 ? steps_per_epoch : (train_samples + batch_size - 1) / batch_size;
  }
};

// The global batch of step k: indices (k*G + j) mod n_train for this rank's j (see top).
absl::StatusOr<std::vector<int64_t>> CopyTrainIndices(int64_t step, int64_t global_batch, int64_t train_samples,
                                                      int rank, int world_size);

// Accuracy of `model` (argmax per step) and its mean cross entropy per position on
// samples [first_index, first_index + count) of `spec`, in batches of `batch_size`,
// each from a zero state. The model is put in eval mode for the pass and restored.
struct CopyEvaluation {
  data::CopyAccuracy accuracy;
  double loss = 0.0;  // mean cross entropy over all T positions
};
absl::StatusOr<CopyEvaluation> EvaluateCopy(model::LanguageModel& model, const data::CopyTaskSpec& spec,
                                            uint64_t seed, int64_t first_index, int64_t count, int64_t batch_size);

// What rank 0 measured at one length, as every rank receives it.
struct CopyEvalResult {
  double step_accuracy = 0.0;      // copied-segment positions right
  double copy_accuracy = 0.0;      // sequences whose whole copied segment is right
  double sequence_accuracy = 0.0;  // sequences right at all T steps
  double loss = 0.0;
};

struct CopyResult {
  int64_t epochs = 0;
  int64_t steps = 0;
  std::vector<double> step_losses;  // per step, the global mean cross entropy that was differentiated
  CopyEvalResult train_length;      // after the last epoch
  CopyEvalResult test_length;
  double train_seq_per_s = 0.0;     // all ranks, warm-up steps excluded, last epoch
  bool stopped_early = false;       // stop_accuracy reached
};

class CopyTrainer {
 public:
  // `checkpoint_meta` (task, model config, specs) is stored in each checkpoint.
  CopyTrainer(comm::Communicator& comm, model::LanguageModel model, CopyTrainConfig config,
              nlohmann::json checkpoint_meta);
  ~CopyTrainer();

  // Starts from rank 0's parameters (broadcast), trains, evaluates on rank 0.
  absl::StatusOr<CopyResult> Run();

 private:
  struct EpochStats;
  absl::Status TrainEpoch(int64_t epoch, CopyResult& result);
  // Rank 0 evaluates; everyone receives the results and the stop decision.
  absl::StatusOr<bool> EndOfEpoch(int64_t epoch, CopyResult& result);

  comm::Communicator& comm_;
  model::LanguageModel model_;
  CopyTrainConfig config_;
  nlohmann::json checkpoint_meta_;
  MetricsLog metrics_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<comm::GradientReducer> reducer_;
  std::unique_ptr<torch::optim::Optimizer> optimizer_;  // Adam, for the whole run
  int64_t total_steps_ = 0;
};

}  // namespace distrnn::train
