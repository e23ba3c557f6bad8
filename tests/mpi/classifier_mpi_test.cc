// Data-parallel classifier training under mpiexec -n 2 and -n 3: with the same global
// batch, the same per-step losses and parameters as one process (DESIGN.md invariant 1:
// one permutation per epoch from (seed, epoch), rank r takes its slice of each global
// batch; Note [classifier loss scale]), identical replicas (invariant 2), and rank 0's
// evaluation reaching every rank (invariant 3).
#include <cmath>
#include <random>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "comm/parameter_sync.h"
#include "model/classifier.h"
#include "mpi/equivalence.h"
#include "mpi/mpi_test_env.h"
#include "train/classifier_trainer.h"

namespace distrnn::train {
namespace {

constexpr int64_t kVocab = 12;

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

model::ClassifierConfig ModelConfig(model::CellType cell, bool bidirectional) {
  model::ClassifierConfig c;
  c.vocab_size = kVocab;
  c.embedding_size = 6;
  c.stack.cell = cell;
  c.stack.input_size = 6;
  c.stack.hidden_size = 8;
  c.stack.num_layers = 2;
  c.stack.bidirectional = bidirectional;
  c.stack.dropout = 0.0;
  c.dropout = 0.0;
  return c;
}

ClassifierTrainConfig TrainConfig() {
  ClassifierTrainConfig c;
  c.batch_size = 6;  // global: 3 per rank on 2 ranks, 2 per rank on 3
  c.eval_batch_size = 7;
  c.max_epochs = 2;
  c.lr = 3e-3;
  c.clip_norm = 1.0;
  c.seed = 11;
  c.bucket_by_length = true;
  c.bucket_batches = 3;
  c.check_replicas_every = 4;
  c.bucket_bytes = 512;  // several buckets
  c.log_every = 1000;
  return c;
}

void ExpectMatchesOneProcess(model::CellType cell, bool bidirectional) {
  comm::Communicator& world = testing::WorldComm();
  const auto train = MarkerTask(66, 1), valid = MarkerTask(20, 2), test = MarkerTask(25, 3);
  const bool root = world.rank() == 0;

  // Every rank seeds differently: only the broadcast of rank 0's parameters makes them equal.
  torch::manual_seed(100 + world.rank());
  model::Classifier distributed(ModelConfig(cell, bidirectional));
  ClassifierTrainer trainer(world, distributed, TrainConfig(),
                            {&train, root ? &valid : nullptr, root ? &test : nullptr}, {});
  auto result = trainer.Run();

  torch::manual_seed(100);
  model::Classifier reference(ModelConfig(cell, bidirectional));
  comm::LocalCommunicator local;
  ClassifierTrainer reference_trainer(local, reference, TrainConfig(), {&train, &valid, &test}, {});
  auto expected = reference_trainer.Run();

  auto agree = comm::ReplicasAgree(world, distributed->parameters());  // collective: before any assert
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree);

  const size_t steps = 2 * (66 / 6);
  testing::ExpectSameSteps(result->step_losses, expected->step_losses, steps, "loss");
  // Adam hides a wrong loss scale in the parameters; the gradient norm does not.
  testing::ExpectSameSteps(result->step_grad_norms, expected->step_grad_norms, steps, "grad norm");
  testing::ExpectSameParameters(distributed->parameters(), reference->parameters());
  // Rank 0's evaluation, received by every rank.
  EXPECT_EQ(result->best_epoch, expected->best_epoch);
  EXPECT_NEAR(result->best_valid_loss, expected->best_valid_loss, 1e-5);
  EXPECT_NEAR(result->test_accuracy, expected->test_accuracy, 1.01 / 25);  // a logit near 0 may flip
  EXPECT_GT(result->test_loss, 0.0);
}

TEST(ClassifierTrainingMpi, LstmMatchesOneProcessWithTheSameGlobalBatch) {
  ExpectMatchesOneProcess(model::CellType::kLstm, false);
}

TEST(ClassifierTrainingMpi, BidirectionalGruMatchesOneProcess) { ExpectMatchesOneProcess(model::CellType::kGru, true); }

}  // namespace
}  // namespace distrnn::train
