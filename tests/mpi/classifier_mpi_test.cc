// Data-parallel classifier training (the one Trainer with a ClassificationTrainTask) under
// mpiexec -n 2 and -n 3: with the same global batch, the same per-step losses, gradient
// norms and parameters as one process (DESIGN.md invariant 1: one permutation per epoch
// from (seed, epoch), rank r takes its slice of each global batch; sequences of varying
// length, each rank padding its slice to its own longest), also with dropout (masks keyed
// by global column) and gradient accumulation; identical replicas (invariant 2); rank 0's
// evaluation and best-epoch choice reaching every rank (invariant 3).
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "comm/parameter_sync.h"
#include "model/classifier.h"
#include "mpi/equivalence.h"
#include "mpi/mpi_test_env.h"
#include "train/classification_train_task.h"
#include "train/trainer.h"

namespace distrnn::train {
namespace {

constexpr int64_t kVocab = 12;
constexpr int64_t kGlobalBatch = 12;  // 6 / 4 per rank on 2 / 3 ranks
constexpr int64_t kTrainExamples = 76;  // 6 full global batches per epoch, 4 examples dropped
constexpr int64_t kEpochs = 2;
constexpr int64_t kSteps = kEpochs * (kTrainExamples / kGlobalBatch);

// Label = whether word 3 occurs; lengths 2..12 so length buckets and padding matter.
data::ClassificationDataset MarkerTask(int64_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  data::ClassificationDataset d;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t len = 2 + static_cast<int64_t>(rng() % 11);
    std::vector<int64_t> seq(len);
    for (auto& t : seq) {
      do t = 1 + static_cast<int64_t>(rng() % (kVocab - 1)); while (t == 3);
    }
    if (i % 2 == 1) seq[rng() % len] = 3;
    d.sequences.push_back(seq);
    d.labels.push_back(i % 2);
  }
  return d;
}

struct Data {
  data::ClassificationDataset train = MarkerTask(kTrainExamples, 1), valid = MarkerTask(20, 2),
                              test = MarkerTask(25, 3);
};
const Data& TheData() {
  static const Data data;
  return data;
}

struct Variant {
  model::CellType cell = model::CellType::kLstm;
  bool bidirectional = false;
  double dropout = 0.0;      // embedding, between layers, pooled features
  int micro_batches = 1;     // of the distributed run (the reference runs 1)
};

model::ClassifierConfig ModelConfig(const Variant& v) {
  model::ClassifierConfig c;
  c.vocab_size = kVocab;
  c.embedding_size = 6;
  c.stack.cell = v.cell;
  c.stack.input_size = 6;
  c.stack.hidden_size = 8;
  c.stack.num_layers = 2;
  c.stack.bidirectional = v.bidirectional;
  c.stack.dropout = v.dropout;
  c.dropout = v.dropout;
  return c;
}

TrainerConfig ClassifierTrainerConfig(int micro_batches) {
  TrainerConfig c;
  c.batch_size = kGlobalBatch;
  c.micro_batches = micro_batches;
  c.max_epochs = kEpochs;
  c.optimizer = OptimizerKind::kAdam;
  c.lr = {LrScheduleKind::kConstant, 3e-3, 1.0, 0};
  c.clip_norm = 1.0;
  c.log_every = 1000;
  c.warmup_steps = 0;
  c.check_replicas_every = 4;
  c.bucket_bytes = 512;  // several buckets
  return c;
}

struct ClassifierRun {
  model::Classifier model{nullptr};
  absl::StatusOr<TrainResult> result = absl::UnknownError("not run");
  std::vector<at::Tensor> parameters() const { return model->parameters(); }
};

// Collective on `comm`; valid and test data on rank 0 only.
ClassifierRun TrainClassifier(comm::Communicator& comm, uint64_t init_seed, const Variant& v, int micro_batches) {
  ClassifierRun run;
  torch::manual_seed(init_seed);
  run.model = model::Classifier(ModelConfig(v));
  ClassificationTaskConfig task_config;
  task_config.batch_size = kGlobalBatch;
  task_config.eval_batch_size = 7;
  task_config.bucket_by_length = true;
  task_config.bucket_batches = 3;
  task_config.seed = 11;
  const Data& d = TheData();
  const bool root = comm.is_root();
  auto task = ClassificationTrainTask::Create(run.model, task_config,
                                              {&d.train, root ? &d.valid : nullptr, root ? &d.test : nullptr},
                                              Shard{comm.rank(), comm.world_size(), micro_batches},
                                              {{"task", "test_classifier"}});
  if (!task.ok()) {
    run.result = task.status();
    return run;
  }
  Trainer trainer(comm, **task, ClassifierTrainerConfig(micro_batches));
  run.result = trainer.Run();
  return run;
}

double Figure(const ClassifierRun& run, const char* name, bool test) {
  if (!run.result.ok()) return std::nan("");
  const Evaluation& e = test ? run.result->test : run.result->best_valid;
  return e.count(name) ? e.at(name) : std::nan("");
}

void ExpectMatchesOneProcess(const Variant& v) {
  comm::Communicator& world = testing::WorldComm();
  // Every rank seeds differently: only the broadcast of rank 0's parameters makes them equal.
  ClassifierRun distributed = TrainClassifier(world, 100 + world.rank(), v, v.micro_batches);
  auto agree = comm::ReplicasAgree(world, distributed.parameters());
  auto same_test = testing::SameOnEveryRank(world, Figure(distributed, "test_loss", true));
  auto same_best = testing::SameOnEveryRank(world, Figure(distributed, "valid_accuracy", false));
  // The reference: one process, one micro-batch, initialised like rank 0.
  comm::LocalCommunicator local;
  ClassifierRun reference = TrainClassifier(local, 100, v, 1);

  ASSERT_TRUE(distributed.result.ok()) << distributed.result.status();
  ASSERT_TRUE(reference.result.ok()) << reference.result.status();
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "replicas differ";
  ASSERT_TRUE(same_test.ok()) << same_test.status();
  EXPECT_TRUE(*same_test) << "rank 0's test figures did not reach every rank";
  ASSERT_TRUE(same_best.ok()) << same_best.status();
  EXPECT_TRUE(*same_best) << "rank 0's best valid figures did not reach every rank";

  testing::ExpectSameSteps(distributed.result->step_losses, reference.result->step_losses, kSteps, "loss");
  // Adam hides a wrong loss scale in the parameters; the gradient norm does not.
  testing::ExpectSameSteps(distributed.result->step_grad_norms, reference.result->step_grad_norms, kSteps,
                           "grad norm");
  // The best epoch's parameters, restored before testing.
  testing::ExpectSameParameters(distributed.parameters(), reference.parameters());
  EXPECT_EQ(distributed.result->best_epoch, reference.result->best_epoch);
  EXPECT_NEAR(Figure(distributed, "valid_loss", false), Figure(reference, "valid_loss", false), 1e-5);
  EXPECT_NEAR(Figure(distributed, "test_loss", true), Figure(reference, "test_loss", true), 1e-5);
  EXPECT_NEAR(Figure(distributed, "test_accuracy", true), Figure(reference, "test_accuracy", true),
              1.01 / 25);  // a logit near 0 may flip
  EXPECT_GT(Figure(distributed, "test_loss", true), 0.0);
}

TEST(ClassifierTrainingMpi, LstmMatchesOneProcessWithTheSameGlobalBatch) {
  ExpectMatchesOneProcess({model::CellType::kLstm, false, 0.0, 1});
}

TEST(ClassifierTrainingMpi, BidirectionalGruMatchesOneProcess) {
  ExpectMatchesOneProcess({model::CellType::kGru, true, 0.0, 1});
}

TEST(ClassifierTrainingMpi, BidirectionalLstmWithDropoutMatchesOneProcess) {
  ExpectMatchesOneProcess({model::CellType::kLstm, true, 0.3, 1});
}

// W ranks x 2 micro-batches (each re-padded to its own longest) vs 1 process x 1.
TEST(ClassifierTrainingMpi, BidirectionalLstmWithDropoutAndAccumulationMatchesOneProcess) {
  ExpectMatchesOneProcess({model::CellType::kLstm, true, 0.3, 2});
}

}  // namespace
}  // namespace distrnn::train
