// Multi-rank suites parameterised by device (mpi_device_test_main.cc): under mpiexec -n 2
// and -n 3 with --device=cpu (MpiCommunicator, runs here) and --device=cuda
// (NcclCommunicator on GPUs, skipped here with exit 77):
//  - the communicator conformance suite, synchronous and asynchronous, on that device;
//  - GradientReducer on device buckets through the asynchronous interface;
//  - data-parallel training with the one Trainer on that device matches one process
//    with the same global batch (DESIGN.md invariant 1), replicas identical.
// Every collective runs on every rank before any assertion.
#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "comm/conformance.h"
#include "comm/device_test_env.h"
#include "comm/gradient_reducer.h"
#include "comm/local_communicator.h"
#include "comm/parameter_sync.h"
#include "common/device.h"
#include "model/language_model.h"
#include "train/lm_train_task.h"
#include "train/trainer.h"

namespace distrnn::testing {
namespace {

TEST(DeviceMpiConformance, AllReduce) { CheckAllReduce(DeviceComm(), ConformanceSizes(), TestDevice()); }
TEST(DeviceMpiConformance, Broadcast) { CheckBroadcast(DeviceComm(), ConformanceSizes(), TestDevice()); }
TEST(DeviceMpiConformance, SmallHostCollectives) { CheckSmallCollectives(DeviceComm()); }
TEST(DeviceMpiConformance, Async) { CheckAsyncCollectives(DeviceComm(), TestDevice()); }

TEST(DeviceMpiReducer, AveragesDeviceGradients) {
  comm::Communicator& comm = DeviceComm();
  const int w = comm.world_size(), r = comm.rank();
  const auto on = at::TensorOptions().device(TestDevice());
  for (bool async_host : {false, true})  // Note [host buckets]: both host paths (device buckets: always async)
  for (int64_t cap : {int64_t{16}, int64_t{100}, comm::GradientReducer::kDefaultBucketBytes}) {
    std::vector<at::Tensor> params = {at::zeros({6, 4}, on), at::zeros({9}, on), at::zeros({3}, on.dtype(at::kDouble))};
    auto grad = [](int rank, size_t k, const at::Tensor& p) {
      return (at::sin(at::arange(p.numel(), at::kDouble).view(p.sizes()) * 0.3 + rank + k) * (rank + 1))
          .to(p.scalar_type());
    };
    for (size_t k = 0; k < params.size(); ++k) {
      if (!(r == 1 && k == 1)) params[k].mutable_grad() = grad(r, k, params[k]).to(TestDevice());
    }
    comm::GradientReducer reducer(comm, params, cap, async_host);
    absl::Status status = reducer.AllReduceGradients();
    EXPECT_TRUE(status.ok()) << status;
    for (size_t k = 0; k < params.size(); ++k) {
      at::Tensor mean = at::zeros(params[k].sizes(), at::kDouble);
      for (int q = 0; q < w; ++q) {
        if (!(q == 1 && k == 1)) mean += grad(q, k, params[k]).to(at::kDouble);
      }
      mean /= w;
      ASSERT_TRUE(params[k].grad().defined());
      EXPECT_EQ(params[k].grad().device(), TestDevice());
      EXPECT_TRUE(at::allclose(params[k].grad().cpu().to(at::kDouble), mean, 1e-6, 1e-6))
          << "cap " << cap << " param " << k << " async host " << async_host;
    }
  }
}

constexpr int64_t kVocab = 17, kGlobalBatch = 12, kNumSteps = 5, kStepsPerEpoch = 6;

std::vector<int64_t> Tokens(int64_t n, uint64_t seed) {
  std::vector<int64_t> tokens(n);
  uint64_t x = seed;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ULL + 1442695040888963407ULL;
    const int64_t next = i == 0 ? 0 : (tokens[i - 1] + 1) % kVocab;
    tokens[i] = (x >> 33) % 4 == 0 ? static_cast<int64_t>((x >> 40) % kVocab) : next;
  }
  return tokens;
}

struct TrainedLm {
  model::LanguageModel model{nullptr};
  absl::StatusOr<train::TrainResult> result = absl::UnknownError("not run");
};

// Collective on `comm`: a model seeded with `seed` (only rank 0's survives the
// broadcast), moved to the test device, trained for 10 steps with dropout.
TrainedLm Train(comm::Communicator& comm, uint64_t seed) {
  static const std::vector<int64_t> train_tokens = Tokens(kGlobalBatch * (kStepsPerEpoch * kNumSteps + 1) + 5, 1);
  static const std::vector<int64_t> valid_tokens = Tokens(200, 2);
  TrainedLm run;
  model::LanguageModelConfig c;
  c.vocab_size = kVocab;
  c.embedding_size = 12;
  c.stack.cell = model::CellType::kLstm;
  c.stack.input_size = 12;
  c.stack.hidden_size = 12;
  c.stack.num_layers = 2;
  c.stack.dropout = 0.3;
  c.dropout = 0.3;
  torch::manual_seed(seed);
  run.model = model::LanguageModel(c);
  if (absl::Status s = common::MoveModule(*run.model, TestDevice()); !s.ok()) {
    run.result = s;
    return run;
  }
  train::LmTaskConfig task;
  task.batch_size = kGlobalBatch;
  task.num_steps = kNumSteps;
  task.eval_batch_size = 4;
  task.seed = 7;
  auto built = train::LmTrainTask::Create(run.model, task,
                                          {&train_tokens, comm.is_root() ? &valid_tokens : nullptr, nullptr},
                                          train::Shard{comm.rank(), comm.world_size(), 1}, {{"task", "device_mpi"}});
  if (!built.ok()) {
    run.result = built.status();
    return run;
  }
  train::TrainerConfig t;
  t.batch_size = kGlobalBatch;
  t.max_epochs = 2;
  t.max_steps = 10;
  t.lr = {train::LrScheduleKind::kZaremba, 1.0, 0.5, 1};
  t.clip_norm = 5.0;
  t.log_every = 1000;
  t.warmup_steps = 0;
  t.evaluate_test = false;
  t.check_replicas_every = 5;
  t.bucket_bytes = 4096;  // several buckets in flight at once
  train::Trainer trainer(comm, **built, t);
  run.result = trainer.Run();
  return run;
}

TEST(DeviceMpiTraining, NRanksMatchOneProcess) {
  comm::Communicator& comm = DeviceComm();
  TrainedLm distributed = Train(comm, 100 + comm.rank());
  auto agree = comm::ReplicasAgree(comm, distributed.model->parameters());
  comm::LocalCommunicator local;
  TrainedLm reference = Train(local, 100);

  ASSERT_TRUE(distributed.result.ok()) << distributed.result.status();
  ASSERT_TRUE(reference.result.ok()) << reference.result.status();
  ASSERT_TRUE(agree.ok()) << agree.status();
  EXPECT_TRUE(*agree) << "replicas differ";
  const auto& a = distributed.result->step_losses;
  const auto& b = reference.result->step_losses;
  ASSERT_EQ(a.size(), 10u);
  ASSERT_EQ(b.size(), 10u);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4 * std::abs(b[i])) << "step " << i + 1;
  const auto pa = distributed.model->parameters(), pb = reference.model->parameters();
  for (size_t i = 0; i < pa.size(); ++i) {
    EXPECT_EQ(pa[i].device(), TestDevice());
    EXPECT_LT((pa[i] - pb[i]).abs().max().item<double>(), 1e-5) << "parameter " << i;
  }
}

}  // namespace
}  // namespace distrnn::testing
