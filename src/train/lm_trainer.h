// LmTrainer: truncated-BPTT training of a LanguageModel on a token stream (PTB words or
// characters), data-parallel over the communicator's ranks.
//
// One step: this rank's window [T, G/W] -> forward from the detached carried state ->
// loss (see LossReduction) -> backward -> gradients averaged over ranks -> clip by global
// norm -> SGD. Each epoch: rank 0 evaluates on valid, decides the next lr (and whether
// this is the best model), broadcasts the decision, writes the checkpoint.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/optim/sgd.h>

#include "absl/status/statusor.h"
#include "comm/communicator.h"
#include "comm/gradient_reducer.h"
#include "data/lm_batcher.h"
#include "model/language_model.h"
#include "train/lr_schedule.h"
#include "train/metrics_log.h"

namespace distrnn::train {

// What the differentiated loss is (Note [LM loss scale]).
//  sum_steps_mean_batch: cross entropy summed over the T steps of a window and averaged
//    over the global batch (Zaremba's code and the TensorFlow reproduction); the
//    published lr = 1 and clip 5 assume this. It is T times a per-token mean.
//  mean_tokens: cross entropy averaged over all T*G predicted tokens (PyTorch's
//    word_language_model).
enum class LossReduction { kSumStepsMeanBatch, kMeanTokens };
absl::StatusOr<LossReduction> ParseLossReduction(const std::string& name);
const char* LossReductionName(LossReduction reduction);
// What a rank divides its summed window NLL by, so that averaging gradients over ranks
// gives the configured loss of the global batch.
double LossDivisor(LossReduction reduction, int64_t local_batch, int64_t steps);

struct LmTrainConfig {
  int64_t batch_size = 20;       // global batch G, split over ranks
  int64_t num_steps = 20;        // BPTT window T
  int64_t eval_batch_size = 10;  // columns used for valid/test (rank 0 alone)
  int64_t max_epochs = 13;
  int64_t max_steps = 0;         // stop after this many optimizer steps in total (0: no limit)
  LrScheduleConfig lr;
  double clip_norm = 5.0;        // 0: no clipping
  LossReduction loss_reduction = LossReduction::kSumStepsMeanBatch;
  int64_t log_every = 0;         // steps between progress lines (0: ten per epoch)
  int64_t warmup_steps = 5;      // steps of each epoch left out of throughput
  std::string run_dir;           // metrics.jsonl and checkpoints ("" = none)
  bool evaluate_test = true;
  int64_t bucket_bytes = int64_t{25} << 20;  // gradient all-reduce bucket cap
  int64_t check_replicas_every = 0;          // steps between replica checksums (0: never)
  // Fault injection for the no-hang tests: rank `fault_rank` exits abruptly (no MPI
  // clean-up) before step `fault_step`. Off when fault_step == 0.
  int fault_rank = -1;
  int64_t fault_step = 0;

  absl::Status Validate() const;
};

// valid and test are read on rank 0 only (it evaluates alone); other ranks may pass null.
struct LmSplits {
  const std::vector<int64_t>* train = nullptr;
  const std::vector<int64_t>* valid = nullptr;
  const std::vector<int64_t>* test = nullptr;  // may be null everywhere: no test pass
};

struct LmResult {
  int64_t epochs = 0;
  int64_t steps = 0;
  double last_valid_ppl = 0.0;
  double best_valid_ppl = 0.0;
  double test_ppl = 0.0;               // 0 when not evaluated
  std::vector<double> step_losses;     // per step, the global loss that was differentiated
  std::vector<double> epoch_lrs;       // lr used in each epoch
  double train_tokens_per_s = 0.0;     // all ranks, warm-up steps excluded, last epoch
};

// Negative log-likelihood summed over every predicted token of `tokens`, evaluated in
// windows of `num_steps` over `batch` columns from a zero state, and the token count.
struct NllSum {
  double nll = 0.0;
  int64_t tokens = 0;
  double perplexity() const;
};
absl::StatusOr<NllSum> EvaluateLm(model::LanguageModel& model, const std::vector<int64_t>& tokens, int64_t batch,
                                  int64_t num_steps);

class LmTrainer {
 public:
  // `checkpoint_meta` (task, model config, vocabulary) is stored in each checkpoint.
  LmTrainer(comm::Communicator& comm, model::LanguageModel model, LmTrainConfig config, LmSplits data,
            nlohmann::json checkpoint_meta);

  // Starts from rank 0's parameters (broadcast), trains, evaluates on rank 0.
  absl::StatusOr<LmResult> Run();

 private:
  struct EpochStats;
  struct Interval;
  struct StepOutcome {
    double global_nll = 0.0;    // summed over the ranks' windows
    int64_t global_tokens = 0;
    double grad_norm = 0.0;     // before clipping
  };
  absl::Status TrainEpoch(int64_t epoch, double lr, LmResult& result, EpochStats& stats);
  // One optimizer step on this rank's window; the carried state is detached first.
  absl::StatusOr<StepOutcome> Step(const data::LmWindow& window, model::RecurrentState& state);
  void LogProgress(int64_t epoch, int64_t step, int64_t steps, double lr, const Interval& interval);
  // Rank 0 evaluates; everyone receives {valid nll per token, next lr, is best}.
  absl::Status EndOfEpoch(int64_t epoch, double& lr, LmResult& result);

  comm::Communicator& comm_;
  model::LanguageModel model_;
  LmTrainConfig config_;
  LrSchedule schedule_;  // authoritative on rank 0, which decides the lr
  LmSplits data_;
  nlohmann::json checkpoint_meta_;
  MetricsLog metrics_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<comm::GradientReducer> reducer_;  // persistent buckets
  std::unique_ptr<torch::optim::SGD> optimizer_;     // lr set by the schedule each epoch
  torch::Tensor inputs_, targets_;                   // [T, B] ids, reused every step
  int64_t total_steps_ = 0;
};

}  // namespace distrnn::train
