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
#include "support/train_fixtures.h"
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

// Collective on `comm`: a model seeded with `seed` (only rank 0's survives the
// broadcast), moved to the test device, trained for 10 steps with dropout.
TrainedModel Train(comm::Communicator& comm, uint64_t seed) {
  static const std::vector<int64_t> train_tokens =
      SuccessorTokens(kGlobalBatch * (kStepsPerEpoch * kNumSteps + 1) + 5, 1, kVocab, 4);
  static const std::vector<int64_t> valid_tokens = SuccessorTokens(200, 2, kVocab, 4);
  TrainedModel run;
  torch::manual_seed(seed);
  run.model = model::LanguageModel(TwoLayerLmConfig(kVocab, model::CellType::kLstm, 12, 12, 0.3));
  if (absl::Status s = common::MoveModule(*run.model, TestDevice()); !s.ok()) {
    run.result = s;
    return run;
  }
  const train::LmTaskConfig task{.batch_size = kGlobalBatch, .num_steps = kNumSteps, .eval_batch_size = 4, .seed = 7};
  train::TrainerConfig t = ZarembaTrainerConfig(kGlobalBatch, 2, 10);
  t.check_replicas_every = 5;
  t.bucket_bytes = 4096;  // several buckets in flight at once
  run.result = RunTrainer(comm,
                          train::LmTrainTask::Create(run.model, task,
                                                     {&train_tokens, comm.is_root() ? &valid_tokens : nullptr, nullptr},
                                                     train::Shard{comm.rank(), comm.world_size(), 1},
                                                     {{"task", "device_mpi"}}),
                          t);
  return run;
}

TEST(DeviceMpiTraining, NRanksMatchOneProcess) {
  comm::Communicator& comm = DeviceComm();
  TrainedModel distributed = Train(comm, 100 + comm.rank());
  auto agree = comm::ReplicasAgree(comm, distributed.model->parameters());
  comm::LocalCommunicator local;
  TrainedModel reference = Train(local, 100);

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
