#include "train/lm_train_task.h"

#include <cmath>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

#include "absl/strings/str_cat.h"
#include "common/device.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "common/validation.h"
#include "model/column_dropout.h"
#include "model/fused_linear_cross_entropy.h"
#include "train/checkpoint.h"
#include "train/step_utils.h"

namespace distrnn::train {

// Note [LM loss scale]
// Zaremba et al.'s recipe (lr 1, clip 5) was tuned for a loss that sums the cross entropy
// over the T steps of a window and averages over the batch. A per-token mean makes the
// effective lr T times smaller and PTB small stalls near perplexity 460 after one epoch.
// Under data parallelism "the batch" is the global batch G: each micro-batch's
// normalizer is its column count, and the Trainer's division (train_task.h) turns the
// sum over all of them into (sum over all G columns) / G.

absl::StatusOr<LossReduction> ParseLossReduction(const std::string& name) {
  if (name == "sum_steps_mean_batch") return LossReduction::kSumStepsMeanBatch;
  if (name == "mean_tokens") return LossReduction::kMeanTokens;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --loss_reduction '", name, "' (expected sum_steps_mean_batch or mean_tokens)"));
}

const char* LossReductionName(LossReduction reduction) {
  return reduction == LossReduction::kSumStepsMeanBatch ? "sum_steps_mean_batch" : "mean_tokens";
}

double NllSum::perplexity() const { return tokens > 0 ? std::exp(nll / static_cast<double>(tokens)) : 0.0; }

absl::Status LmTaskConfig::Validate() const {
  RETURN_IF_ERROR(common::RequirePositive(batch_size, "batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(num_steps, "num_steps"));
  return common::RequirePositive(eval_batch_size, "eval_batch_size");
}

absl::StatusOr<NllSum> EvaluateLm(model::LanguageModel& model, const std::vector<int64_t>& tokens, int64_t batch,
                                  int64_t num_steps) {
  ASSIGN_OR_RETURN(data::LmBatcher batcher,
                   data::LmBatcher::Create(tokens, batch, num_steps, 0, 1, /*full_windows_only=*/false));
  NllSum sum;
  RETURN_IF_ERROR(common::GuardTorch("evaluation failed", [&] {
    torch::NoGradGuard no_grad;
    const bool was_training = model->is_training();
    model->eval();
    data::LmWindow window;
    const c10::Device device = common::ModuleDevice(*model);
    at::Tensor host_inputs, host_targets, inputs, targets;  // ids built on the host, used on the model's device
    model::RecurrentState state;
    for (int64_t i = 0; i < batcher.num_windows(); ++i) {
      batcher.FillWindow(i, window);
      LoadIds(window.inputs, window.steps, window.batch, host_inputs);
      LoadIds(window.targets, window.steps, window.batch, host_targets);
      inputs = common::ToDevice(host_inputs, device);
      targets = common::ToDevice(host_targets, device);
      auto [nll, next] = model->SummedLoss(inputs, targets, state);  // no grad: no logits kept
      sum.nll += nll.item<double>();
      sum.tokens += window.steps * window.batch;
      state = next;
    }
    model->train(was_training);
    return absl::OkStatus();
  }));
  return sum;
}

absl::StatusOr<std::unique_ptr<LmTrainTask>> LmTrainTask::Create(model::LanguageModel model, LmTaskConfig config,
                                                                 LmSplits splits, Shard shard, nlohmann::json meta) {
  RETURN_IF_ERROR(config.Validate());
  if (splits.train == nullptr || (shard.rank == 0 && splits.valid == nullptr)) {
    return absl::InvalidArgumentError("training needs a train split and, on rank 0, a valid split");
  }
  std::unique_ptr<LmTrainTask> task(new LmTrainTask(std::move(model), config, splits, shard, std::move(meta)));
  for (int m = 0; m < shard.micro_batches; ++m) {
    ASSIGN_OR_RETURN(data::LmBatcher batcher,
                     data::LmBatcher::Create(*splits.train, config.batch_size, config.num_steps, shard.index(m),
                                             shard.count(), /*full_windows_only=*/true));
    task->batchers_.push_back(std::move(batcher));
  }
  task->states_.resize(shard.micro_batches);
  return task;
}

absl::Status LmTrainTask::StartEpoch(int64_t epoch, int64_t first_step) {
  if (first_step == 0) {
    for (auto& state : states_) state = {};  // zeros
  }
  return absl::OkStatus();
}

absl::StatusOr<MicroBatchLoss> LmTrainTask::Forward(int64_t step, int64_t global_step, int micro) {
  const data::LmBatcher& batcher = batchers_[micro];
  batcher.FillWindow(step, window_);
  LoadIds(window_.inputs, window_.steps, window_.batch, inputs_);
  LoadIds(window_.targets, window_.steps, window_.batch, targets_);
  // Built on the host, used on the model's device (pinned, non-blocking copy on CUDA).
  const c10::Device device = common::ModuleDevice(*model_);
  const at::Tensor inputs = common::ToDevice(inputs_, device), targets = common::ToDevice(targets_, device);
  model_->SetDropoutKey(model::DropoutKey{config_.seed, global_step, batcher.columns().begin});
  MicroBatchLoss loss;
  model::RecurrentState next;
  std::tie(loss.loss_sum, next) =
      model_->SummedLoss(inputs, targets, states_[micro].Detached(),
                         config_.fused_loss ? config_.fused_loss_chunk_rows : model::kAllRows);
  states_[micro] = next.Detached();
  if (!model_->config().tie_weights) loss.touched_rows = {inputs};
  loss.units = window_.steps * window_.batch;
  loss.normalizer = static_cast<double>(config_.loss_reduction == LossReduction::kSumStepsMeanBatch
                                            ? window_.batch
                                            : window_.batch * window_.steps);
  return loss;
}

std::vector<at::Tensor> LmTrainTask::RowSparseParameters() {
  if (model_->config().tie_weights) return {};
  return {model_->embedding()->weight};
}

void LmTrainTask::SetSparseEmbeddingBackward(bool on) {
  // A tied table also gets the decoder's dense gradient: leave it alone.
  model_->embedding().ptr()->options.sparse(on && !model_->config().tie_weights);
}

bool LmTrainTask::HasSplit(Split split) const {
  return split == Split::kValid ? splits_.valid != nullptr : splits_.test != nullptr && !splits_.test->empty();
}

absl::StatusOr<Evaluation> LmTrainTask::Evaluate(Split split) {
  const bool valid = split == Split::kValid;
  if (!HasSplit(split)) return absl::InvalidArgumentError("no such split on this rank");
  ASSIGN_OR_RETURN(NllSum sum,
                   EvaluateLm(model_, valid ? *splits_.valid : *splits_.test, config_.eval_batch_size, config_.num_steps));
  const double loss = sum.nll / static_cast<double>(sum.tokens);
  const std::string prefix = valid ? "valid_" : "test_";
  return Evaluation{{prefix + "loss", loss}, {prefix + "ppl", std::exp(loss)}};
}

// The state of all G columns: each rank writes its own columns into zeros, a sum
// all-reduce fills in the rest.
absl::StatusOr<std::vector<std::pair<std::string, at::Tensor>>> LmTrainTask::GatherCarriedState(
    comm::Communicator& comm) {
  const model::StackConfig& stack = model_->config().stack;
  const bool has_c = model::HasCellState(stack.cell);
  at::Tensor h = at::zeros({stack.num_layers, config_.batch_size, stack.hidden_size}, at::kFloat);
  at::Tensor c = has_c ? at::zeros_like(h) : at::Tensor();
  for (size_t m = 0; m < states_.size(); ++m) {
    if (!states_[m].defined()) continue;  // zeros
    const data::ColumnRange columns = batchers_[m].columns();
    h.narrow(1, columns.begin, columns.size()).copy_(states_[m].h);
    if (has_c) c.narrow(1, columns.begin, columns.size()).copy_(states_[m].c);
  }
  if (comm.world_size() > 1) {
    RETURN_IF_ERROR(comm.AllReduce(h, comm::ReduceOp::kSum));
    if (has_c) RETURN_IF_ERROR(comm.AllReduce(c, comm::ReduceOp::kSum));
  }
  std::vector<std::pair<std::string, at::Tensor>> out = {{"lm_state_h", h}};
  if (has_c) out.emplace_back("lm_state_c", c);
  return out;
}

absl::Status LmTrainTask::RestoreCarriedState(const CheckpointReader& checkpoint) {
  const model::StackConfig& stack = model_->config().stack;
  const bool has_c = model::HasCellState(stack.cell);
  ASSIGN_OR_RETURN(at::Tensor h, checkpoint.Tensor("lm_state_h"));
  at::Tensor c;
  if (has_c) {
    ASSIGN_OR_RETURN(c, checkpoint.Tensor("lm_state_c"));
  }
  const std::vector<int64_t> expected = {stack.num_layers, config_.batch_size, stack.hidden_size};
  if (!h.sizes().equals(expected) || (has_c && !c.sizes().equals(expected))) {
    return absl::InvalidArgumentError(absl::StrCat("checkpoint hidden state has shape ", c10::str(h.sizes()),
                                                   ", expected ", c10::str(at::IntArrayRef(expected))));
  }
  const c10::Device device = common::ModuleDevice(*model_);  // checkpoints load on the CPU
  for (size_t m = 0; m < states_.size(); ++m) {
    const data::ColumnRange columns = batchers_[m].columns();
    states_[m].h = h.narrow(1, columns.begin, columns.size()).clone().to(device);
    if (has_c) states_[m].c = c.narrow(1, columns.begin, columns.size()).clone().to(device);
  }
  return absl::OkStatus();
}

}  // namespace distrnn::train
