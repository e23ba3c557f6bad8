#include "app/copy_task.h"

#include <torch/utils.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/config_table.h"
#include "app/lm_checkpoint.h"
#include "app/run_context.h"
#include "common/logging.h"
#include "common/runtime.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/copy_task.h"
#include "model/language_model.h"

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
ABSL_FLAG(int64_t, steps_per_epoch, 0, "copy: optimizer steps per epoch (0: --copy_train_samples / --batch_size).");
ABSL_FLAG(double, clip_value, 0.0, "Clamp every gradient element to [-v, v] before --clip_norm (0: off).");

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

ConfigRows DescribeRun(const CopyTaskOptions& o, const comm::Communicator& comm, int64_t parameters) {
  const auto& lm = o.lm;
  const auto& t = o.trainer;
  return {
      {"task", "copy"},
      {"train sequences", SpecText(t.train_spec)},
      {"test sequences", SpecText(t.test_spec)},
      {"samples train / held out", absl::StrCat(t.train_samples, " / ", t.eval_samples)},
      {"model", absl::StrCat(model::CellTypeName(lm.stack.cell), " ", lm.stack.num_layers, "x", lm.stack.hidden_size,
                             ", embedding ", lm.embedding_size, ", vocabulary ", lm.vocab_size)},
      {"parameters", absl::StrCat(parameters)},
      {"init / dropout", absl::StrCat("uniform +-", lm.init_scale, " / ", lm.dropout)},
      {"global batch / steps per epoch", absl::StrCat(t.batch_size, " / ", t.EffectiveStepsPerEpoch())},
      {"epochs / max steps", absl::StrCat(t.max_epochs, " / ", t.max_steps == 0 ? "none" : absl::StrCat(t.max_steps))},
      {"optimizer", absl::StrCat("adam, lr ", t.lr)},
      {"clip value / norm", absl::StrCat(t.clip_value == 0 ? "off" : absl::StrCat(t.clip_value), " / ",
                                         t.clip_norm == 0 ? "off" : absl::StrCat(t.clip_norm))},
      {"loss", "cross entropy, mean over all T*G positions"},
      {"stop at accuracy", t.stop_accuracy > 0 ? absl::StrCat(t.stop_accuracy) : "off"},
      {"process", DescribeProcess(o.run, comm)},
      {"seed", absl::StrCat(o.run.seed)},
      {"run dir", t.run_dir.empty() ? "(none)" : t.run_dir},
  };
}

}  // namespace

absl::StatusOr<CopyTaskOptions> CopyTaskOptionsFromFlags(const RunOptions& run) {
  CopyTaskOptions options;
  options.run = run;
  ASSIGN_OR_RETURN(options.lm.stack, StackConfigFromFlags());
  if (options.lm.stack.bidirectional) {
    return absl::InvalidArgumentError("--bidirectional is for classification; the copy task reads left to right");
  }
  model::LanguageModelConfig& lm = options.lm;
  lm.vocab_size = data::kCopyVocabSize;
  lm.embedding_size = lm.stack.input_size;
  lm.dropout = absl::GetFlag(FLAGS_dropout);
  lm.init_scale = absl::GetFlag(FLAGS_init_scale);
  lm.tie_weights = false;
  RETURN_IF_ERROR(lm.Validate());

  train::CopyTrainConfig& t = options.trainer;
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
  t.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  t.max_steps = absl::GetFlag(FLAGS_max_steps);
  t.lr = absl::GetFlag(FLAGS_lr);
  t.clip_value = absl::GetFlag(FLAGS_clip_value);
  t.clip_norm = absl::GetFlag(FLAGS_clip_norm);
  t.stop_accuracy = absl::GetFlag(FLAGS_copy_stop_accuracy);
  SetSharedTrainerFields(run, t);
  RETURN_IF_ERROR(t.Validate());
  return options;
}

absl::Status RunCopyTask(comm::Communicator& comm, const CopyTaskOptions& options) {
  if (options.trainer.batch_size % comm.world_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", options.trainer.batch_size,
                                                   " (the global batch) is not divisible by the world size ",
                                                   comm.world_size()));
  }
  model::LanguageModel model{nullptr};
  RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
    torch::manual_seed(options.run.seed);
    model = model::LanguageModel(options.lm);
    return absl::OkStatus();
  }));
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  common::Log0(FormatConfigTable(DescribeRun(options, comm, parameters)));

  train::CopyTrainer trainer(comm, model, options.trainer,
                             LmCheckpointMeta("copy", options.lm, data::CopyTaskVocabulary()));
  ASSIGN_OR_RETURN(train::CopyResult result, trainer.Run());
  const auto& a = result.train_length;
  const auto& b = result.test_length;
  common::Log0(absl::StrFormat(
      "| done | epochs %d | steps %d | train length: step acc %.4f, seq acc %.4f | test length: step acc %.4f, "
      "seq acc %.4f | peak memory %.0f MiB |",
      result.epochs, result.steps, a.step_accuracy, a.sequence_accuracy, b.step_accuracy, b.sequence_accuracy,
      common::PeakRssMiB()));
  return absl::OkStatus();
}

}  // namespace distrnn::app
