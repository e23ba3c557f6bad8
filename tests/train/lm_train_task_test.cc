// LmTrainTask under the Trainer: truncated BPTT against a hand-written reference, the
// loss conventions, sharding over ranks and micro-batches (dropout keyed by global
// column), learning, and the epoch lr schedules decided on rank 0.
#include "train/lm_train_task.h"

#include <cmath>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "model/language_model.h"
#include "support/temp_dir.h"
#include "train/checkpoint.h"
#include "train/checkpoint_dir.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace distrnn::train {
namespace {

using fixtures::CloneParams;
using fixtures::MaxAbsDiff;

std::unique_ptr<LmTrainTask> MakeTask(model::LanguageModel model, LmTaskConfig config, LmSplits splits,
                                      Shard shard = {}) {
  auto task = LmTrainTask::Create(model, config, splits, shard, fixtures::LmMeta("ptb", model->config()));
  EXPECT_TRUE(task.ok()) << task.status();
  return task.ok() ? std::move(*task) : nullptr;
}

// ---- evaluation and the loss convention ----------------------------------------------

TEST(EvaluateLmTest, PerplexityMatchesHandComputation) {
  torch::manual_seed(1);
  model::LanguageModel model(fixtures::TinyLm(9, 6, 2, 0.0));
  std::vector<int64_t> tokens;
  for (int i = 0; i < 23; ++i) tokens.push_back((i * 5 + 3) % 9);
  // batch 2 -> columns of 11 tokens: [0, 11) and [11, 22); token 22 dropped.
  // Windows of 4 steps: 4 + 4 + 2 (the partial window is kept in evaluation).
  auto sum = EvaluateLm(model, tokens, /*batch=*/2, /*num_steps=*/4);
  ASSERT_TRUE(sum.ok()) << sum.status();
  EXPECT_EQ(sum->tokens, 20);
  EXPECT_TRUE(model->is_training());  // restored after the pass

  // By hand: each column as one sequence from a zero state, which is what carrying the
  // state across windows must amount to.
  torch::NoGradGuard no_grad;
  model->eval();
  double nll = 0.0;
  for (int column = 0; column < 2; ++column) {
    torch::Tensor seq = torch::tensor(std::vector<int64_t>(tokens.begin() + column * 11,
                                                           tokens.begin() + column * 11 + 11));
    auto [logits, state] = model->forward(seq.slice(0, 0, 10).unsqueeze(1));
    torch::Tensor log_probs = torch::log_softmax(logits.squeeze(1).to(torch::kDouble), 1);
    for (int t = 0; t < 10; ++t) nll -= log_probs[t][seq[t + 1].item<int64_t>()].item<double>();
  }
  EXPECT_NEAR(sum->nll, nll, 1e-3);
  EXPECT_NEAR(sum->perplexity(), std::exp(nll / 20.0), 1e-3);
}

TEST(LmLossTest, ParsesReductionNames) {
  EXPECT_EQ(*ParseLossReduction("sum_steps_mean_batch"), LossReduction::kSumStepsMeanBatch);
  EXPECT_EQ(*ParseLossReduction("mean_tokens"), LossReduction::kMeanTokens);
  EXPECT_EQ(ParseLossReduction("mean").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_STREQ(LossReductionName(LossReduction::kMeanTokens), "mean_tokens");
  EXPECT_STREQ(LossReductionName(LossReduction::kSumStepsMeanBatch), "sum_steps_mean_batch");
}

// Zaremba's convention (sum over the T steps, mean over the batch) is T times the
// per-token mean: the normalizer is the batch, not the token count, and the gradient the
// Trainer differentiates (loss_sum / normalizer) is exactly num_steps times larger.
TEST(LmLossTest, SumOverStepsGradientIsNumStepsTimesTokenMean) {
  torch::manual_seed(3);
  model::LanguageModel model(fixtures::TinyLm(11, 8, 1, 0.0));
  const std::vector<int64_t> train = fixtures::RandomTokens(3 * 30, 11, 5), valid = fixtures::RandomTokens(40, 11, 6);
  const int64_t steps = 7;
  auto grads_for = [&](LossReduction reduction, MicroBatchLoss& loss) {
    LmTaskConfig config;
    config.batch_size = 3;
    config.num_steps = steps;
    config.loss_reduction = reduction;
    auto task = MakeTask(model, config, {&train, &valid, nullptr});
    EXPECT_TRUE(task->StartEpoch(1, 0).ok());
    model->zero_grad();
    auto forward = task->Forward(0, 0, 0);
    EXPECT_TRUE(forward.ok()) << forward.status();
    loss = *forward;
    (loss.loss_sum / loss.normalizer).backward();
    std::vector<torch::Tensor> grads;
    for (auto& p : model->parameters()) grads.push_back(p.grad().clone());
    return grads;
  };
  MicroBatchLoss summed_loss, mean_loss;
  auto summed = grads_for(LossReduction::kSumStepsMeanBatch, summed_loss);
  auto mean = grads_for(LossReduction::kMeanTokens, mean_loss);
  EXPECT_EQ(summed_loss.normalizer, 3.0);
  EXPECT_EQ(mean_loss.normalizer, 3.0 * steps);
  EXPECT_EQ(summed_loss.units, 3 * steps);
  EXPECT_EQ(summed_loss.loss_sum.item<double>(), mean_loss.loss_sum.item<double>());
  ASSERT_EQ(summed.size(), mean.size());
  for (size_t i = 0; i < summed.size(); ++i) {
    EXPECT_GT(summed[i].abs().max().item<double>(), 0.0) << "parameter " << i;
    EXPECT_TRUE(torch::allclose(summed[i], mean[i] * steps, 1e-5, 1e-8)) << "parameter " << i;
  }
}

// ---- truncated BPTT against a hand-written reference ---------------------------------

struct ReferenceRun {
  std::vector<torch::Tensor> params;
  std::vector<double> losses;  // per token, one per step
  model::RecurrentState state;  // carried after the last window
  int value_clips = 0, norm_clips = 0;
};

struct ReferenceSpec {
  int64_t batch = 4, num_steps = 5, epochs = 2;
  std::vector<double> epoch_lrs;
  LossReduction reduction = LossReduction::kSumStepsMeanBatch;
  double clip_value = 0.0, clip_norm = 0.0;
  bool carry_state = true;
};

// The PyTorch word_language_model loop written out: batchify into G columns, windows of
// T rows, the state carried (detached) from window to window and zeroed at an epoch
// start, SGD with clipping by value then by global norm.
ReferenceRun RunReference(const model::LanguageModelConfig& config, const std::vector<torch::Tensor>& init,
                          const std::vector<int64_t>& tokens, const ReferenceSpec& spec) {
  model::LanguageModel model(config);
  {
    torch::NoGradGuard no_grad;
    auto params = model->parameters();
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(init[i]);
  }
  model->train();
  const int64_t G = spec.batch, T = spec.num_steps;
  const int64_t column = static_cast<int64_t>(tokens.size()) / G;
  const int64_t windows = (column - 1) / T;
  auto rows = [&](int64_t first) {  // [T, G]: row t holds token first + t of every column
    torch::Tensor out = torch::empty({T, G}, torch::kLong);
    for (int64_t t = 0; t < T; ++t) {
      for (int64_t j = 0; j < G; ++j) out[t][j] = tokens[j * column + first + t];
    }
    return out;
  };
  ReferenceRun run;
  auto params = model->parameters();
  for (int64_t epoch = 0; epoch < spec.epochs; ++epoch) {
    model::RecurrentState state;  // zeros
    for (int64_t w = 0; w < windows; ++w) {
      for (auto& p : params) {
        if (p.grad().defined()) p.grad().zero_();
      }
      auto [logits, next] = model->forward(rows(w * T), spec.carry_state ? state : model::RecurrentState{});
      state = next.Detached();
      torch::Tensor nll = torch::nn::functional::cross_entropy(
          logits.reshape({-1, config.vocab_size}), rows(w * T + 1).reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
      run.losses.push_back(nll.item<double>() / static_cast<double>(G * T));
      const double divisor = spec.reduction == LossReduction::kSumStepsMeanBatch ? G : G * T;
      (nll / divisor).backward();
      torch::NoGradGuard no_grad;
      if (spec.clip_value > 0) {
        for (auto& p : params) {
          if (p.grad().abs().max().item<double>() > spec.clip_value) ++run.value_clips;
          p.grad().clamp_(-spec.clip_value, spec.clip_value);
        }
      }
      double total = 0.0;
      for (auto& p : params) total += p.grad().to(torch::kDouble).pow(2).sum().item<double>();
      total = std::sqrt(total);
      if (spec.clip_norm > 0 && total > spec.clip_norm) {
        ++run.norm_clips;
        for (auto& p : params) p.grad().mul_(spec.clip_norm / (total + 1e-6));
      }
      for (auto& p : params) p.sub_(p.grad() * spec.epoch_lrs[epoch]);
    }
    run.state = state;
  }
  run.params = CloneParams(*model);
  return run;
}

void ExpectTrainerMatchesReference(LossReduction reduction, double clip_value, double clip_norm,
                                   bool fused_loss = false, bool sparse_embedding = true) {
  SCOPED_TRACE(LossReductionName(reduction));
  SCOPED_TRACE(sparse_embedding ? "embedding backward: rows" : "embedding backward: dense table");
  SCOPED_TRACE(fused_loss ? "loss chunked (--fused_loss)" : "loss over all rows at once");
  const int64_t vocab = 10;
  // 4 columns of 16 tokens (3 left over): 3 windows of 5 per epoch.
  const std::vector<int64_t> train = fixtures::RandomTokens(4 * 16 + 3, vocab, 21);
  const std::vector<int64_t> valid = fixtures::RandomTokens(30, vocab, 22);
  const model::LanguageModelConfig config = fixtures::TinyLm(vocab, 8, 2, 0.0);
  torch::manual_seed(5);
  model::LanguageModel model(config);
  const std::vector<torch::Tensor> init = CloneParams(*model);

  LmTaskConfig task_config;
  task_config.batch_size = 4;
  task_config.num_steps = 5;
  task_config.eval_batch_size = 2;
  task_config.loss_reduction = reduction;
  task_config.fused_loss = fused_loss;
  task_config.fused_loss_chunk_rows = 8;
  auto task = MakeTask(model, task_config, {&train, &valid, nullptr});
  ASSERT_NE(task, nullptr);
  ASSERT_EQ(task->StepsPerEpoch(), 3);
  distrnn::testing::TempDir dir;
  TrainerConfig tc = fixtures::QuietConfig(4);
  tc.max_epochs = 2;
  tc.lr = {LrScheduleKind::kZaremba, 0.7, 0.5, 1};  // epoch 1: 0.7, epoch 2: 0.35
  tc.clip_value = clip_value;
  tc.clip_norm = clip_norm;
  tc.sparse_embedding_grad = sparse_embedding;
  tc.run_dir = dir.Join("run");
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_EQ(result->steps, 6);
  // The embedding's backward took the path asked for, and its gradient stayed dense.
  EXPECT_EQ(model->embedding()->options.sparse(), sparse_embedding);
  ASSERT_TRUE(model->embedding()->weight.grad().defined());
  EXPECT_FALSE(model->embedding()->weight.grad().is_sparse());
  EXPECT_EQ(result->epoch_lrs, (std::vector<double>{0.7, 0.35}));

  ReferenceSpec spec;
  spec.epoch_lrs = {0.7, 0.35};
  spec.reduction = reduction;
  spec.clip_value = clip_value;
  spec.clip_norm = clip_norm;
  const ReferenceRun reference = RunReference(config, init, train, spec);
  // Both clipping branches were taken (and norm clipping not at every step), so they are
  // compared too.
  EXPECT_GT(reference.value_clips, 0);
  EXPECT_GT(reference.norm_clips, 0) << ::testing::PrintToString(result->step_grad_norms);
  EXPECT_LT(reference.norm_clips, 6) << ::testing::PrintToString(result->step_grad_norms);

  EXPECT_LT(MaxAbsDiff(CloneParams(*model), reference.params), 1e-6);
  ASSERT_EQ(result->step_losses.size(), reference.losses.size());
  for (size_t i = 0; i < reference.losses.size(); ++i) {
    EXPECT_NEAR(result->step_losses[i], reference.losses[i], 1e-5) << "step " << i;
  }
  // The comparison can fail: a loop that drops the carried state ends elsewhere.
  spec.carry_state = false;
  const ReferenceRun stateless = RunReference(config, init, train, spec);
  EXPECT_GT(MaxAbsDiff(CloneParams(*model), stateless.params), 1e-4);

  // The last checkpoint (end of epoch 2) holds the state carried out of the last window
  // for all G columns, [layers, G, hidden].
  auto latest = CheckpointDirectory(tc.run_dir, 2).Latest();
  ASSERT_TRUE(latest.ok() && latest->has_value()) << latest.status();
  auto reader = CheckpointReader::FromFile(**latest);
  ASSERT_TRUE(reader.ok()) << reader.status();
  auto h = reader->Tensor("lm_state_h");
  auto c = reader->Tensor("lm_state_c");
  ASSERT_TRUE(h.ok() && c.ok());
  EXPECT_EQ(h->sizes(), (std::vector<int64_t>{2, 4, 8}));
  EXPECT_EQ(c->sizes(), (std::vector<int64_t>{2, 4, 8}));
  EXPECT_GT(h->abs().max().item<double>(), 1e-3);
  EXPECT_LT(MaxAbsDiff({*h, *c}, {reference.state.h, reference.state.c}), 1e-6);
}

TEST(LmTrainerTest, MatchesHandWrittenTruncatedBpttWithClipping) {
  ExpectTrainerMatchesReference(LossReduction::kSumStepsMeanBatch, 0.1, 0.28);
}

TEST(LmTrainerTest, MatchesHandWrittenTruncatedBpttWithMeanTokenLoss) {
  ExpectTrainerMatchesReference(LossReduction::kMeanTokens, 0.02, 0.055);
}

TEST(LmTrainerTest, MatchesHandWrittenTruncatedBpttWithADenseEmbeddingBackward) {
  ExpectTrainerMatchesReference(LossReduction::kSumStepsMeanBatch, 0.1, 0.28, /*fused_loss=*/false,
                                /*sparse_embedding=*/false);
}

// 20 rows per window, chunks of 8, 8 and 4 rows.
TEST(LmTrainerTest, MatchesHandWrittenTruncatedBpttWithTheChunkedLoss) {
  ExpectTrainerMatchesReference(LossReduction::kSumStepsMeanBatch, 0.1, 0.28, /*fused_loss=*/true);
}

// ---- sharding: ranks and micro-batches ------------------------------------------------

// Two ranks built in one process see exactly the columns (and dropout masks) of one rank
// holding the whole batch.
TEST(LmTrainTaskTest, ShardsOfTwoRanksSumToTheWholeBatch) {
  const std::vector<int64_t> train = fixtures::RandomTokens(8 * 12, 10, 31), valid = fixtures::RandomTokens(30, 10, 32);
  torch::manual_seed(2);
  model::LanguageModelConfig lm = fixtures::TinyLm(10, 8, 2, 0.3);
  lm.init_scale = 1.0;  // far from uniform outputs, so the masks show in the loss
  model::LanguageModel model(lm);
  LmTaskConfig config;
  config.batch_size = 8;
  config.num_steps = 5;
  config.seed = 77;
  auto whole = MakeTask(model, config, {&train, &valid, nullptr}, {0, 1, 1});
  auto rank0 = MakeTask(model, config, {&train, &valid, nullptr}, {0, 2, 1});
  auto rank1 = MakeTask(model, config, {&train, nullptr, nullptr}, {1, 2, 1});
  auto quarter = MakeTask(model, config, {&train, nullptr, nullptr}, {1, 2, 2});  // rank 1 of 2, 2 micro-batches
  config.seed = 78;
  auto other_masks = MakeTask(model, config, {&train, &valid, nullptr}, {0, 1, 1});
  ASSERT_TRUE(whole && rank0 && rank1 && quarter && other_masks);
  torch::NoGradGuard no_grad;
  for (auto* task : {whole.get(), rank0.get(), rank1.get(), quarter.get(), other_masks.get()}) {
    ASSERT_TRUE(task->StartEpoch(1, 0).ok());
  }
  for (int64_t step = 0; step < 2; ++step) {
    auto w = whole->Forward(step, 10 + step, 0), a = rank0->Forward(step, 10 + step, 0),
         b = rank1->Forward(step, 10 + step, 0), q0 = quarter->Forward(step, 10 + step, 0),
         q1 = quarter->Forward(step, 10 + step, 1), o = other_masks->Forward(step, 10 + step, 0);
    ASSERT_TRUE(w.ok() && a.ok() && b.ok() && q0.ok() && q1.ok() && o.ok());
    EXPECT_EQ(a->units + b->units, w->units);
    EXPECT_EQ(a->normalizer, 4.0);
    EXPECT_EQ(q0->normalizer, 2.0);
    const double sum = w->loss_sum.item<double>();
    EXPECT_NEAR(a->loss_sum.item<double>() + b->loss_sum.item<double>(), sum, 1e-5 * sum);
    EXPECT_NEAR(q0->loss_sum.item<double>() + q1->loss_sum.item<double>(), b->loss_sum.item<double>(), 1e-5 * sum);
    // Another dropout seed draws other masks: the comparisons above are not vacuous.
    EXPECT_GT(std::abs(o->loss_sum.item<double>() - sum), 1e-3 * sum);
  }
}

struct LmRun {
  std::vector<torch::Tensor> params;
  torch::Tensor state_h, state_c;  // from the last checkpoint
};

LmRun RunMicroBatches(int micro_batches, uint64_t dropout_seed, const std::vector<int64_t>& train,
                      const std::vector<int64_t>& valid) {
  torch::manual_seed(9);
  model::LanguageModel model(fixtures::TinyLm(10, 8, 2, 0.3));
  LmTaskConfig config;
  config.batch_size = 8;
  config.num_steps = 5;
  config.eval_batch_size = 2;
  config.seed = dropout_seed;
  auto task = MakeTask(model, config, {&train, &valid, nullptr}, {0, 1, micro_batches});
  distrnn::testing::TempDir dir;
  TrainerConfig tc = fixtures::QuietConfig(8);
  tc.micro_batches = micro_batches;
  tc.max_epochs = 3;
  tc.max_steps = 7;  // ends one step into epoch 3, with a carried state
  tc.lr = {LrScheduleKind::kConstant, 1.0, 1.0, 0};
  tc.clip_norm = 2.0;
  tc.run_dir = dir.Join("run");
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  EXPECT_TRUE(result.ok()) << result.status();
  LmRun run;
  run.params = CloneParams(*model);
  auto latest = CheckpointDirectory(tc.run_dir, 2).Latest();
  EXPECT_TRUE(latest.ok() && latest->has_value());
  auto reader = CheckpointReader::FromFile(**latest);
  EXPECT_TRUE(reader.ok()) << reader.status();
  run.state_h = *reader->Tensor("lm_state_h");
  run.state_c = *reader->Tensor("lm_state_c");
  return run;
}

// Gradient accumulation is invisible: k micro-batches of G/k columns take the steps one
// batch of G takes, dropout (masks keyed by global column) included.
TEST(LmTrainerTest, MicroBatchesFollowTheSameTrajectoryWithDropout) {
  // 8 columns of 16 tokens: 3 windows of 5 per epoch.
  const std::vector<int64_t> train = fixtures::RandomTokens(8 * 16, 10, 41), valid = fixtures::RandomTokens(30, 10, 42);
  const LmRun one = RunMicroBatches(1, 5, train, valid);
  for (int k : {2, 4}) {
    const LmRun many = RunMicroBatches(k, 5, train, valid);
    EXPECT_LT(MaxAbsDiff(many.params, one.params), 1e-5) << k << " micro-batches";
    EXPECT_LT(MaxAbsDiff({many.state_h, many.state_c}, {one.state_h, one.state_c}), 1e-5) << k << " micro-batches";
  }
  EXPECT_GT(one.state_h.abs().max().item<double>(), 1e-3);
  // Dropout is on: other masks give another trajectory.
  const LmRun other_masks = RunMicroBatches(1, 6, train, valid);
  EXPECT_GT(MaxAbsDiff(other_masks.params, one.params), 1e-4);
}

// ---- learning and rank-0 decisions ----------------------------------------------------

TEST(LmTrainerTest, TinyLstmLearnsTinyCorpusWithZarembaSchedule) {
  const int64_t period = 8;
  const std::vector<int64_t> train = fixtures::CyclicTokens(2000, period), valid = fixtures::CyclicTokens(400, period);
  torch::manual_seed(7);
  model::LanguageModel model(fixtures::TinyLm(period, 16, 1, 0.0));
  const double untrained_ppl = EvaluateLm(model, valid, 4, 8)->perplexity();
  LmTaskConfig config;
  config.batch_size = 4;
  config.num_steps = 8;
  config.eval_batch_size = 4;
  auto task = MakeTask(model, config, {&train, &valid, &valid});
  TrainerConfig tc = fixtures::QuietConfig(4);
  tc.max_epochs = 3;
  tc.lr = {LrScheduleKind::kZaremba, 1.0, 0.5, 2};
  tc.clip_norm = 5.0;
  tc.evaluate_test = true;
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  // An untrained model is near uniform (ppl ~8); the successor is deterministic.
  EXPECT_GT(untrained_ppl, 6.0);
  EXPECT_LT(result->last_valid.at("valid_ppl"), 1.3);
  EXPECT_NEAR(result->test.at("test_ppl"), result->last_valid.at("valid_ppl"), 1e-9);
  EXPECT_EQ(result->epochs, 3);
  EXPECT_EQ(result->steps, 3 * ((500 - 1) / 8));
  EXPECT_EQ(result->epoch_lrs, (std::vector<double>{1.0, 1.0, 0.5}));
  EXPECT_LT(result->step_losses.back(), result->step_losses.front() / 10);
  EXPECT_EQ(result->best_epoch, 3);
}

TEST(LmTrainerTest, MaxStepsEndsTheRunInsideAnEpoch) {
  const std::vector<int64_t> train = fixtures::CyclicTokens(2000, 8), valid = fixtures::CyclicTokens(400, 8);
  torch::manual_seed(7);
  model::LanguageModel model(fixtures::TinyLm(8, 8, 1, 0.0));
  LmTaskConfig config;
  config.batch_size = 4;
  config.num_steps = 8;
  auto task = MakeTask(model, config, {&train, &valid, &valid});
  TrainerConfig tc = fixtures::QuietConfig(4);
  tc.max_epochs = 5;
  tc.max_steps = 10;
  tc.evaluate_test = true;
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->steps, 10);
  EXPECT_EQ(result->step_losses.size(), 10u);
  EXPECT_EQ(result->epochs, 0);  // epoch 1 (62 steps) did not finish
  EXPECT_EQ(result->epoch_lrs.size(), 1u);
  EXPECT_GT(result->last_valid.at("valid_ppl"), 1.0);
  EXPECT_GT(result->test.at("test_ppl"), 1.0);
}

// lr 1e-30 leaves every parameter bit for bit where it was, so the valid loss never
// improves after epoch 1: the plateau schedule decays after epochs 2, 3, ... and not 1.
TEST(LmTrainerTest, PlateauScheduleDecaysAfterEpochsWithoutImprovement) {
  const std::vector<int64_t> train = fixtures::RandomTokens(4 * 11, 10, 51), valid = fixtures::RandomTokens(30, 10, 52);
  torch::manual_seed(4);
  model::LanguageModel model(fixtures::TinyLm(10, 8, 1, 0.0));
  const std::vector<torch::Tensor> init = CloneParams(*model);
  LmTaskConfig config;
  config.batch_size = 4;
  config.num_steps = 5;
  config.eval_batch_size = 2;
  auto task = MakeTask(model, config, {&train, &valid, nullptr});
  distrnn::testing::TempDir dir;
  TrainerConfig tc = fixtures::QuietConfig(4);
  tc.max_epochs = 4;
  tc.lr = {LrScheduleKind::kPlateau, 1e-30, 0.25, 0};
  tc.run_dir = dir.Join("run");
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, *task, tc).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(fixtures::AllEqual(CloneParams(*model), init));
  ASSERT_EQ(result->epoch_lrs.size(), 4u);
  EXPECT_DOUBLE_EQ(result->epoch_lrs[0], 1e-30);
  EXPECT_DOUBLE_EQ(result->epoch_lrs[1], 1e-30);
  EXPECT_DOUBLE_EQ(result->epoch_lrs[2], 0.25e-30);
  EXPECT_DOUBLE_EQ(result->epoch_lrs[3], 0.0625e-30);
  EXPECT_EQ(result->best_epoch, 1);  // equal is no improvement
  const auto valids = fixtures::ReadMetrics(tc.run_dir, "valid");
  ASSERT_EQ(valids.size(), 4u);
  EXPECT_DOUBLE_EQ(valids[3]["next_lr"].get<double>(), 0.015625e-30);
}

TEST(LmTrainTaskTest, RefusesMissingSplitsAndBadConfig) {
  torch::manual_seed(1);
  model::LanguageModel model(fixtures::TinyLm(10, 8, 1, 0.0));
  const std::vector<int64_t> train = fixtures::RandomTokens(100, 10, 1);
  LmTaskConfig config;
  config.batch_size = 4;
  config.num_steps = 5;
  auto no_valid = LmTrainTask::Create(model, config, {&train, nullptr, nullptr}, {}, {});
  EXPECT_EQ(no_valid.status().code(), absl::StatusCode::kInvalidArgument);
  // Ranks other than 0 need no valid split.
  EXPECT_TRUE(LmTrainTask::Create(model, config, {&train, nullptr, nullptr}, {1, 2, 1}, {}).ok());
  config.num_steps = 0;
  EXPECT_EQ(LmTrainTask::Create(model, config, {&train, &train, nullptr}, {}, {}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace distrnn::train
