#include "train/classifier_trainer.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <numeric>
#include <optional>

#include <torch/nn/functional/loss.h>
#include <torch/optim/adam.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/validation.h"
#include "common/timer.h"
#include "common/torch_status.h"
#include "comm/parameter_sync.h"
#include "train/checkpoint.h"
#include "train/step_utils.h"

namespace distrnn::train {

// Note [classifier loss scale]
// The loss of a step is the mean over the GLOBAL batch G: (1/G) sum_{i<G} l_i. Rank r
// holds n_r = G/W of those examples (drop_last makes every training batch full, and G %
// W == 0), sums its losses and divides by n_r; GradientReducer then averages over the W
// ranks: (1/W) sum_r (1/n_r) sum_{i in r} grad l_i = (1/G) sum_i grad l_i. So one rank
// with batch G and W ranks with G/W each take the same step, up to summation order.

absl::Status ClassifierTrainConfig::Validate() const {
  RETURN_IF_ERROR(common::RequirePositive(batch_size, "batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(eval_batch_size, "eval_batch_size"));
  RETURN_IF_ERROR(common::RequirePositive(max_epochs, "max_epochs"));
  RETURN_IF_ERROR(common::RequirePositive(bucket_batches, "bucket_batches"));
  if (max_steps < 0) return absl::InvalidArgumentError(absl::StrCat("--max_steps must be >= 0, got ", max_steps));
  if (!(lr > 0.0)) return absl::InvalidArgumentError(absl::StrCat("--lr must be positive, got ", lr));
  if (clip_norm < 0.0) return absl::InvalidArgumentError(absl::StrCat("--clip_norm must be >= 0, got ", clip_norm));
  if (log_every < 0) return absl::InvalidArgumentError("--log_every must be >= 0");
  if (bucket_bytes < 1) return absl::InvalidArgumentError("--bucket_mb must be positive");
  if (check_replicas_every < 0) return absl::InvalidArgumentError("--check_replicas_every must be >= 0");
  return absl::OkStatus();
}

namespace {

struct BatchTensors {
  torch::Tensor tokens, lengths, labels;  // [T, B], [B], [B] int64
};

BatchTensors ToTensors(const data::ClassificationBatch& b) {
  auto copy = [](const std::vector<int64_t>& v, std::vector<int64_t> shape) {
    return torch::from_blob(const_cast<int64_t*>(v.data()), shape, torch::kLong).clone();
  };
  return {copy(b.tokens, {b.max_len, b.batch}), copy(b.lengths, {b.batch}), copy(b.labels, {b.batch})};
}

// Summed over the batch: BCE-with-logits for one logit, cross entropy for K.
torch::Tensor SummedLoss(const torch::Tensor& logits, const torch::Tensor& labels) {
  if (logits.size(1) == 1) {
    return torch::nn::functional::binary_cross_entropy_with_logits(
        logits.squeeze(1), labels.to(logits.scalar_type()),
        torch::nn::functional::BinaryCrossEntropyWithLogitsFuncOptions().reduction(torch::kSum));
  }
  return torch::nn::functional::cross_entropy(logits, labels,
                                              torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
}

int64_t CountCorrect(const torch::Tensor& logits, const torch::Tensor& labels) {
  torch::Tensor predicted = logits.size(1) == 1 ? (logits.squeeze(1) > 0).to(torch::kLong) : logits.argmax(1);
  return predicted.eq(labels).sum().item<int64_t>();
}

std::vector<torch::Tensor> CloneAll(const std::vector<torch::Tensor>& tensors) {
  std::vector<torch::Tensor> out;
  out.reserve(tensors.size());
  for (const auto& t : tensors) out.push_back(t.detach().clone());
  return out;
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
      BatchTensors t = ToTensors(data::MakeClassificationBatch(data, indices, model->config().padding_idx));
      torch::Tensor logits = model->forward(t.tokens, t.lengths);
      eval.loss_sum += SummedLoss(logits, t.labels).item<double>();
      eval.correct += CountCorrect(logits, t.labels);
      eval.examples += static_cast<int64_t>(indices.size());
    }
    model->train(was_training);
    return absl::OkStatus();
  }));
  return eval;
}

struct ClassifierTrainer::Impl {
  Impl(comm::Communicator& c, model::Classifier m, ClassifierTrainConfig cfg, ClassifierSplits d, nlohmann::json meta)
      : comm(c), model(std::move(m)), config(std::move(cfg)), data(d), checkpoint_meta(std::move(meta)) {}

  absl::Status Setup();
  absl::Status TrainEpoch(int64_t epoch, ClassifierResult& result);
  absl::Status EndOfEpoch(int64_t epoch, ClassifierResult& result);
  absl::Status Test(ClassifierResult& result);

  comm::Communicator& comm;
  model::Classifier model;
  ClassifierTrainConfig config;
  ClassifierSplits data;
  nlohmann::json checkpoint_meta;
  MetricsLog metrics;
  std::vector<torch::Tensor> params;
  std::unique_ptr<comm::GradientReducer> reducer;
  std::unique_ptr<torch::optim::Adam> optimizer;
  std::optional<data::ClassificationBatcher> batcher;
  std::vector<torch::Tensor> best_params;  // every rank, same values (decision is shared)
  double best_accuracy = -1.0, best_loss = 0.0;
  int64_t total_steps = 0;
};

ClassifierTrainer::ClassifierTrainer(comm::Communicator& comm, model::Classifier model, ClassifierTrainConfig config,
                                     ClassifierSplits data, nlohmann::json checkpoint_meta)
    : impl_(std::make_unique<Impl>(comm, std::move(model), std::move(config), data, std::move(checkpoint_meta))) {}

ClassifierTrainer::~ClassifierTrainer() = default;

absl::Status ClassifierTrainer::Impl::Setup() {
  RETURN_IF_ERROR(config.Validate());
  if (data.train == nullptr || (comm.is_root() && data.valid == nullptr)) {
    return absl::InvalidArgumentError("training needs a train split and, on rank 0, a valid split");
  }
  if (comm.is_root() && data.valid->labels.empty()) return absl::InvalidArgumentError("the valid split is empty");
  if (comm.is_root() && !config.run_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(config.run_dir, ec);
    if (ec) return absl::PermissionDeniedError(absl::StrCat("cannot create --run_dir ", config.run_dir, ": ", ec.message()));
    ASSIGN_OR_RETURN(metrics, MetricsLog::Open(config.run_dir + "/metrics.jsonl"));
  }
  data::ClassificationBatcherOptions options;
  options.global_batch = config.batch_size;
  options.seed = config.seed;
  options.shuffle = true;
  options.bucket_by_length = config.bucket_by_length;
  options.bucket_batches = config.bucket_batches;
  options.drop_last = true;  // every rank runs the same steps, every slice is full
  options.pad_id = model->config().padding_idx;
  ASSIGN_OR_RETURN(data::ClassificationBatcher b,
                   data::ClassificationBatcher::Create(*data.train, options, comm.rank(), comm.world_size()));
  batcher.emplace(std::move(b));
  params = model->parameters();
  return common::GuardTorch("cannot set up training", [&] {
    // Replicas start from rank 0's parameters, not from equal seeds.
    std::vector<torch::Tensor> state = params;
    for (auto& buffer : model->buffers()) state.push_back(buffer);
    RETURN_IF_ERROR(comm::BroadcastParameters(comm, state, 0));
    reducer = std::make_unique<comm::GradientReducer>(comm, params, config.bucket_bytes);
    optimizer = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(config.lr));
    return absl::OkStatus();
  });
}

absl::StatusOr<ClassifierResult> ClassifierTrainer::Run() {
  Impl& m = *impl_;
  RETURN_IF_ERROR(m.Setup());
  ClassifierResult result;
  for (int64_t epoch = 1; epoch <= m.config.max_epochs; ++epoch) {
    RETURN_IF_ERROR(m.TrainEpoch(epoch, result));
    result.epochs = epoch;
    RETURN_IF_ERROR(m.EndOfEpoch(epoch, result));
    if (m.config.max_steps > 0 && m.total_steps >= m.config.max_steps) break;
  }
  RETURN_IF_ERROR(common::GuardTorch("cannot restore the best parameters", [&] {
    torch::NoGradGuard no_grad;
    for (size_t i = 0; i < m.params.size(); ++i) m.params[i].copy_(m.best_params[i]);
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(m.Test(result));
  result.steps = m.total_steps;
  return result;
}

absl::Status ClassifierTrainer::Impl::TrainEpoch(int64_t epoch, ClassifierResult& result) {
  batcher->StartEpoch(epoch);
  const int64_t batches = batcher->num_batches();
  const int64_t log_every = config.log_every > 0 ? config.log_every : std::max<int64_t>(batches / 10, 1);
  model->train();
  data::ClassificationBatch batch;
  double epoch_loss = 0.0, interval_loss = 0.0, interval_ms = 0.0, interval_norm = 0.0, timed_ms = 0.0;
  int64_t epoch_correct = 0, epoch_examples = 0, interval_correct = 0, interval_examples = 0, interval_steps = 0;
  int64_t timed_examples = 0;
  common::Stopwatch epoch_clock;
  torch::Tensor sums = torch::zeros({2}, torch::kDouble);  // {loss sum, correct} all-reduced per step

  RETURN_IF_ERROR(common::GuardTorch("training step failed", [&]() -> absl::Status {
    for (int64_t i = 0; i < batches; ++i) {
      if (config.max_steps > 0 && total_steps >= config.max_steps) break;
      MaybeInjectFault(comm.rank(), config.fault_rank, config.fault_step, total_steps + 1);
      common::Stopwatch step_clock;
      batcher->FillBatch(i, batch);
      BatchTensors t = ToTensors(batch);
      optimizer->zero_grad();
      torch::Tensor logits = model->forward(t.tokens, t.lengths);
      torch::Tensor loss_sum = SummedLoss(logits, t.labels);
      (loss_sum / static_cast<double>(batch.batch)).backward();  // Note [classifier loss scale]
      RETURN_IF_ERROR(reducer->AllReduceGradients());
      // Every rank clips the same averaged gradients, so replicas take the same step.
      const double grad_norm = ClipGradients(params, /*clip_value=*/0.0, config.clip_norm);
      optimizer->step();
      ++total_steps;
      if (config.check_replicas_every > 0 && total_steps % config.check_replicas_every == 0) {
        RETURN_IF_ERROR(comm::CheckReplicasAgree(comm, params));
      }
      sums[0] = loss_sum.item<double>();
      sums[1] = static_cast<double>(CountCorrect(logits, t.labels));
      RETURN_IF_ERROR(comm.AllReduce(sums, comm::ReduceOp::kSum));
      const double global_loss = sums[0].item<double>();
      const int64_t global_correct = static_cast<int64_t>(std::llround(sums[1].item<double>()));
      const int64_t global_examples = config.batch_size;
      result.step_losses.push_back(global_loss / static_cast<double>(global_examples));
      result.step_grad_norms.push_back(grad_norm);
      const double ms = step_clock.ElapsedMs();
      epoch_loss += global_loss;
      epoch_correct += global_correct;
      epoch_examples += global_examples;
      if (i >= config.warmup_steps) {
        timed_ms += ms;
        timed_examples += global_examples;
      }
      interval_loss += global_loss;
      interval_correct += global_correct;
      interval_examples += global_examples;
      interval_ms += ms;
      interval_norm += grad_norm;
      ++interval_steps;
      if ((i + 1) % log_every == 0 || i + 1 == batches) {
        const double loss = interval_loss / static_cast<double>(interval_examples);
        const double acc = static_cast<double>(interval_correct) / static_cast<double>(interval_examples);
        const double ms_per_step = interval_ms / static_cast<double>(interval_steps);
        const double ex_s = static_cast<double>(interval_examples) / (interval_ms / 1000.0);
        const double eta_s = ms_per_step * static_cast<double>(batches - i - 1) / 1000.0;
        common::Log0(absl::StrFormat(
            "| epoch %3d | %5d/%5d batches | lr %.2e | loss %6.4f | acc %6.2f%% | grad norm %6.2f | "
            "ms/batch %7.1f | ex/s %7.0f | eta %4.0fs |",
            epoch, i + 1, batches, config.lr, loss, 100.0 * acc, interval_norm / interval_steps, ms_per_step, ex_s,
            eta_s));
        metrics.Write({{"type", "progress"}, {"epoch", epoch}, {"step", i + 1}, {"steps", batches},
                       {"global_step", total_steps}, {"lr", config.lr}, {"loss", loss}, {"accuracy", acc},
                       {"grad_norm", interval_norm / interval_steps}, {"ms_per_step", ms_per_step},
                       {"examples_per_s", ex_s}, {"world_size", comm.world_size()}});
        interval_loss = interval_ms = interval_norm = 0.0;
        interval_correct = interval_examples = interval_steps = 0;
      }
    }
    return absl::OkStatus();
  }));
  // Every rank ran the same steps; the slowest rank sets the pace.
  ASSIGN_OR_RETURN(const double slowest_ms, comm::AllReduceScalar(comm, timed_ms, comm::ReduceOp::kMax));
  result.train_examples_per_s = slowest_ms > 0 ? static_cast<double>(timed_examples) / (slowest_ms / 1000.0) : 0.0;
  result.last_epoch_seconds = epoch_clock.ElapsedMs() / 1000.0;
  const double train_loss = epoch_examples > 0 ? epoch_loss / static_cast<double>(epoch_examples) : 0.0;
  const double train_acc = epoch_examples > 0 ? static_cast<double>(epoch_correct) / epoch_examples : 0.0;
  common::Log0(absl::StrFormat("| epoch %3d | train loss %6.4f | train acc %6.2f%% | epoch time %6.1fs | ex/s %7.0f |",
                               epoch, train_loss, 100.0 * train_acc, result.last_epoch_seconds,
                               result.train_examples_per_s));
  metrics.Write({{"type", "train_epoch"}, {"epoch", epoch}, {"train_loss", train_loss}, {"train_accuracy", train_acc},
                 {"epoch_s", result.last_epoch_seconds}, {"examples_per_s", result.train_examples_per_s}});
  return absl::OkStatus();
}

absl::Status ClassifierTrainer::Impl::EndOfEpoch(int64_t epoch, ClassifierResult& result) {
  // decision = {valid loss, valid accuracy, 1 if best so far}
  std::vector<double> decision(3, 0.0);
  if (comm.is_root()) {
    ASSIGN_OR_RETURN(ClassificationEval valid, EvaluateClassifier(model, *data.valid, config.eval_batch_size));
    const bool best = valid.accuracy() > best_accuracy || (valid.accuracy() == best_accuracy && valid.loss() < best_loss);
    decision = {valid.loss(), valid.accuracy(), best ? 1.0 : 0.0};
  }
  RETURN_IF_ERROR(comm::BroadcastValues(comm, decision, 0));
  const bool best = decision[2] > 0.5;
  result.last_valid_accuracy = decision[1];
  if (best) {
    best_accuracy = decision[1];
    best_loss = decision[0];
    result.best_valid_accuracy = decision[1];
    result.best_valid_loss = decision[0];
    result.best_epoch = epoch;
    RETURN_IF_ERROR(common::GuardTorch("cannot keep the best parameters", [&] {
      best_params = CloneAll(params);
      return absl::OkStatus();
    }));
  }
  common::Log0(absl::StrFormat("| end of epoch %3d | valid loss %6.4f | valid acc %6.2f%% |%s", epoch, decision[0],
                               100.0 * decision[1], best ? " best so far |" : ""));
  metrics.Write({{"type", "valid"}, {"epoch", epoch}, {"valid_loss", decision[0]}, {"valid_accuracy", decision[1]},
                 {"best", best}});
  if (comm.is_root() && !config.run_dir.empty()) {
    nlohmann::json meta = checkpoint_meta;
    meta["epoch"] = epoch;
    meta["step"] = total_steps;
    meta["valid_accuracy"] = decision[1];
    meta["valid_loss"] = decision[0];
    RETURN_IF_ERROR(SaveCheckpoint(config.run_dir + "/model.pt", meta, *model, optimizer.get()));
    if (best) RETURN_IF_ERROR(SaveCheckpoint(config.run_dir + "/best.pt", meta, *model, nullptr));
  }
  return comm.Barrier();
}

absl::Status ClassifierTrainer::Impl::Test(ClassifierResult& result) {
  // Every rank takes part in the broadcast, whether or not rank 0 has a test split.
  std::vector<double> shared = {-1.0, 0.0, 0.0};  // {has test, loss, accuracy}
  if (comm.is_root() && data.test != nullptr && !data.test->labels.empty()) {
    ASSIGN_OR_RETURN(ClassificationEval test, EvaluateClassifier(model, *data.test, config.eval_batch_size));
    shared = {1.0, test.loss(), test.accuracy()};
  }
  RETURN_IF_ERROR(comm::BroadcastValues(comm, shared, 0));
  if (shared[0] < 0) return absl::OkStatus();
  result.test_loss = shared[1];
  result.test_accuracy = shared[2];
  common::Log0(absl::StrFormat("| end of training | best epoch %d | test loss %6.4f | test acc %6.2f%% |",
                               result.best_epoch, result.test_loss, 100.0 * result.test_accuracy));
  metrics.Write({{"type", "test"}, {"best_epoch", result.best_epoch}, {"test_loss", result.test_loss},
                 {"test_accuracy", result.test_accuracy}});
  return absl::OkStatus();
}

}  // namespace distrnn::train
