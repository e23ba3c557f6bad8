#include "app/task_registry.h"

#include <torch/utils.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/lm_checkpoint.h"
#include "app/model_budget.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/copy_task.h"
#include "model/language_model.h"
#include "train/copy_train_task.h"

// A sample is K random symbols, P delimiters '$', then L blanks; the target is K + P
// blanks, then the first L symbols. Train and test share P; the test K and L are the
// longer "K + M" sequences the trained model is asked to generalise to.
ABSL_FLAG(int32_t, copy_train_symbols, 10, "copy: K, random symbols per training sequence.");
ABSL_FLAG(int32_t, copy_test_symbols, 20, "copy: K + M, random symbols per test sequence (the longer test length).");
ABSL_FLAG(int32_t, copy_delimiters, 1, "copy: P, delimiters '$' between the symbols and the copy (the delay), >= 0.");
ABSL_FLAG(int32_t, copy_train_length, 10,
          "copy: L, how many of the first symbols a training target reproduces (1 <= L <= K).");
ABSL_FLAG(int32_t, copy_test_length, 20,
          "copy: L at test length, how many of the first symbols a test target reproduces (1 <= L <= K + M).");
ABSL_FLAG(int64_t, copy_train_samples, 100000, "copy: training sample indices cycle over [0, N).");
ABSL_FLAG(int64_t, copy_test_samples, 1000,
          "copy: held-out samples scored at train and at test length (indices after the training ones).");
ABSL_FLAG(double, copy_stop_accuracy, 0.0,
          "copy: stop after an epoch whose train-length whole-sequence accuracy reaches this (0: never).");
ABSL_FLAG(int32_t, copy_curriculum_start, 0,
          "copy: a curriculum over K starting at this many symbols, grown as the held-out copy is learnt (0: none).");
ABSL_FLAG(int32_t, copy_curriculum_step, 5, "copy: how many symbols the curriculum adds when a level is learnt.");
ABSL_FLAG(double, copy_curriculum_threshold, 0.95,
          "copy: held-out copied-symbol accuracy at the level's K that moves the curriculum on (0: every epoch).");
ABSL_FLAG(double, copy_curriculum_mix, 0.25,
          "copy: share of training steps at a uniform random K in [1, --copy_train_symbols] under the curriculum.");
ABSL_FLAG(int64_t, steps_per_epoch, 0, "copy: optimizer steps per epoch (0: --copy_train_samples / --batch_size).");

namespace distrnn::app {
namespace {

absl::Status ValidateSpec(const data::CopyTaskSpec& spec, absl::string_view which, absl::string_view flags) {
  absl::Status status = spec.Validate();
  if (status.ok()) return status;
  return absl::InvalidArgumentError(absl::StrCat(which, " sequences (", flags, "): ", status.message()));
}

std::string SpecText(const data::CopyTaskSpec& s) {
  return absl::StrCat("K=", s.symbols, " P=", s.delimiters, " L=", s.copy_length, " (T=", s.length(), ")");
}

nlohmann::json SpecJson(const data::CopyTaskSpec& s) {
  return {{"symbols", s.symbols}, {"delimiters", s.delimiters}, {"copy_length", s.copy_length}};
}

class PreparedCopyTask : public PreparedTask {
 public:
  absl::StatusOr<std::unique_ptr<train::TrainTask>> Build(comm::Communicator& comm, const train::Shard& shard,
                                                         ConfigRows& rows) override {
    model::LanguageModel model{nullptr};
    RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
      torch::manual_seed(run.seed);
      model = model::LanguageModel(lm);
      return absl::OkStatus();
    }));
    int64_t parameters = 0;
    for (const auto& p : model->parameters()) parameters += p.numel();
    const auto& t = task;
    rows.push_back({"train / test sequences", absl::StrCat(SpecText(t.train_spec), " / ", SpecText(t.test_spec))});
    rows.push_back({"samples train / held out", absl::StrCat(t.train_samples, " / ", t.eval_samples)});
    rows.push_back({"model", absl::StrCat(model::CellTypeName(lm.stack.cell), " ", lm.stack.num_layers, "x",
                                          lm.stack.hidden_size, ", embedding ", lm.embedding_size, ", vocabulary ",
                                          lm.vocab_size, ", ", parameters, " parameters", KernelText(lm.stack))});
    rows.push_back({"init / dropout", absl::StrCat(InitText(lm), " / ", lm.dropout)});
    rows.push_back({"steps per epoch / loss", absl::StrCat(t.EffectiveStepsPerEpoch(),
                                                           " / cross entropy, mean over all T*G positions")});
    rows.push_back({"stop at accuracy", t.stop_accuracy > 0 ? absl::StrCat(t.stop_accuracy) : "off"});
    rows.push_back({"curriculum over K",
                    t.curriculum.enabled()
                        ? absl::StrCat("from K=", t.curriculum.start, ", +", t.curriculum.step, " when ",
                                       100 * t.curriculum.threshold, "% of the held-out copy is right; ",
                                       100 * t.curriculum.mix, "% of steps at a random K in [1, ",
                                       t.train_spec.symbols, "]")
                        : "off"});
    nlohmann::json meta = LmCheckpointMeta("copy", lm, data::CopyTaskVocabulary());
    meta["train_spec"] = SpecJson(t.train_spec);
    meta["test_spec"] = SpecJson(t.test_spec);
    ASSIGN_OR_RETURN(auto built, train::CopyTrainTask::Create(model, task, shard, std::move(meta)));
    return std::unique_ptr<train::TrainTask>(std::move(built));
  }

  std::string Summary(const train::TrainResult& r) const override {
    const train::Evaluation& e = r.last_valid;
    if (!e.count("valid_step_accuracy")) return "no evaluation";
    return absl::StrFormat(
        "train length: step acc %.4f, seq acc %.4f | test length: step acc %.4f, seq acc %.4f",
        e.at("valid_step_accuracy"), e.at("valid_sequence_accuracy"), e.at("test_length_step_accuracy"),
        e.at("test_length_sequence_accuracy"));
  }

  RunOptions run;
  model::LanguageModelConfig lm;  // vocab_size = data::kCopyVocabSize
  train::CopyTaskConfig task;
};

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedTask>> PrepareCopyTask(const RunOptions& run) {
  auto prepared = std::make_unique<PreparedCopyTask>();
  prepared->run = run;
  model::LanguageModelConfig& lm = prepared->lm;
  ASSIGN_OR_RETURN(lm, LanguageModelConfigFromFlags("the copy task"));
  lm.vocab_size = data::kCopyVocabSize;
  RETURN_IF_ERROR(lm.Validate());
  RETURN_IF_ERROR(CheckModelFitsInMemory(lm, /*copies=*/2, "the model"));  // Note [model size check]

  train::CopyTaskConfig& t = prepared->task;
  t.train_spec = {absl::GetFlag(FLAGS_copy_train_symbols), absl::GetFlag(FLAGS_copy_delimiters),
                  absl::GetFlag(FLAGS_copy_train_length)};
  t.test_spec = {absl::GetFlag(FLAGS_copy_test_symbols), absl::GetFlag(FLAGS_copy_delimiters),
                 absl::GetFlag(FLAGS_copy_test_length)};
  RETURN_IF_ERROR(ValidateSpec(t.train_spec, "train", "--copy_train_symbols, --copy_delimiters, --copy_train_length"));
  RETURN_IF_ERROR(ValidateSpec(t.test_spec, "test", "--copy_test_symbols, --copy_delimiters, --copy_test_length"));
  t.seed = run.seed;
  t.train_samples = absl::GetFlag(FLAGS_copy_train_samples);
  t.eval_samples = absl::GetFlag(FLAGS_copy_test_samples);
  t.batch_size = absl::GetFlag(FLAGS_batch_size);
  t.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  t.steps_per_epoch = absl::GetFlag(FLAGS_steps_per_epoch);
  t.stop_accuracy = absl::GetFlag(FLAGS_copy_stop_accuracy);
  t.curriculum.start = absl::GetFlag(FLAGS_copy_curriculum_start);
  t.curriculum.step = absl::GetFlag(FLAGS_copy_curriculum_step);
  t.curriculum.threshold = absl::GetFlag(FLAGS_copy_curriculum_threshold);
  t.curriculum.mix = absl::GetFlag(FLAGS_copy_curriculum_mix);
  RETURN_IF_ERROR(t.Validate());
  return std::unique_ptr<PreparedTask>(std::move(prepared));
}

}  // namespace distrnn::app
