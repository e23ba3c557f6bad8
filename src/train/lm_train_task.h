// LmTrainTask: truncated-BPTT language modelling (PTB words, characters) as a TrainTask.
//
// Data (DESIGN.md invariant 1): the train token stream is cut into G columns; shard
// s of S (train_task.h: rank x micro-batch) owns columns [s*G/S, (s+1)*G/S) and carries
// its own hidden state from window to window, detached at each window start (zeros at
// an epoch start). Dropout masks are keyed by (seed, global step, global column).
// Evaluation (rank 0): valid/test in windows over `eval_batch_size` columns from a zero
// state, the last partial window included.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "absl/status/statusor.h"
#include "data/lm_batcher.h"
#include "model/language_model.h"
#include "train/train_task.h"

namespace distrnn::train {

// What the differentiated loss is (Note [LM loss scale] in lm_train_task.cc).
//  sum_steps_mean_batch: cross entropy summed over the T steps of a window and averaged
//    over the global batch (Zaremba's code); lr 1 and clip 5 assume this.
//  mean_tokens: cross entropy averaged over all T*G predicted tokens (PyTorch's example).
enum class LossReduction { kSumStepsMeanBatch, kMeanTokens };
absl::StatusOr<LossReduction> ParseLossReduction(const std::string& name);
const char* LossReductionName(LossReduction reduction);

// Negative log-likelihood summed over every predicted token and the token count.
struct NllSum {
  double nll = 0.0;
  int64_t tokens = 0;
  double perplexity() const;
};
// `tokens` in windows of `num_steps` over `batch` columns from a zero state.
absl::StatusOr<NllSum> EvaluateLm(model::LanguageModel& model, const std::vector<int64_t>& tokens, int64_t batch,
                                  int64_t num_steps);

struct LmTaskConfig {
  int64_t batch_size = 20;       // global batch G
  int64_t num_steps = 20;        // BPTT window T
  int64_t eval_batch_size = 10;
  LossReduction loss_reduction = LossReduction::kSumStepsMeanBatch;
  uint64_t seed = 0;             // dropout masks
  // Decoder + cross entropy (model/fused_linear_cross_entropy.h): true, chunk by chunk of
  // rows (never all logits; --fused_loss); false, all rows at once (faster).
  bool fused_loss = false;
  int64_t fused_loss_chunk_rows = 0;  // 0: chunks of ~8 MiB of logits
  absl::Status Validate() const;
};

// valid and test are read on rank 0 only; test may be null (no test pass).
struct LmSplits {
  const std::vector<int64_t>* train = nullptr;
  const std::vector<int64_t>* valid = nullptr;
  const std::vector<int64_t>* test = nullptr;
};

class LmTrainTask : public TrainTask {
 public:
  // `meta` identifies the model in checkpoints (task, architecture, vocabulary).
  static absl::StatusOr<std::unique_ptr<LmTrainTask>> Create(model::LanguageModel model, LmTaskConfig config,
                                                             LmSplits splits, Shard shard, nlohmann::json meta);

  torch::nn::Module& model() override { return *model_; }
  nlohmann::json Meta() const override { return meta_; }
  TaskReport report() const override { return {"tok", true}; }
  // The input embedding, unless tied to the decoder (whose gradient is dense).
  std::vector<at::Tensor> RowSparseParameters() override;
  void SetSparseEmbeddingBackward(bool on) override;
  int64_t GlobalBatch() const override { return config_.batch_size; }
  int64_t StepsPerEpoch() const override { return batchers_.front().num_windows(); }
  absl::Status StartEpoch(int64_t epoch, int64_t first_step) override;
  absl::StatusOr<MicroBatchLoss> Forward(int64_t step, int64_t global_step, int micro) override;
  bool HasSplit(Split split) const override;
  absl::StatusOr<Evaluation> Evaluate(Split split) override;
  SelectionMetric selection_metric() const override { return {"valid_loss", false}; }
  absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> GatherCarriedState(comm::Communicator& comm) override;
  absl::Status RestoreCarriedState(const CheckpointReader& checkpoint) override;

 private:
  LmTrainTask(model::LanguageModel model, LmTaskConfig config, LmSplits splits, Shard shard, nlohmann::json meta)
      : model_(std::move(model)), config_(config), splits_(splits), shard_(shard), meta_(std::move(meta)) {}

  model::LanguageModel model_;
  LmTaskConfig config_;
  LmSplits splits_;
  Shard shard_;
  nlohmann::json meta_;
  std::vector<data::LmBatcher> batchers_;      // one per micro-batch
  std::vector<model::RecurrentState> states_;  // carried, one per micro-batch
  data::LmWindow window_;
  at::Tensor inputs_, targets_;                // [T, b] ids, reused every step
};

}  // namespace distrnn::train
