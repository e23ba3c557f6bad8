// CopyTrainTask: the copy task (data/copy_task.h) on a LanguageModel as a TrainTask.
//
// Data (DESIGN.md invariant 1): global step k (0-based over the whole run) uses the G
// train samples with indices (k*G + j) mod n_train, j = 0..G-1; shard s of S takes the
// slice j in [s*G/S, (s+1)*G/S). Held-out samples are indices [n_train, n_train + n_eval).
// Each sequence runs from a zero state; the loss is the cross entropy averaged over all
// T*G positions of the global batch (every step counts, the blanks too).
// Evaluation (rank 0): the held-out samples at the train length ("valid_*") and at the
// longer test length ("test_length_*"), the whole sequence in one forward pass so the
// state carries across the longer sequence. With a curriculum (train/copy_curriculum.h)
// step k trains on K_k symbols instead of K, and the evaluation adds the level
// ("curriculum_level") and the held-out figures at its length ("level_*").
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "data/copy_task.h"
#include "model/language_model.h"
#include "train/copy_curriculum.h"
#include "train/train_task.h"

namespace distrnn::train {

struct CopyTaskConfig {
  data::CopyTaskSpec train_spec;   // K, P, L of the training samples
  data::CopyTaskSpec test_spec;    // K+M, P, L' of the longer test samples
  uint64_t seed = 0;               // sample i is generated from (seed, i); dropout masks
  int64_t train_samples = 100000;
  int64_t eval_samples = 1000;
  int64_t batch_size = 32;         // global batch G
  int64_t eval_batch_size = 250;
  int64_t steps_per_epoch = 0;     // 0: ceil(train_samples / G)
  double stop_accuracy = 0.0;      // stop after an epoch whose train-length sequence accuracy reaches this (0: never)
  CopyCurriculum curriculum;       // off unless curriculum.start > 0

  absl::Status Validate() const;
  int64_t EffectiveStepsPerEpoch() const {
    return steps_per_epoch > 0 ? steps_per_epoch : (train_samples + batch_size - 1) / batch_size;
  }
};

// The indices shard `shard` of `shards` trains in global step `step` (see top).
absl::StatusOr<std::vector<int64_t>> CopyTrainIndices(int64_t step, int64_t global_batch, int64_t train_samples,
                                                      int shard, int shards);

// Accuracy and mean cross entropy per position of `model` on samples
// [first_index, first_index + count) of `spec`, in batches, each from a zero state.
struct CopyEvaluation {
  data::CopyAccuracy accuracy;
  double loss = 0.0;
};
absl::StatusOr<CopyEvaluation> EvaluateCopy(model::LanguageModel& model, const data::CopyTaskSpec& spec,
                                            uint64_t seed, int64_t first_index, int64_t count, int64_t batch_size);

class CopyTrainTask : public TrainTask {
 public:
  static absl::StatusOr<std::unique_ptr<CopyTrainTask>> Create(model::LanguageModel model, CopyTaskConfig config,
                                                               Shard shard, nlohmann::json meta);

  torch::nn::Module& model() override { return *model_; }
  nlohmann::json Meta() const override { return meta_; }
  TaskReport report() const override { return {"tok", false}; }
  int64_t GlobalBatch() const override { return config_.batch_size; }
  int64_t StepsPerEpoch() const override { return config_.EffectiveStepsPerEpoch(); }
  absl::Status StartEpoch(int64_t, int64_t) override { return absl::OkStatus(); }
  absl::StatusOr<MicroBatchLoss> Forward(int64_t step, int64_t global_step, int micro) override;
  bool HasSplit(Split split) const override { return split == Split::kValid && shard_.rank == 0; }
  absl::StatusOr<Evaluation> Evaluate(Split split) override;
  SelectionMetric selection_metric() const override { return {"valid_loss", false}; }
  bool ShouldStop(const Evaluation& valid) const override;
  absl::Status AfterEpochEvaluation(const Evaluation& valid) override;
  absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> GatherCarriedState(
      comm::Communicator& comm) override;
  absl::Status RestoreCarriedState(const CheckpointReader& checkpoint) override;
  int64_t curriculum_level() const { return level_; }

 private:
  CopyTrainTask(model::LanguageModel model, CopyTaskConfig config, Shard shard, nlohmann::json meta)
      : model_(std::move(model)), config_(config), shard_(shard), meta_(std::move(meta)),
        level_(config_.curriculum.start) {}

  model::LanguageModel model_;
  CopyTaskConfig config_;
  Shard shard_;
  nlohmann::json meta_;
  int64_t level_;  // the curriculum's K_c (0 without a curriculum)
  at::Tensor inputs_, targets_;
};

}  // namespace distrnn::train
