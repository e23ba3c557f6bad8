// Data-parallel LM training under mpiexec -n 2 and -n 3: the same parameters as one
// process with the same global batch (DESIGN.md invariant 1), identical replicas
// (invariant 2), and rank 0's decisions followed by every rank (invariant 3).
#include <cmath>
#include <vector>

#include <torch/torch.h>

#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "comm/parameter_sync.h"
#include "model/language_model.h"
#include "mpi/equivalence.h"
#include "mpi/mpi_test_env.h"
#include "train/lm_trainer.h"

namespace distrnn::train {
namespace {

constexpr int64_t kVocab = 17;

std::vector<int64_t> PseudoRandomTokens(int64_t n, uint64_t seed) {
  std::vector<int64_t> tokens(n);
  uint64_t x = seed;
  for (auto& t : tokens) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    // A learnable stream: mostly the successor of a small cycle, sometimes random.
    t = ((x >> 33) % 4 == 0) ? static_cast<int64_t>((x >> 40) % kVocab) : -1;
  }
  for (int64_t i = 0; i < n; ++i) {
    if (tokens[i] < 0) tokens[i] = i == 0 ? 0 : (tokens[i - 1] + 1) % kVocab;
  }
  return tokens;
}

model::LanguageModelConfig ModelConfig() {
  model::LanguageModelConfig c;
  c.vocab_size = kVocab;
  c.embedding_size = 12;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = 12;
  c.stack.hidden_size = 12;
  c.stack.num_layers = 2;
  c.init_scale = 0.1;
  return c;
}

LmTrainConfig TrainConfig() {
  LmTrainConfig c;
  c.batch_size = 6;  // global: 3 per rank on 2 ranks, 2 per rank on 3
  c.num_steps = 5;
  c.eval_batch_size = 2;
  c.max_epochs = 1;
  c.max_steps = 20;
  c.lr = {LrScheduleKind::kZaremba, 1.0, 0.5, 4};
  c.clip_norm = 5.0;
  c.run_dir = "";
  c.evaluate_test = false;
  c.check_replicas_every = 5;
  c.bucket_bytes = 4096;  // several buckets
  return c;
}

TEST(LmTrainingMpi, MatchesOneProcessWithTheSameGlobalBatch) {
  comm::Communicator& world = testing::WorldComm();
  const std::vector<int64_t> train = PseudoRandomTokens(3000, 1), valid = PseudoRandomTokens(300, 2);

  // Every rank seeds differently: only the broadcast of rank 0's parameters makes them equal.
  torch::manual_seed(100 + world.rank());
  model::LanguageModel distributed(ModelConfig());
  LmTrainer trainer(world, distributed, TrainConfig(), {&train, world.rank() == 0 ? &valid : nullptr, nullptr}, {});
  auto result = trainer.Run();

  // The reference: one process, global batch 6, initialised like rank 0.
  torch::manual_seed(100);
  model::LanguageModel reference(ModelConfig());
  comm::LocalCommunicator local;
  LmTrainer reference_trainer(local, reference, TrainConfig(), {&train, &valid, nullptr}, {});
  auto expected = reference_trainer.Run();

  auto agree = comm::ReplicasAgree(world, distributed->parameters());  // collective: before any assert
  ASSERT_TRUE(result.ok()) << result.status();
  ASSERT_TRUE(expected.ok()) << expected.status();
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree);

  testing::ExpectSameSteps(result->step_losses, expected->step_losses, 20, "loss");
  testing::ExpectSameParameters(distributed->parameters(), reference->parameters());
  EXPECT_NEAR(result->last_valid_ppl, expected->last_valid_ppl, 1e-4 * expected->last_valid_ppl);
}

// Only rank 0 has the validation data; the plateau schedule's decisions drawn from its
// evaluation must still be what every rank uses. With lr 1e-30 the parameters do not
// change, so the validation loss never improves after epoch 1: decay at epochs 3 and 4.
TEST(LmTrainingMpi, RankZeroDecisionsReachEveryRank) {
  comm::Communicator& world = testing::WorldComm();
  const std::vector<int64_t> train = PseudoRandomTokens(600, 3), valid = PseudoRandomTokens(200, 4);
  torch::manual_seed(5);
  model::LanguageModel model(ModelConfig());
  LmTrainConfig config = TrainConfig();
  config.max_steps = 0;
  config.max_epochs = 4;
  config.lr = {LrScheduleKind::kPlateau, 1e-30, 0.5, 0};
  LmTrainer trainer(world, model, config, {&train, world.rank() == 0 ? &valid : nullptr, nullptr}, {});
  auto result = trainer.Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->epoch_lrs, (std::vector<double>{1e-30, 1e-30, 0.5e-30, 0.25e-30}));
  EXPECT_GT(result->last_valid_ppl, 1.0);  // rank 0's figure, received by all
}

}  // namespace
}  // namespace distrnn::train
