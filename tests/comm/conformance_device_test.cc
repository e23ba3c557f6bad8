// Single-process suites parameterised by device (--device=cpu here, --device=cuda where
// a GPU is visible; see device_test_main.cc): the communicator conformance suite on
// tensors of that device, the device helpers, and the one training loop on that device
// against the CPU (the same parameters and losses for a few steps of a tiny LM).
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "comm/conformance.h"
#include "comm/device_test_env.h"
#include "comm/gradient_reducer.h"
#include "comm/local_communicator.h"
#include "common/device.h"
#include "model/language_model.h"
#include "support/temp_dir.h"
#include "support/train_fixtures.h"
#include "train/checkpoint.h"
#include "train/copy_train_task.h"
#include "train/lm_train_task.h"
#include "train/trainer.h"

namespace distrnn::testing {
namespace {

TEST(DeviceConformance, LocalAllReduce) {
  comm::LocalCommunicator comm;
  CheckAllReduce(comm, ConformanceSizes(), TestDevice());
}

TEST(DeviceConformance, LocalBroadcast) {
  comm::LocalCommunicator comm;
  CheckBroadcast(comm, ConformanceSizes(), TestDevice());
}

TEST(DeviceConformance, LocalAsync) {
  comm::LocalCommunicator comm;
  CheckAsyncCollectives(comm, TestDevice());
}

TEST(DeviceHelpers, ToDeviceCopiesValuesToTheDevice) {
  const at::Tensor host = at::arange(12, at::kLong).view({3, 4});
  const at::Tensor moved = common::ToDevice(host, TestDevice());
  EXPECT_EQ(moved.device(), TestDevice());
  EXPECT_TRUE(at::equal(moved.cpu(), host));
}

TEST(DeviceHelpers, MoveModulePutsEveryParameterOnTheDevice) {
  model::LanguageModelConfig c;
  c.vocab_size = 11;
  c.embedding_size = 8;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = 8;
  c.stack.hidden_size = 8;
  c.stack.num_layers = 2;
  model::LanguageModel lm(c);
  ASSERT_TRUE(common::MoveModule(*lm, TestDevice()).ok());
  EXPECT_EQ(common::ModuleDevice(*lm), TestDevice());
  for (const at::Tensor& p : lm->parameters()) EXPECT_EQ(p.device(), TestDevice());
  // A forward pass on the device (cuDNN's LSTM on CUDA, after flatten_parameters).
  torch::NoGradGuard no_grad;
  const at::Tensor ids = common::ToDevice(at::randint(0, 11, {5, 3}, at::kLong), TestDevice());
  auto [logits, state] = lm->forward(ids);
  EXPECT_EQ(logits.device(), TestDevice());
  EXPECT_EQ(state.h.device(), TestDevice());
}

TEST(DeviceHelpers, Bf16AutocastOnCudaOnly) {
  if (!TestDevice().is_cuda()) {
    EXPECT_FALSE(common::CheckPrecision(common::Precision::kBf16, TestDevice()).ok());
    return;
  }
  torch::nn::Linear linear(4, 3);
  linear->to(TestDevice());
  common::SetPrecision(common::Precision::kBf16);
  at::Tensor out;
  {
    common::AutocastScope autocast(TestDevice().type());
    out = linear->forward(at::ones({2, 4}, at::TensorOptions().device(TestDevice())));
  }
  common::SetPrecision(common::Precision::kFp32);
  EXPECT_EQ(out.scalar_type(), at::kBFloat16);
  EXPECT_EQ(linear->weight.scalar_type(), at::kFloat) << "parameters stay fp32";
}

TEST(DeviceReducer, WorldOfOneKeepsGradientsOnTheDevice) {
  comm::LocalCommunicator comm;
  std::vector<at::Tensor> params = {at::zeros({4}, at::TensorOptions().device(TestDevice())).requires_grad_()};
  params[0].mutable_grad() = at::ones({4}, at::TensorOptions().device(TestDevice()));
  comm::GradientReducer reducer(comm, params, 1024);
  EXPECT_TRUE(reducer.AllReduceGradients().ok());
  EXPECT_EQ(params[0].grad().device(), TestDevice());
  EXPECT_TRUE(at::equal(params[0].grad().cpu(), at::ones({4})));
}

// --- the one loop on the device vs the CPU -------------------------------------------

constexpr int64_t kVocab = 13, kBatch = 6, kSteps = 5;

TrainedModel TrainOn(c10::Device device, double dropout, const std::string& run_dir = "") {
  static const std::vector<int64_t> train_tokens = SuccessorTokens(kBatch * (6 * kSteps + 1) + 3, 1, kVocab, 3);
  static const std::vector<int64_t> valid_tokens = SuccessorTokens(120, 2, kVocab, 3);
  TrainedModel run;
  torch::manual_seed(5);
  // Initialised on the CPU, then moved: the same start.
  run.model = model::LanguageModel(TwoLayerLmConfig(kVocab, model::CellType::kLstm, 10, 10, dropout));
  if (absl::Status s = common::MoveModule(*run.model, device); !s.ok()) {
    run.result = s;
    return run;
  }
  const train::LmTaskConfig task{.batch_size = kBatch, .num_steps = kSteps, .eval_batch_size = 3, .seed = 9};
  comm::LocalCommunicator comm;
  // 9 steps cross an epoch end: the carried state resets on the device.
  train::TrainerConfig t = ZarembaTrainerConfig(kBatch, 2, 9);
  t.micro_batches = 2;  // two column groups, each carrying its own state on the device
  t.run_dir = run_dir;
  run.result = RunTrainer(comm,
                          train::LmTrainTask::Create(run.model, task, {&train_tokens, &valid_tokens, nullptr},
                                                     train::Shard{0, 1, 2}, {{"task", "device_test"}}),
                          t);
  return run;
}

TEST(DeviceTraining, TheLoopOnTheDeviceMatchesTheCpu) {
  for (double dropout : {0.0, 0.3}) {
    TrainedModel on_device = TrainOn(TestDevice(), dropout);
    TrainedModel on_cpu = TrainOn(c10::Device(c10::kCPU), dropout);
    ASSERT_TRUE(on_device.result.ok()) << on_device.result.status();
    ASSERT_TRUE(on_cpu.result.ok()) << on_cpu.result.status();
    for (const at::Tensor& p : on_device.model->parameters()) EXPECT_EQ(p.device(), TestDevice());
    const auto& a = on_device.result->step_losses;
    const auto& b = on_cpu.result->step_losses;
    ASSERT_EQ(a.size(), 9u);
    ASSERT_EQ(b.size(), 9u);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * std::abs(b[i])) << "step " << i + 1;
    const auto pa = on_device.model->parameters(), pb = on_cpu.model->parameters();
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_LT((pa[i].cpu() - pb[i]).abs().max().item<double>(), 1e-5) << "dropout " << dropout << " parameter " << i;
    }
    EXPECT_NEAR(on_device.result->last_valid.at("valid_loss"), on_cpu.result->last_valid.at("valid_loss"), 1e-4);
  }
}

// A checkpoint written by a run on the device loads into a model on the CPU (the
// reader maps to the CPU), so generate/predict run anywhere.
TEST(DeviceTraining, CheckpointsFromTheDeviceLoadOnTheCpu) {
  TempDir dir;
  TrainedModel trained = TrainOn(TestDevice(), 0.0, dir.Join("run"));
  ASSERT_TRUE(trained.result.ok()) << trained.result.status();
  model::LanguageModel on_cpu(trained.model->config());
  std::ifstream pointer(dir.Join("run/latest"));  // names the newest checkpoint: the end of the run
  std::string name;
  std::getline(pointer, name);
  const std::string latest = dir.Join("run/" + name);
  absl::Status loaded = train::LoadCheckpoint(latest, *on_cpu, nullptr);
  ASSERT_TRUE(loaded.ok()) << loaded;
  const auto a = trained.model->parameters(), b = on_cpu->parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(b[i].device(), c10::Device(c10::kCPU));
    EXPECT_TRUE(at::equal(a[i].cpu(), b[i])) << "parameter " << i;
  }
}

TEST(DeviceTraining, CopyTaskEvaluatesOnTheDevice) {
  model::LanguageModelConfig c;
  c.vocab_size = data::kCopyVocabSize;
  c.embedding_size = 8;
  c.stack.cell = model::CellType::kGru;
  c.stack.input_size = 8;
  c.stack.hidden_size = 8;
  c.stack.num_layers = 1;
  torch::manual_seed(3);
  model::LanguageModel lm(c);
  ASSERT_TRUE(common::MoveModule(*lm, TestDevice()).ok());
  const data::CopyTaskSpec spec{4, 1, 4};
  auto on_device = train::EvaluateCopy(lm, spec, 1, 0, 10, 4);
  ASSERT_TRUE(common::MoveModule(*lm, c10::Device(c10::kCPU)).ok());
  auto on_cpu = train::EvaluateCopy(lm, spec, 1, 0, 10, 4);
  ASSERT_TRUE(on_device.ok()) << on_device.status();
  ASSERT_TRUE(on_cpu.ok()) << on_cpu.status();
  EXPECT_NEAR(on_device->loss, on_cpu->loss, 1e-5);
  EXPECT_EQ(on_device->accuracy.sequence_accuracy(), on_cpu->accuracy.sequence_accuracy());
}

}  // namespace
}  // namespace distrnn::testing
