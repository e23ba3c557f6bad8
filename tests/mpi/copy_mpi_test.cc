// Data-parallel copy-task training (the one Trainer with a CopyTrainTask) under mpiexec
// -n 2 and -n 3: the same per-step losses and parameters as one process with the same
// global batch (DESIGN.md invariant 1), with and without dropout, identical replicas
// (invariant 2), and rank 0's evaluation received by every rank (invariant 3).
#include <cmath>
#include <string>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "comm/parameter_sync.h"
#include "model/language_model.h"
#include "mpi/equivalence.h"
#include "mpi/mpi_test_env.h"
#include "support/train_fixtures.h"
#include "train/copy_train_task.h"
#include "train/trainer.h"

namespace distrnn::train {
namespace {

constexpr int64_t kGlobalBatch = 12;  // 6 / 4 per rank on 2 / 3 ranks
constexpr int64_t kSteps = 24;        // 3 epochs of 8

model::LanguageModelConfig CopyModelConfig(model::CellType cell, double dropout) {
  model::LanguageModelConfig c = testing::TwoLayerLmConfig(data::kCopyVocabSize, cell, 10, 12, dropout);
  c.init_scale = 0.3;
  return c;
}

// With `curriculum`, K grows from 1 each epoch and a quarter of the steps draw a random K.
CopyTaskConfig TaskConfig(bool curriculum = false) {
  CopyTaskConfig c;
  c.train_spec = {4, 1, 3};
  c.test_spec = {7, 1, 7};
  c.seed = 21;
  c.train_samples = 50;  // not a multiple of the batch: global batches wrap around
  c.eval_samples = 40;
  c.batch_size = kGlobalBatch;
  c.eval_batch_size = 16;
  c.steps_per_epoch = 8;
  if (curriculum) c.curriculum = {1, 1, 0.0, 0.25};
  return c;
}

TrainerConfig CopyTrainerConfig() {
  TrainerConfig c;
  c.batch_size = kGlobalBatch;
  c.max_epochs = 3;
  c.optimizer = OptimizerKind::kAdam;
  c.lr = {LrScheduleKind::kConstant, 0.01, 1.0, 0};
  c.clip_value = 0.05;  // both clips active
  c.clip_norm = 0.5;
  c.log_every = 1000;
  c.warmup_steps = 0;
  c.check_replicas_every = 4;
  c.bucket_bytes = 2048;  // several buckets
  return c;
}

using CopyRun = testing::TrainedModel;

// Collective on `comm`.
CopyRun TrainCopy(comm::Communicator& comm, uint64_t init_seed, model::CellType cell, double dropout,
                  const TrainerConfig& config, bool curriculum) {
  CopyRun run;
  torch::manual_seed(init_seed);
  run.model = model::LanguageModel(CopyModelConfig(cell, dropout));
  run.result = testing::RunTrainer(comm,
                                   CopyTrainTask::Create(run.model, TaskConfig(curriculum),
                                                         Shard{comm.rank(), comm.world_size(), config.micro_batches},
                                                         {{"task", "test_copy"}}),
                                   config);
  return run;
}

void ExpectMatchesOneProcess(model::CellType cell, double dropout, bool curriculum = false) {
  comm::Communicator& world = testing::WorldComm();
  const TrainerConfig config = CopyTrainerConfig();
  // Every rank seeds differently: only the broadcast of rank 0's parameters makes them equal.
  CopyRun distributed = TrainCopy(world, 200 + world.rank(), cell, dropout, config, curriculum);
  auto agree = comm::ReplicasAgree(world, distributed.parameters());
  const double valid_loss = distributed.result.ok() && distributed.result->last_valid.count("valid_loss")
                                ? distributed.result->last_valid.at("valid_loss")
                                : std::nan("");
  auto same_valid = testing::SameOnEveryRank(world, valid_loss);
  // The reference: one process, global batch G, initialised like rank 0.
  comm::LocalCommunicator local;
  CopyRun reference = TrainCopy(local, 200, cell, dropout, config, curriculum);

  ASSERT_NO_FATAL_FAILURE(testing::ExpectTrainedAndAgreed(distributed.result.status(), reference.result.status(),
                                                          agree, same_valid));

  testing::ExpectSameSteps(distributed.result->step_losses, reference.result->step_losses, kSteps, "loss");
  testing::ExpectSameSteps(distributed.result->step_grad_norms, reference.result->step_grad_norms, kSteps,
                           "grad norm");
  testing::ExpectSameParameters(distributed.parameters(), reference.parameters());
  // Rank 0's evaluation at both lengths (loss, step/copy/sequence accuracy), as every rank received it.
  testing::ExpectSameFigures(distributed.result->last_valid, reference.result->last_valid, "last valid");
  EXPECT_TRUE(distributed.result->last_valid.count("test_length_loss"));
  if (curriculum) {
    EXPECT_EQ(distributed.result->last_valid.at("curriculum_level"), 3.0);
  } else {
    // The model learned something: the loss fell (under a curriculum K grows instead).
    EXPECT_LT(reference.result->step_losses.back(), reference.result->step_losses.front());
  }
}

TEST(CopyTrainingMpi, LstmMatchesOneProcessWithTheSameGlobalBatch) {
  ExpectMatchesOneProcess(model::CellType::kLstm, 0.0);
}

TEST(CopyTrainingMpi, LstmWithDropoutMatchesOneProcess) { ExpectMatchesOneProcess(model::CellType::kLstm, 0.25); }

TEST(CopyTrainingMpi, MlstmWithDropoutMatchesOneProcess) { ExpectMatchesOneProcess(model::CellType::kMlstm, 0.25); }

// The curriculum's K per step and its level (rank 0's evaluation, broadcast) are the same
// on every rank and world size: epoch 3 is evaluated at level 3 everywhere.
TEST(CopyTrainingMpi, CurriculumMatchesOneProcess) {
  ExpectMatchesOneProcess(model::CellType::kLstm, 0.0, /*curriculum=*/true);
}

// A global batch the ranks cannot split evenly is refused on every rank alike (no hang):
// by the task, and by the Trainer before its first collective.
TEST(CopyTrainingMpi, RefusesAnIndivisibleGlobalBatch) {
  comm::Communicator& world = testing::WorldComm();
  torch::manual_seed(1);
  model::LanguageModel model(CopyModelConfig(model::CellType::kGru, 0.0));
  const Shard shard{world.rank(), world.world_size(), 1};
  CopyTaskConfig indivisible = TaskConfig();
  indivisible.batch_size = 7;
  auto refused = CopyTrainTask::Create(model, indivisible, shard, {{"task", "test_copy"}});

  auto task = CopyTrainTask::Create(model, TaskConfig(), shard, {{"task", "test_copy"}});
  absl::StatusOr<TrainResult> result = absl::UnknownError("no task");
  if (task.ok()) {
    TrainerConfig config = CopyTrainerConfig();
    config.batch_size = 7;
    Trainer trainer(world, **task, config);
    result = trainer.Run();
  }
  const absl::Status after = world.Barrier();  // every rank got here: nobody waits in the Trainer

  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument) << refused.status();
  ASSERT_TRUE(task.ok()) << task.status();
  EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << result.status();
  EXPECT_TRUE(after.ok()) << after;
}

}  // namespace
}  // namespace distrnn::train
