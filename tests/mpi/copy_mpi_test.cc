// Data-parallel copy-task training under mpiexec -n 2 and -n 3: the same per-step losses
// and parameters as one process with the same global batch (DESIGN.md invariant 1),
// identical replicas (invariant 2), and rank 0's evaluation received by every rank
// (invariant 3).
#include <cmath>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "comm/parameter_sync.h"
#include "model/language_model.h"
#include "mpi/equivalence.h"
#include "mpi/mpi_test_env.h"
#include "train/copy_trainer.h"

namespace distrnn::train {
namespace {

model::LanguageModelConfig CopyModelConfig(model::CellType cell) {
  model::LanguageModelConfig c;
  c.vocab_size = data::kCopyVocabSize;
  c.embedding_size = 10;
  c.stack.cell = cell;
  c.stack.input_size = 10;
  c.stack.hidden_size = 12;
  c.stack.num_layers = 2;
  c.init_scale = 0.3;
  return c;
}

CopyTrainConfig CopyConfig() {
  CopyTrainConfig c;
  c.train_spec = {4, 1, 3};
  c.test_spec = {7, 1, 7};
  c.seed = 21;
  c.train_samples = 50;   // not a multiple of the batch: global batches wrap around
  c.eval_samples = 40;
  c.batch_size = 6;       // global: 3 per rank on 2 ranks, 2 per rank on 3
  c.eval_batch_size = 16;
  c.steps_per_epoch = 8;
  c.max_epochs = 3;       // 24 steps
  c.lr = 0.01;
  c.clip_value = 0.05;    // both clips active
  c.clip_norm = 0.5;
  c.run_dir = "";
  c.check_replicas_every = 4;
  c.bucket_bytes = 2048;  // several buckets
  return c;
}

void ExpectMatchesOneProcess(model::CellType cell) {
  comm::Communicator& world = testing::WorldComm();
  // Every rank seeds differently: only the broadcast of rank 0's parameters makes them equal.
  torch::manual_seed(200 + world.rank());
  model::LanguageModel distributed(CopyModelConfig(cell));
  CopyTrainer trainer(world, distributed, CopyConfig(), {});
  auto result = trainer.Run();

  // The reference: one process, global batch 6, initialised like rank 0.
  torch::manual_seed(200);
  model::LanguageModel reference(CopyModelConfig(cell));
  comm::LocalCommunicator local;
  CopyTrainer reference_trainer(local, reference, CopyConfig(), {});
  auto expected = reference_trainer.Run();

  auto agree = comm::ReplicasAgree(world, distributed->parameters());  // collective: before any assert
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree);

  testing::ExpectSameSteps(result->step_losses, expected->step_losses, 24, "loss");
  testing::ExpectSameParameters(distributed->parameters(), reference->parameters());
  // Rank 0's evaluation, as every rank received it.
  EXPECT_NEAR(result->train_length.loss, expected->train_length.loss, 1e-4 * expected->train_length.loss);
  EXPECT_NEAR(result->test_length.loss, expected->test_length.loss, 1e-4 * expected->test_length.loss);
  EXPECT_NEAR(result->train_length.step_accuracy, expected->train_length.step_accuracy, 1e-12);
  EXPECT_NEAR(result->test_length.step_accuracy, expected->test_length.step_accuracy, 1e-12);
}

TEST(CopyTrainingMpi, LstmMatchesOneProcessWithTheSameGlobalBatch) { ExpectMatchesOneProcess(model::CellType::kLstm); }

TEST(CopyTrainingMpi, MlstmMatchesOneProcessWithTheSameGlobalBatch) {
  ExpectMatchesOneProcess(model::CellType::kMlstm);
}

// A global batch the ranks cannot split evenly is refused on every rank alike (no hang).
TEST(CopyTrainingMpi, RefusesAnIndivisibleGlobalBatch) {
  comm::Communicator& world = testing::WorldComm();
  torch::manual_seed(1);
  model::LanguageModel model(CopyModelConfig(model::CellType::kGru));
  CopyTrainConfig config = CopyConfig();
  config.batch_size = 7;
  CopyTrainer trainer(world, model, config, {});
  auto result = trainer.Run();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace distrnn::train
