// The Trainer's fault paths in one process, on a task small enough to reason about: a
// linear model whose loss is NaN at chosen global steps, and a stop-signal poll that
// fires at a chosen call. Skip leaves the parameters as they were; stop returns
// Diverged naming the step; a signal stops after the step with a checkpoint of it, from
// which a resumed run ends exactly where an uninterrupted one does.
#include <csignal>
#include <filesystem>
#include <limits>
#include <set>

#include <torch/torch.h>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "comm/local_communicator.h"
#include "support/temp_dir.h"
#include "train/agreed_stop.h"
#include "train/trainer.h"

namespace distrnn::train {
namespace {

using ::testing::HasSubstr;

struct Linear : torch::nn::Module {
  Linear() : fc(register_module("fc", torch::nn::Linear(4, 1))) {}
  torch::nn::Linear fc;
};

// y = w.x + b on a deterministic stream of examples; 6 steps per epoch, global batch 4.
class LinearTask : public TrainTask {
 public:
  explicit LinearTask(std::set<int64_t> nan_steps = {}) : nan_steps_(std::move(nan_steps)) {
    torch::manual_seed(3);
    model_ = std::make_shared<Linear>();
  }
  torch::nn::Module& model() override { return *model_; }
  nlohmann::json Meta() const override { return {{"task", "linear_test"}}; }
  int64_t GlobalBatch() const override { return 4; }
  int64_t StepsPerEpoch() const override { return 6; }
  absl::Status StartEpoch(int64_t, int64_t) override { return absl::OkStatus(); }
  absl::StatusOr<MicroBatchLoss> Forward(int64_t, int64_t global_step, int) override {
    const torch::Tensor x = torch::arange(16, torch::kFloat).reshape({4, 4}).div(16).add(0.1 * (global_step % 5));
    const torch::Tensor y = x.sum(1, true).mul(0.5).sub(0.2);
    MicroBatchLoss loss;
    loss.loss_sum = (model_->fc(x) - y).pow(2).sum();
    if (nan_steps_.count(global_step + 1)) loss.loss_sum = loss.loss_sum * std::numeric_limits<float>::quiet_NaN();
    loss.normalizer = 4;
    loss.units = 4;
    return loss;
  }
  bool HasSplit(Split split) const override { return split == Split::kValid; }
  absl::StatusOr<Evaluation> Evaluate(Split) override {
    torch::NoGradGuard no_grad;
    const torch::Tensor x = torch::ones({2, 4});
    return Evaluation{{"valid_loss", (model_->fc(x) - 1.8).pow(2).mean().item<double>()}};
  }
  SelectionMetric selection_metric() const override { return {"valid_loss", false}; }

  std::vector<torch::Tensor> Params() {
    std::vector<torch::Tensor> out;
    for (const auto& p : model_->parameters()) out.push_back(p.detach().clone());
    return out;
  }

 private:
  std::shared_ptr<Linear> model_;
  std::set<int64_t> nan_steps_;
};

TrainerConfig Config(const std::string& run_dir = "") {
  TrainerConfig c;
  c.batch_size = 4;
  c.max_epochs = 2;
  c.lr.base_lr = 0.1;
  c.run_dir = run_dir;
  c.log_every = 1;
  c.evaluate_test = false;
  return c;
}

bool SameParams(const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!torch::equal(a[i], b[i])) return false;
  }
  return true;
}

TEST(TrainerFaults, NonFiniteLossStopsNamingTheStep) {
  LinearTask task({3});
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, task, Config()).Run();
  ASSERT_FALSE(result.ok());
  EXPECT_TRUE(IsAgreedStop(result.status()));
  EXPECT_EQ(StopSignalOf(result.status()), 0);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(result.status().message(),
              HasSubstr("non-finite loss (nan) on rank 0 of 1 at global step 3 (step 3 of epoch 1); stopping"));
}

TEST(TrainerFaults, SkipLeavesTheParametersAsTheyWere) {
  // Trained to step 2, and to step 3 with a NaN at step 3: the same parameters.
  LinearTask two;
  TrainerConfig config = Config();
  config.max_steps = 2;
  comm::LocalCommunicator comm;
  ASSERT_TRUE(Trainer(comm, two, config).Run().ok());
  LinearTask three({3});
  config.max_steps = 3;
  config.on_nonfinite = NonFinitePolicy::kSkip;
  auto result = Trainer(comm, three, config).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->skipped_steps, 1);
  EXPECT_EQ(result->steps, 3);
  EXPECT_TRUE(SameParams(two.Params(), three.Params()));
  // And the run goes on: a whole run with two NaN steps trains every other step.
  LinearTask full({3, 8});
  config.max_steps = 0;
  result = Trainer(comm, full, config).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->skipped_steps, 2);
  EXPECT_EQ(result->steps, 12);
  EXPECT_TRUE(std::isfinite(result->last_valid.at("valid_loss")));
}

TEST(TrainerFaults, SkipStopsPastMaxSkipped) {
  LinearTask task({2, 4, 5});
  TrainerConfig config = Config();
  config.on_nonfinite = NonFinitePolicy::kSkip;
  config.max_skipped = 2;
  comm::LocalCommunicator comm;
  auto result = Trainer(comm, task, config).Run();
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(result.status().code(), absl::StatusCode::kAborted);
  EXPECT_THAT(result.status().message(), HasSubstr("at global step 5 (step 5 of epoch 1); stopping: 3 steps skipped, "
                                                   "more than --max_skipped=2"));
}

TEST(TrainerFaults, SignalStopsAfterTheStepWithItsCheckpointAndResumesExactly) {
  testing::TempDir dir;
  comm::LocalCommunicator comm;
  LinearTask reference;
  ASSERT_TRUE(Trainer(comm, reference, Config(dir.Join("reference"))).Run().ok());

  LinearTask task;
  TrainerConfig config = Config(dir.Join("run"));
  int polls = 0;
  config.stop_signal = [&polls] { return ++polls >= 4 ? SIGTERM : 0; };  // during step 4
  auto stopped = Trainer(comm, task, config).Run();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(StopSignalOf(stopped.status()), SIGTERM);
  EXPECT_EQ(stopped.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(stopped.status().message(),
              HasSubstr("stopped by SIGTERM after global step 4 (step 4 of epoch 1): checkpoint " + dir.Join("run") +
                        "/checkpoint-000000004.pt written; continue with --resume=auto"));
  EXPECT_TRUE(std::filesystem::exists(dir.Join("run/checkpoint-000000004.pt")));

  LinearTask resumed;
  config.stop_signal = nullptr;
  config.resume = "auto";
  auto result = Trainer(comm, resumed, config).Run();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->resumed_from, dir.Join("run/checkpoint-000000004.pt"));
  EXPECT_TRUE(SameParams(resumed.Params(), reference.Params()));
}

TEST(TrainerFaults, SignalAtAnEpochsLastStepWaitsForItsEvaluation) {
  testing::TempDir dir;
  comm::LocalCommunicator comm;
  LinearTask task;
  TrainerConfig config = Config(dir.Join("run"));
  int polls = 0;
  config.stop_signal = [&polls] { return ++polls >= 6 ? SIGINT : 0; };  // during step 6 of 6
  auto stopped = Trainer(comm, task, config).Run();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(StopSignalOf(stopped.status()), SIGINT);
  // The end-of-epoch checkpoint, written after the evaluation, is the stop's.
  EXPECT_THAT(stopped.status().message(), HasSubstr("stopped by SIGINT after global step 6 (step 0 of epoch 2)"));
  EXPECT_TRUE(std::filesystem::exists(dir.Join("run/checkpoint-000000006.pt")));
}

TEST(TrainerFaults, SignalWithoutRunDirStopsWithoutCheckpoint) {
  comm::LocalCommunicator comm;
  LinearTask task;
  TrainerConfig config = Config();
  config.stop_signal = [] { return SIGTERM; };
  auto stopped = Trainer(comm, task, config).Run();
  ASSERT_FALSE(stopped.ok());
  EXPECT_EQ(StopSignalOf(stopped.status()), SIGTERM);
  EXPECT_THAT(stopped.status().message(), HasSubstr("after global step 1 (step 1 of epoch 1): no checkpoint (no --run_dir)"));
}

}  // namespace
}  // namespace distrnn::train
