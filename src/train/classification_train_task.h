// ClassificationTrainTask: sequence classification (IMDB sentiment) as a TrainTask.
//
// Data (DESIGN.md invariant 1): each epoch one global permutation from (seed, epoch),
// optional length buckets (data/classification_batcher.h); rank r takes its slice of
// every global batch, and micro-batch m of it is shard r*k + m's slice. Loss: binary
// cross entropy with logits (one logit) or cross entropy (K logits), the mean over the
// global batch. Evaluation (rank 0): loss and accuracy on valid / test; the best epoch
// by valid accuracy is restored before testing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "data/classification_batcher.h"
#include "model/classifier.h"
#include "train/train_task.h"

namespace distrnn::train {

struct ClassificationTaskConfig {
  int64_t batch_size = 64;       // global batch G
  int64_t eval_batch_size = 256;
  bool bucket_by_length = true;
  int64_t bucket_batches = 50;
  uint64_t seed = 0;             // data order, dropout masks
};

// train on every rank; valid (required) and test (optional) on rank 0 only.
struct ClassificationSplits {
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
// `model` (eval mode, no grad) on all of `data` in batches of `batch`, sorted by length.
absl::StatusOr<ClassificationEval> EvaluateClassifier(model::Classifier& model, const data::ClassificationDataset& data,
                                                      int64_t batch);

class ClassificationTrainTask : public TrainTask {
 public:
  static absl::StatusOr<std::unique_ptr<ClassificationTrainTask>> Create(model::Classifier model,
                                                                         ClassificationTaskConfig config,
                                                                         ClassificationSplits splits, Shard shard,
                                                                         nlohmann::json meta);

  torch::nn::Module& model() override { return *model_; }
  nlohmann::json Meta() const override { return meta_; }
  TaskReport report() const override { return {"ex", false}; }
  // The input embedding (its padding row's gradient is zero, so naming it is harmless).
  std::vector<at::Tensor> RowSparseParameters() override { return {model_->embedding()->weight}; }
  void SetSparseEmbeddingBackward(bool on) override { model_->embedding().ptr()->options.sparse(on); }
  int64_t GlobalBatch() const override { return config_.batch_size; }
  int64_t StepsPerEpoch() const override { return batcher_->num_batches(); }
  absl::Status StartEpoch(int64_t epoch, int64_t first_step) override;
  absl::StatusOr<MicroBatchLoss> Forward(int64_t step, int64_t global_step, int micro) override;
  bool HasSplit(Split split) const override;
  absl::StatusOr<Evaluation> Evaluate(Split split) override;
  SelectionMetric selection_metric() const override { return {"valid_accuracy", true}; }
  bool RestoreBestAtEnd() const override { return true; }

 private:
  ClassificationTrainTask(model::Classifier model, ClassificationTaskConfig config, ClassificationSplits splits,
                          Shard shard, nlohmann::json meta)
      : model_(std::move(model)), config_(config), splits_(splits), shard_(shard), meta_(std::move(meta)) {}

  model::Classifier model_;
  ClassificationTaskConfig config_;
  ClassificationSplits splits_;
  Shard shard_;
  nlohmann::json meta_;
  std::optional<data::ClassificationBatcher> batcher_;  // this rank's slices
  data::ClassificationBatch rank_batch_, micro_batch_;
};

}  // namespace distrnn::train
