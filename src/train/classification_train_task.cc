#include "train/classification_train_task.h"

#include <algorithm>
#include <numeric>

#include <ATen/ATen.h>
#include <torch/nn/functional/loss.h>

#include "absl/strings/str_cat.h"
#include "common/device.h"
#include "common/runtime.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "model/column_dropout.h"

namespace distrnn::train {
namespace {

struct BatchTensors {
  at::Tensor tokens, lengths, labels;
};

// Tokens and labels on `device` (staged through pinned memory on CUDA); lengths stay on
// the host, where packing reads them.
BatchTensors ToTensors(const data::ClassificationBatch& b, c10::Device device) {
  auto copy = [](const std::vector<int64_t>& v, std::vector<int64_t> shape, c10::Device to) {
    const at::Tensor host = at::from_blob(const_cast<int64_t*>(v.data()), shape, at::kLong);
    return to.is_cpu() ? host.clone() : common::ToDevice(host, to);
  };
  const c10::Device cpu(c10::kCPU);
  return {copy(b.tokens, {b.max_len, b.batch}, device), copy(b.lengths, {b.batch}, cpu),
          copy(b.labels, {b.batch}, device)};
}

// Summed over the batch: BCE-with-logits for one logit, cross entropy for K.
at::Tensor SummedLoss(const at::Tensor& logits, const at::Tensor& labels) {
  namespace F = torch::nn::functional;
  if (logits.size(1) == 1) {
    return F::binary_cross_entropy_with_logits(logits.squeeze(1), labels.to(logits.scalar_type()),
                                               F::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum));
  }
  return F::cross_entropy(logits, labels, F::CrossEntropyFuncOptions().reduction(torch::kSum));
}

int64_t CountCorrect(const at::Tensor& logits, const at::Tensor& labels) {
  at::Tensor predicted = logits.size(1) == 1 ? (logits.squeeze(1) > 0).to(at::kLong) : logits.argmax(1);
  return predicted.eq(labels).sum().item<int64_t>();
}

}  // namespace

absl::StatusOr<ClassificationEval> EvaluateClassifier(model::Classifier& model, const data::ClassificationDataset& data,
                                                      int64_t batch) {
  if (batch < 1) return absl::InvalidArgumentError("evaluation batch must be positive");
  const int64_t n = static_cast<int64_t>(data.sequences.size());
  std::vector<int64_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return data.sequences[a].size() < data.sequences[b].size(); });
  ClassificationEval eval;
  RETURN_IF_ERROR(common::GuardTorch("evaluation failed", [&] {
    torch::NoGradGuard no_grad;
    const bool was_training = model->is_training();
    model->eval();
    for (int64_t begin = 0; begin < n; begin += batch) {
      std::vector<int64_t> indices(order.begin() + begin, order.begin() + std::min(n, begin + batch));
      BatchTensors t = ToTensors(data::MakeClassificationBatch(data, indices, model->config().padding_idx),
                                 common::ModuleDevice(*model));
      at::Tensor logits = model->forward(t.tokens, t.lengths);
      eval.loss_sum += SummedLoss(logits, t.labels).item<double>();
      eval.correct += CountCorrect(logits, t.labels);
      eval.examples += static_cast<int64_t>(indices.size());
      // Every batch is longer than the last (sorted), so the freed ones are holes the next
      // does not fit: without this the test pass of imdb_large grew the RSS by ~2 GiB.
      common::TrimFreedMemory();
    }
    model->train(was_training);
    return absl::OkStatus();
  }));
  return eval;
}

absl::StatusOr<std::unique_ptr<ClassificationTrainTask>> ClassificationTrainTask::Create(
    model::Classifier model, ClassificationTaskConfig config, ClassificationSplits splits, Shard shard,
    nlohmann::json meta) {
  if (splits.train == nullptr || (shard.rank == 0 && (splits.valid == nullptr || splits.valid->labels.empty()))) {
    return absl::InvalidArgumentError("training needs a train split and, on rank 0, a non-empty valid split");
  }
  if (config.batch_size % shard.count() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", config.batch_size,
                                                   " is not divisible by world size x micro-batches ", shard.count()));
  }
  data::ClassificationBatcherOptions options;
  options.global_batch = config.batch_size;
  options.seed = config.seed;
  options.shuffle = true;
  options.bucket_by_length = config.bucket_by_length;
  options.bucket_batches = config.bucket_batches;
  options.drop_last = true;  // every rank runs the same steps, every slice is full
  options.pad_id = model->config().padding_idx;
  ASSIGN_OR_RETURN(data::ClassificationBatcher batcher,
                   data::ClassificationBatcher::Create(*splits.train, options, shard.rank, shard.world_size));
  std::unique_ptr<ClassificationTrainTask> task(
      new ClassificationTrainTask(std::move(model), config, splits, shard, std::move(meta)));
  task->batcher_.emplace(std::move(batcher));
  task->batcher_->StartEpoch(1);  // StepsPerEpoch() is known from the start
  return task;
}

absl::Status ClassificationTrainTask::StartEpoch(int64_t epoch, int64_t /*first_step*/) {
  batcher_->StartEpoch(epoch);
  return absl::OkStatus();
}

absl::StatusOr<MicroBatchLoss> ClassificationTrainTask::Forward(int64_t step, int64_t global_step, int micro) {
  if (micro == 0) batcher_->FillBatch(step, rank_batch_);
  const data::ClassificationBatch* batch = &rank_batch_;
  const int64_t size = rank_batch_.batch / shard_.micro_batches;  // full batches: divides exactly
  if (shard_.micro_batches > 1) {
    const auto first = rank_batch_.example_indices.begin() + micro * size;
    micro_batch_ = data::MakeClassificationBatch(batcher_->data(), std::vector<int64_t>(first, first + size),
                                                 model_->config().padding_idx);
    batch = &micro_batch_;
  }
  BatchTensors t = ToTensors(*batch, common::ModuleDevice(*model_));
  model_->SetDropoutKey(
      model::DropoutKey{config_.seed, global_step, shard_.index(micro) * config_.batch_size / shard_.count()});
  at::Tensor logits = model_->forward(t.tokens, t.lengths);
  MicroBatchLoss loss;
  loss.touched_rows = {t.tokens};
  loss.loss_sum = SummedLoss(logits, t.labels);
  loss.units = batch->batch;
  loss.normalizer = static_cast<double>(batch->batch);  // mean over the global batch
  loss.correct = CountCorrect(logits, t.labels);
  return loss;
}

bool ClassificationTrainTask::HasSplit(Split split) const {
  const data::ClassificationDataset* d = split == Split::kValid ? splits_.valid : splits_.test;
  return d != nullptr && !d->labels.empty();
}

absl::StatusOr<Evaluation> ClassificationTrainTask::Evaluate(Split split) {
  const bool valid = split == Split::kValid;
  if (!HasSplit(split)) return absl::InvalidArgumentError("no such split on this rank");
  ASSIGN_OR_RETURN(ClassificationEval e,
                   EvaluateClassifier(model_, valid ? *splits_.valid : *splits_.test, config_.eval_batch_size));
  const std::string prefix = valid ? "valid_" : "test_";
  return Evaluation{{prefix + "loss", e.loss()}, {prefix + "accuracy", e.accuracy()}};
}

}  // namespace distrnn::train
