// Data-parallel LM training (the one Trainer with an LmTrainTask) under mpiexec -n 2 and
// -n 3, against one process (comm::LocalCommunicator) with the same global batch G = 12:
//  - the same per-step losses and parameters (DESIGN.md invariant 1), with dropout > 0
//    (masks keyed by global step and global column, model/column_dropout.h) and without;
//  - identical replicas (invariant 2);
//  - any factorisation of G into ranks x micro-batches gives the same parameters;
//  - rank 0's decisions (plateau lr, best epoch) reach every rank (invariant 3);
//  - a run stopped after k steps and resumed (same world size, 1 -> N ranks, N -> 1)
//    continues the uninterrupted run (invariant 4).
// Every rank seeds its model differently: only rank 0's broadcast makes the replicas equal.
// Every collective (training, ReplicasAgree, SameOnEveryRank) runs on every rank before
// any assertion.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "absl/strings/match.h"
#include "comm/local_communicator.h"
#include "comm/parameter_sync.h"
#include "model/language_model.h"
#include "mpi/equivalence.h"
#include "mpi/mpi_test_env.h"
#include "support/train_fixtures.h"
#include "train/lm_train_task.h"
#include "train/trainer.h"

namespace distrnn::train {
namespace {

constexpr int64_t kVocab = 17;
constexpr int64_t kGlobalBatch = 12;  // 6 / 4 columns per rank on 2 / 3 ranks
constexpr int64_t kNumSteps = 5;
constexpr int64_t kStepsPerEpoch = 8;
constexpr uint64_t kDropoutSeed = 7;

// A learnable stream: mostly the successor of a small cycle, one token in 4 random.
// G columns of kStepsPerEpoch * T + 1 tokens (plus a dropped tail): kStepsPerEpoch windows.
const std::vector<int64_t>& TrainTokens() {
  static const std::vector<int64_t> tokens =
      testing::SuccessorTokens(kGlobalBatch * (kStepsPerEpoch * kNumSteps + 1) + 7, 1, kVocab, 4);
  return tokens;
}
const std::vector<int64_t>& ValidTokens() {
  static const std::vector<int64_t> tokens = testing::SuccessorTokens(240, 2, kVocab, 4);
  return tokens;
}

// 2-layer LSTM; dropout on the embedding, between the layers and on the output.
model::LanguageModelConfig ModelConfig(double dropout, int64_t vocab = kVocab) {
  model::LanguageModelConfig c = testing::TwoLayerLmConfig(vocab, model::CellType::kLstm, 12, 12, dropout);
  c.init_scale = 0.1;
  return c;
}

// 20 steps: epochs 1 and 2 (lr 1, then 0.5: the schedule crosses epoch ends) and 4 steps of 3.
TrainerConfig BaseConfig() {
  TrainerConfig c = testing::ZarembaTrainerConfig(kGlobalBatch, 3, 20);
  c.micro_batches = 1;
  c.optimizer = OptimizerKind::kSgd;
  c.check_replicas_every = 5;
  c.bucket_bytes = 4096;  // several buckets
  return c;
}

using LmRun = testing::TrainedModel;

// Collective on `comm`: builds the model from `init_seed` and this rank's task (valid
// data on rank 0 only), then trains.
LmRun TrainLm(comm::Communicator& comm, uint64_t init_seed, double dropout, const TrainerConfig& config,
              uint64_t dropout_seed = kDropoutSeed, int64_t vocab = kVocab) {
  LmRun run;
  torch::manual_seed(init_seed);
  run.model = model::LanguageModel(ModelConfig(dropout, vocab));
  LmTaskConfig task_config;
  task_config.batch_size = config.batch_size;
  task_config.num_steps = kNumSteps;
  task_config.eval_batch_size = 4;
  task_config.seed = dropout_seed;
  const LmSplits splits{&TrainTokens(), comm.is_root() ? &ValidTokens() : nullptr, nullptr};
  run.result = testing::RunTrainer(comm,
                                   LmTrainTask::Create(run.model, task_config, splits,
                                                       Shard{comm.rank(), comm.world_size(), config.micro_batches},
                                                       {{"task", "test_lm"}, {"dropout", dropout}}),
                                   config);
  return run;
}

double ValidLoss(const LmRun& run) {
  if (!run.result.ok() || !run.result->last_valid.count("valid_loss")) return std::nan("");
  return run.result->last_valid.at("valid_loss");
}

void ExpectMatchesOneProcess(double dropout) {
  comm::Communicator& world = testing::WorldComm();
  const TrainerConfig config = BaseConfig();
  LmRun distributed = TrainLm(world, 100 + world.rank(), dropout, config);
  auto agree = comm::ReplicasAgree(world, distributed.parameters());
  auto same_valid = testing::SameOnEveryRank(world, ValidLoss(distributed));
  // The reference: one process, global batch G, initialised like rank 0.
  comm::LocalCommunicator local;
  LmRun reference = TrainLm(local, 100, dropout, config);

  ASSERT_NO_FATAL_FAILURE(testing::ExpectTrainedAndAgreed(distributed.result.status(), reference.result.status(),
                                                          agree, same_valid));

  EXPECT_EQ(distributed.result->steps, 20);
  testing::ExpectSameSteps(distributed.result->step_losses, reference.result->step_losses, 20, "loss");
  testing::ExpectSameSteps(distributed.result->step_grad_norms, reference.result->step_grad_norms, 20, "grad norm");
  testing::ExpectSameParameters(distributed.parameters(), reference.parameters());
  testing::ExpectSameFigures(distributed.result->last_valid, reference.result->last_valid, "last valid");
  EXPECT_EQ(distributed.result->epoch_lrs, (std::vector<double>{1.0, 0.5, 0.25}));
  EXPECT_EQ(reference.result->epoch_lrs, (std::vector<double>{1.0, 0.5, 0.25}));
}

TEST(LmTrainingMpi, MatchesOneProcessWithDropout) {
  ExpectMatchesOneProcess(0.3);

  // Not vacuous: other masks (another dropout seed) move the parameters of one step far
  // beyond the 1e-5 tolerance, so ranks drawing masks of their own would fail above.
  comm::LocalCommunicator local;
  TrainerConfig one_step = BaseConfig();
  one_step.max_steps = 1;
  LmRun these = TrainLm(local, 100, 0.3, one_step), others = TrainLm(local, 100, 0.3, one_step, kDropoutSeed + 1);
  ASSERT_TRUE(these.result.ok()) << these.result.status();
  ASSERT_TRUE(others.result.ok()) << others.result.status();
  const std::vector<at::Tensor> a = these.parameters(), b = others.parameters();
  ASSERT_EQ(a.size(), b.size());
  double largest = 0.0;
  for (size_t i = 0; i < a.size(); ++i) largest = std::max(largest, (a[i] - b[i]).abs().max().item<double>());
  EXPECT_GT(largest, 1e-3);
}

TEST(LmTrainingMpi, MatchesOneProcessWithoutDropout) { ExpectMatchesOneProcess(0.0); }

// G = 12 as W ranks x 2 micro-batches, 1 process x 1, 1 process x 2W: every step sees
// the same columns (shard r*k + m of W*k), so the parameters agree (the "1x4, 2x2, 4x1"
// requirement for any world size). With dropout: the masks follow the global column.
TEST(LmTrainingMpi, GradientAccumulationAgreesAcrossFactorisations) {
  comm::Communicator& world = testing::WorldComm();
  TrainerConfig config = BaseConfig();
  config.max_steps = 12;
  TrainerConfig accumulate = config;
  accumulate.micro_batches = 2;
  LmRun distributed = TrainLm(world, 300 + world.rank(), 0.3, accumulate);
  auto agree = comm::ReplicasAgree(world, distributed.parameters());

  comm::LocalCommunicator local;
  LmRun whole = TrainLm(local, 300, 0.3, config);
  TrainerConfig split = config;
  split.micro_batches = 2 * world.world_size();
  LmRun many = TrainLm(local, 300, 0.3, split);

  ASSERT_TRUE(distributed.result.ok()) << distributed.result.status();
  ASSERT_TRUE(whole.result.ok()) << whole.result.status();
  ASSERT_TRUE(many.result.ok()) << many.result.status();
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "replicas differ";
  const std::string w = std::to_string(world.world_size()), k = std::to_string(2 * world.world_size());
  testing::ExpectSameSteps(distributed.result->step_losses, whole.result->step_losses, 12, w + "x2 vs 1x1 loss");
  testing::ExpectSameSteps(many.result->step_losses, whole.result->step_losses, 12, "1x" + k + " vs 1x1 loss");
  testing::ExpectSameSteps(distributed.result->step_grad_norms, whole.result->step_grad_norms, 12,
                           w + "x2 vs 1x1 grad norm");
  testing::ExpectSameParameters(distributed.parameters(), whole.parameters(), w + "x2 vs 1x1");
  testing::ExpectSameParameters(many.parameters(), whole.parameters(), "1x" + k + " vs 1x1");
}

// --overlap_allreduce (gradient_reducer.h, Note [overlap with backward]): buckets started
// from backward hooks on the last micro-batch reduce the same values as after backward.
// On 2 ranks any all-reduce algorithm adds the same two numbers: bit-identical. On 3, the
// non-blocking MPI_Iallreduce may add in another order than MPI_Allreduce: 1e-5.
// 12 steps of 2 micro-batches per rank with dropout, trained with `config` and with
// `variant` from the same start: both must finish and the variant's replicas agree.
void TrainBothWays(const TrainerConfig& config, const TrainerConfig& variant, uint64_t init_seed, int64_t vocab,
                   LmRun& base_run, LmRun& variant_run) {
  comm::Communicator& world = testing::WorldComm();
  base_run = TrainLm(world, init_seed + world.rank(), 0.3, config, kDropoutSeed, vocab);
  variant_run = TrainLm(world, init_seed + world.rank(), 0.3, variant, kDropoutSeed, vocab);
  auto agree = comm::ReplicasAgree(world, variant_run.parameters());
  ASSERT_TRUE(base_run.result.ok()) << base_run.result.status();
  ASSERT_TRUE(variant_run.result.ok()) << variant_run.result.status();
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "replicas differ";
}

TrainerConfig AccumulatingConfig() {
  TrainerConfig config = BaseConfig();
  config.max_steps = 12;
  config.micro_batches = 2;
  return config;
}

TEST(LmTrainingMpi, OverlappedAllReduceMatchesTheAllReduceAfterBackward) {
  comm::Communicator& world = testing::WorldComm();
  const TrainerConfig config = AccumulatingConfig();
  TrainerConfig overlapped = config;
  overlapped.overlap_allreduce = true;
  LmRun after, during;
  ASSERT_NO_FATAL_FAILURE(TrainBothWays(config, overlapped, 500, kVocab, after, during));
  EXPECT_EQ(after.result->buckets_overlapped, 0);
  EXPECT_GT(during.result->buckets_overlapped, 12) << "hooks started no (or too few) buckets during backward";
  const std::vector<at::Tensor> a = after.parameters(), b = during.parameters();
  ASSERT_EQ(a.size(), b.size());
  if (world.world_size() == 2) {
    EXPECT_EQ(after.result->step_losses, during.result->step_losses);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(at::equal(a[i], b[i])) << "parameter " << i;
  } else {
    testing::ExpectSameSteps(during.result->step_losses, after.result->step_losses, 12, "overlap loss");
    testing::ExpectSameParameters(b, a, "overlap");
  }
}

// --sparse_embedding_grad (gradient_reducer.h, Note [row-sparse gradients]): exchanging
// the embedding's touched rows trains what the dense all-reduce trains. Both reduce the
// same sums; only the clip norm's summation order differs (the table is its own tensor
// in the norm), so the runs agree to rounding, not bit for bit.
TEST(LmTrainingMpi, SparseEmbeddingGradientTrainsWhatTheDenseAllReduceTrains) {
  comm::Communicator& world = testing::WorldComm();
  TrainerConfig dense = AccumulatingConfig();
  dense.sparse_embedding_grad = false;
  TrainerConfig sparse = dense;
  sparse.sparse_embedding_grad = true;
  // A 400-word table of which the stream uses 17: few rows per step, so the rows path
  // is taken (with the 17-word table the exchange falls back to the whole table).
  LmRun whole, rows;
  ASSERT_NO_FATAL_FAILURE(TrainBothWays(dense, sparse, 700, 400, whole, rows));
  // Each rank's 2 micro-batches look up at most 2 x kNumSteps x (G / W / 2) tokens a step.
  EXPECT_GT(rows.result->embedding_rows_sent, 12) << "the rows path was not taken";
  EXPECT_LE(rows.result->embedding_rows_sent, 12 * kNumSteps * kGlobalBatch / world.world_size());
  EXPECT_EQ(whole.result->embedding_rows_sent, 0);
  testing::ExpectSameSteps(rows.result->step_losses, whole.result->step_losses, 12, "rows vs dense loss");
  testing::ExpectSameSteps(rows.result->step_grad_norms, whole.result->step_grad_norms, 12, "rows vs dense norm");
  testing::ExpectSameParameters(rows.parameters(), whole.parameters(), "rows vs dense");
}

// Only rank 0 has the validation data; the plateau schedule's decisions drawn from its
// evaluation must still be what every rank uses. With lr 1e-30 the parameters do not
// change, so the validation loss never improves after epoch 1: decay after epochs 2 and 3.
TEST(LmTrainingMpi, RankZeroDecisionsReachEveryRank) {
  comm::Communicator& world = testing::WorldComm();
  TrainerConfig config = BaseConfig();
  config.max_steps = 0;
  config.max_epochs = 4;
  config.lr = {LrScheduleKind::kPlateau, 1e-30, 0.5, 0};
  LmRun run = TrainLm(world, 5 + world.rank(), 0.3, config);
  auto same_valid = testing::SameOnEveryRank(world, ValidLoss(run));
  auto same_best = testing::SameOnEveryRank(
      world, run.result.ok() && run.result->best_valid.count("valid_loss") ? run.result->best_valid.at("valid_loss")
                                                                          : std::nan(""));

  ASSERT_TRUE(run.result.ok()) << run.result.status();
  EXPECT_EQ(run.result->epochs, 4);
  EXPECT_EQ(run.result->steps, 4 * kStepsPerEpoch);
  EXPECT_EQ(run.result->epoch_lrs, (std::vector<double>{1e-30, 1e-30, 0.5e-30, 0.25e-30}));
  EXPECT_EQ(run.result->best_epoch, 1);
  EXPECT_GT(ValidLoss(run), 0.0);  // rank 0's figure, received by all
  ASSERT_TRUE(same_valid.ok()) << same_valid.status();
  EXPECT_TRUE(*same_valid);
  ASSERT_TRUE(same_best.ok()) << same_best.status();
  EXPECT_TRUE(*same_best);
}

// --- Resume (DESIGN.md invariant 4) ---------------------------------------------------
//
// Leg 1 trains kFirstLeg steps (mid-epoch 1: the LM's carried hidden state is in the
// checkpoint) and stops; leg 2 resumes and trains to kTotal steps (past the end of epoch
// 1: its lr decision happens after the resume). Both are compared with one process
// trained to kTotal steps without interruption.
constexpr int64_t kFirstLeg = 5;
constexpr int64_t kTotal = 13;

TrainerConfig LegConfig(const std::string& run_dir, int64_t max_steps, const std::string& resume) {
  TrainerConfig c = BaseConfig();
  c.run_dir = run_dir;
  c.max_steps = max_steps;
  c.checkpoint_every_steps = kFirstLeg;
  c.resume = resume;
  return c;
}

const LmRun& UninterruptedReference() {
  static LmRun* reference = [] {
    comm::LocalCommunicator local;
    return new LmRun(TrainLm(local, 400, 0.3, LegConfig("", kTotal, "none")));
  }();
  return *reference;
}

// Leg 1 ran `steps` steps like the reference, and `latest` names `latest_file`.
void ExpectFirstLeg(const LmRun& first, int64_t steps, const std::string& latest, const std::string& latest_file,
                    const std::string& where) {
  const LmRun& reference = UninterruptedReference();
  ASSERT_TRUE(first.result.ok()) << where << ": " << first.result.status();
  ASSERT_TRUE(reference.result.ok()) << reference.result.status();
  EXPECT_EQ(first.result->steps, steps) << where;
  EXPECT_EQ(first.result->resumed_from, "") << where;
  ASSERT_EQ(reference.result->step_losses.size(), static_cast<size_t>(kTotal));
  const std::vector<double> head(reference.result->step_losses.begin(),
                                 reference.result->step_losses.begin() + steps);
  testing::ExpectSameSteps(first.result->step_losses, head, steps, where + " leg 1 loss");
  EXPECT_TRUE(absl::EndsWith(latest, "/" + latest_file)) << where << ": latest is " << latest;
}

void ExpectContinues(const LmRun& second, const std::string& where) {
  const LmRun& reference = UninterruptedReference();
  ASSERT_TRUE(second.result.ok()) << where << ": " << second.result.status();
  ASSERT_TRUE(reference.result.ok()) << reference.result.status();
  ASSERT_EQ(reference.result->step_losses.size(), static_cast<size_t>(kTotal));
  EXPECT_TRUE(absl::EndsWith(second.result->resumed_from, "checkpoint-000000005.pt"))
      << where << ": resumed from '" << second.result->resumed_from << "'";
  EXPECT_EQ(second.result->steps, kTotal) << where;
  EXPECT_EQ(second.result->epochs, 1) << where;
  EXPECT_EQ(second.result->epoch_lrs, (std::vector<double>{1.0, 0.5})) << where;
  const std::vector<double> tail(reference.result->step_losses.begin() + kFirstLeg,
                                 reference.result->step_losses.end());
  testing::ExpectSameSteps(second.result->step_losses, tail, kTotal - kFirstLeg, where + " leg 2 loss");
  testing::ExpectSameParameters(second.parameters(), reference.parameters(), where);
}

// The checkpoint `latest` names, as rank 0 sees it, on every rank (collective).
std::string LatestCheckpoint(comm::Communicator& world, const std::string& run_dir) {
  std::string path;
  if (world.is_root()) {
    auto resolved = Trainer::ResolveResume(LegConfig(run_dir, 0, "auto"));
    path = resolved.ok() ? *resolved : std::string("error: ") + std::string(resolved.status().message());
  }
  if (!comm::BroadcastString(world, path, 0).ok()) path = "error: broadcast failed";
  return path;
}

TEST(LmResumeMpi, ContinuesOnTheSameWorldSize) {
  comm::Communicator& world = testing::WorldComm();
  testing::SharedRunDir dir(world);
  ASSERT_TRUE(dir.status().ok()) << dir.status();  // the same on every rank (broadcast)
  LmRun first = TrainLm(world, 400 + world.rank(), 0.3, LegConfig(dir.path(), kFirstLeg, "auto"));
  const std::string resolved = LatestCheckpoint(world, dir.path());
  // A fresh model seeded differently: everything must come from the checkpoint.
  LmRun second = TrainLm(world, 900 + world.rank(), 0.3, LegConfig(dir.path(), kTotal, "auto"));
  auto agree = comm::ReplicasAgree(world, second.parameters());
  UninterruptedReference();

  ExpectFirstLeg(first, kFirstLeg, resolved, "checkpoint-000000005.pt", "W ranks");
  ExpectContinues(second, "W -> W ranks");
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "replicas differ after the resume";
  // Rank 0's progress records carry the host time of the gradient all-reduce.
  if (world.rank() == 0) {
    const auto progress = testing::ReadMetrics(dir.path(), "progress");
    EXPECT_FALSE(progress.empty());
    for (const auto& record : progress) {
      ASSERT_TRUE(record.contains("allreduce_ms_per_step")) << record.dump();
      const double ms = record["allreduce_ms_per_step"].get<double>();
      EXPECT_GT(ms, 0.0) << record.dump();
      EXPECT_LT(ms, record["ms_per_step"].get<double>()) << record.dump();
    }
  }
}

TEST(LmResumeMpi, ContinuesOnMoreRanksThanItStartedOn) {
  comm::Communicator& world = testing::WorldComm();
  testing::SharedRunDir dir(world);
  ASSERT_TRUE(dir.status().ok()) << dir.status();
  // Leg 1: one process, on rank 0 alone (the others wait in leg 2's first collective).
  LmRun first;
  if (world.is_root()) {
    comm::LocalCommunicator local;
    first = TrainLm(local, 400, 0.3, LegConfig(dir.path(), kFirstLeg, "auto"));
  }
  const std::string resolved = LatestCheckpoint(world, dir.path());
  LmRun second = TrainLm(world, 900 + world.rank(), 0.3, LegConfig(dir.path(), kTotal, "auto"));
  auto agree = comm::ReplicasAgree(world, second.parameters());
  UninterruptedReference();

  if (world.is_root()) ExpectFirstLeg(first, kFirstLeg, resolved, "checkpoint-000000005.pt", "1 rank");
  ExpectContinues(second, "1 -> W ranks");
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "replicas differ after the resume";
}

// Leg 1 runs 2 steps past its periodic checkpoint at kFirstLeg (written inside the
// epoch loop, not at the step limit); leg 2 continues from that one, as after a crash.
TEST(LmResumeMpi, ContinuesOnOneProcessFromManyRanks) {
  comm::Communicator& world = testing::WorldComm();
  testing::SharedRunDir dir(world);
  ASSERT_TRUE(dir.status().ok()) << dir.status();
  LmRun first = TrainLm(world, 400 + world.rank(), 0.3, LegConfig(dir.path(), kFirstLeg + 2, "auto"));
  const std::string latest = LatestCheckpoint(world, dir.path());
  // Leg 2: every rank alone continues from the W-rank checkpoint (no run dir: nobody
  // writes while the others read).
  comm::LocalCommunicator local;
  LmRun second = TrainLm(local, 900 + world.rank(), 0.3,
                         LegConfig("", kTotal, dir.path() + "/checkpoint-000000005.pt"));
  UninterruptedReference();

  ExpectFirstLeg(first, kFirstLeg + 2, latest, "checkpoint-000000007.pt", "W ranks");
  ExpectContinues(second, "W ranks -> 1");
}

}  // namespace
}  // namespace distrnn::train
