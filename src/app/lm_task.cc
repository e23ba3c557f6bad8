#include "app/lm_task.h"

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
#include "data/char_corpus.h"
#include "data/data_dir.h"
#include "data/word_corpus.h"
#include "model/language_model.h"
#include "train/checkpoint.h"

ABSL_FLAG(int32_t, num_steps, 20, "Truncated-BPTT window length.");
ABSL_FLAG(double, lr_decay, 0.5, "Learning-rate decay factor.");
ABSL_FLAG(int32_t, decay_start_epoch, 4, "zaremba schedule: epochs at the initial lr (Zaremba's max_epoch).");
ABSL_FLAG(std::string, lr_schedule, "zaremba", "zaremba (fixed decay after --decay_start_epoch) or plateau.");
ABSL_FLAG(std::string, loss_reduction, "sum_steps_mean_batch",
          "sum_steps_mean_batch (Zaremba: sum over steps, mean over the global batch) or mean_tokens.");
ABSL_FLAG(bool, tie_weights, false, "Share the embedding and decoder matrices (needs embedding == hidden).");
ABSL_FLAG(std::string, text_file, "", "char_lm: UTF-8 text to model (default <data>/tinyshakespeare/input.txt).");
ABSL_FLAG(double, valid_fraction, 0.1,
          "Held out for validation: char_lm, the last fraction of the text; imdb, a seeded fraction of train.");
ABSL_FLAG(std::string, init_from, "", "Continue from this LM checkpoint (fine-tuning; the vocabulary must match).");

namespace distrnn::app {

absl::StatusOr<LmTaskOptions> LmTaskOptionsFromFlags(const RunOptions& run) {
  LmTaskOptions options;
  options.run = run;
  ASSIGN_OR_RETURN(options.lm.stack, StackConfigFromFlags());
  if (options.lm.stack.bidirectional) {
    return absl::InvalidArgumentError("--bidirectional is for classification; a language model reads left to right");
  }
  model::LanguageModelConfig& lm = options.lm;
  lm.embedding_size = lm.stack.input_size;
  lm.dropout = absl::GetFlag(FLAGS_dropout);
  lm.init_scale = absl::GetFlag(FLAGS_init_scale);
  lm.tie_weights = absl::GetFlag(FLAGS_tie_weights);
  lm.vocab_size = 1;  // until the data is read; validated again then
  RETURN_IF_ERROR(lm.Validate());

  train::LmTrainConfig& t = options.trainer;
  t.batch_size = absl::GetFlag(FLAGS_batch_size);
  t.num_steps = absl::GetFlag(FLAGS_num_steps);
  t.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  t.max_epochs = absl::GetFlag(FLAGS_max_epochs);
  t.max_steps = absl::GetFlag(FLAGS_max_steps);
  ASSIGN_OR_RETURN(t.lr.kind, train::ParseLrSchedule(absl::GetFlag(FLAGS_lr_schedule)));
  t.lr.base_lr = absl::GetFlag(FLAGS_lr);
  t.lr.decay = absl::GetFlag(FLAGS_lr_decay);
  t.lr.decay_start = absl::GetFlag(FLAGS_decay_start_epoch);
  t.clip_norm = absl::GetFlag(FLAGS_clip_norm);
  ASSIGN_OR_RETURN(t.loss_reduction, train::ParseLossReduction(absl::GetFlag(FLAGS_loss_reduction)));
  SetSharedTrainerFields(run, t);
  RETURN_IF_ERROR(t.Validate());

  options.text_file = absl::GetFlag(FLAGS_text_file);
  options.valid_fraction = absl::GetFlag(FLAGS_valid_fraction);
  if (!(options.valid_fraction > 0.0 && options.valid_fraction < 1.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--valid_fraction must be in (0, 1), got ", options.valid_fraction));
  }
  options.init_from = absl::GetFlag(FLAGS_init_from);
  return options;
}

namespace {

// The token streams of either LM task; test is empty for char_lm.
struct LmData {
  data::Vocabulary vocab;
  std::vector<int64_t> train, valid, test;
  std::string source;
};

absl::StatusOr<LmData> LoadLmData(const LmTaskOptions& o, const data::Vocabulary* fixed_vocab) {
  LmData d;
  if (o.run.task == "ptb_lm") {
    ASSIGN_OR_RETURN(std::string dir, data::ResolveDataDir(o.run.data_dir));
    d.source = dir + "/ptb";
    ASSIGN_OR_RETURN(data::WordCorpus corpus, data::LoadPtbCorpus(d.source));
    if (fixed_vocab != nullptr && fixed_vocab->tokens() != corpus.vocab.tokens()) {
      return absl::InvalidArgumentError(absl::StrCat("--init_from checkpoint's vocabulary differs from ", d.source));
    }
    d.vocab = std::move(corpus.vocab);
    d.train = std::move(corpus.train);
    d.valid = std::move(corpus.valid);
    d.test = std::move(corpus.test);
    return d;
  }
  d.source = o.text_file;
  if (d.source.empty()) {
    ASSIGN_OR_RETURN(std::string dir, data::ResolveDataDir(o.run.data_dir));
    d.source = dir + "/tinyshakespeare/input.txt";
  }
  data::CharCorpus corpus;
  if (fixed_vocab != nullptr) {
    ASSIGN_OR_RETURN(corpus, data::LoadCharCorpusWithVocabulary(d.source, o.valid_fraction, *fixed_vocab));
  } else {
    ASSIGN_OR_RETURN(corpus, data::LoadCharCorpus(d.source, o.valid_fraction));
  }
  d.vocab = std::move(corpus.vocab);
  d.train = std::move(corpus.train);
  d.valid = std::move(corpus.valid);
  return d;
}

ConfigRows DescribeRun(const LmTaskOptions& o, const comm::Communicator& comm, const LmData& data,
                       int64_t parameters) {
  const auto& lm = o.lm;
  const auto& t = o.trainer;
  return {
      {"task", o.run.task},
      {"data", data.source},
      {"train/valid/test tokens", absl::StrCat(data.train.size(), " / ", data.valid.size(), " / ", data.test.size())},
      {"vocabulary", absl::StrCat(data.vocab.size())},
      {"model", absl::StrCat(model::CellTypeName(lm.stack.cell), " ", lm.stack.num_layers, "x", lm.stack.hidden_size,
                             ", embedding ", lm.embedding_size, lm.tie_weights ? ", tied" : "")},
      {"parameters", absl::StrCat(parameters)},
      {"init", o.init_from.empty() ? absl::StrCat("uniform +-", lm.init_scale) : o.init_from},
      {"dropout", absl::StrCat(lm.dropout)},
      {"global batch / bptt", absl::StrCat(t.batch_size, " / ", t.num_steps)},
      {"lr / schedule", absl::StrCat(t.lr.base_lr, ", ",
                                     t.lr.kind == train::LrScheduleKind::kZaremba
                                         ? absl::StrCat("zaremba: x", t.lr.decay, " per epoch after epoch ", t.lr.decay_start)
                                         : absl::StrCat("plateau: x", t.lr.decay, " when valid does not improve"))},
      {"epochs / max steps", absl::StrCat(t.max_epochs, " / ", t.max_steps == 0 ? "none" : absl::StrCat(t.max_steps))},
      {"clip norm / loss", absl::StrCat(t.clip_norm, " / ", train::LossReductionName(t.loss_reduction))},
      {"process", DescribeProcess(o.run, comm)},
      {"seed", absl::StrCat(o.run.seed)},
      {"run dir", t.run_dir.empty() ? "(none)" : t.run_dir},
  };
}

}  // namespace

absl::Status RunLmTask(comm::Communicator& comm, const LmTaskOptions& options_in) {
  LmTaskOptions options = options_in;
  if (options.trainer.batch_size % comm.world_size() != 0) {
    return absl::InvalidArgumentError(absl::StrCat("--batch_size ", options.trainer.batch_size,
                                                   " (the global batch) is not divisible by the world size ",
                                                   comm.world_size()));
  }
  std::optional<LmCheckpointInfo> init;
  if (!options.init_from.empty()) {
    ASSIGN_OR_RETURN(init, ReadLmCheckpointInfo(options.init_from));
    if (init->task != options.run.task) {
      return absl::InvalidArgumentError(absl::StrCat("--init_from ", options.init_from, " is a ", init->task,
                                                     " checkpoint, not ", options.run.task));
    }
    // The architecture comes from the checkpoint; dropout and training flags from now.
    const double dropout = options.lm.dropout;
    options.lm = init->config;
    options.lm.dropout = dropout;
    options.lm.stack.dropout = dropout;
  }
  ASSIGN_OR_RETURN(LmData data, LoadLmData(options, init ? &init->vocab : nullptr));
  options.lm.vocab_size = data.vocab.size();
  RETURN_IF_ERROR(options.lm.Validate());

  model::LanguageModel model{nullptr};
  RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
    torch::manual_seed(options.run.seed);
    model = model::LanguageModel(options.lm);
    return absl::OkStatus();
  }));
  if (init) RETURN_IF_ERROR(train::LoadCheckpoint(options.init_from, *model, nullptr));
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  common::Log0(FormatConfigTable(DescribeRun(options, comm, data, parameters)));

  train::LmTrainer trainer(comm, model, options.trainer,
                           {&data.train, &data.valid, data.test.empty() ? nullptr : &data.test},
                           LmCheckpointMeta(options.run.task, options.lm, data.vocab));
  ASSIGN_OR_RETURN(train::LmResult result, trainer.Run());
  const std::string test = result.test_ppl > 0 ? absl::StrFormat(" test ppl %.2f |", result.test_ppl) : "";
  common::Log0(absl::StrFormat(
      "| done | epochs %d | steps %d | best valid ppl %.2f (%.4f nats/token) |%s peak memory %.0f MiB |", result.epochs,
      result.steps, result.best_valid_ppl, std::log(result.best_valid_ppl), test, common::PeakRssMiB()));
  return absl::OkStatus();
}

}  // namespace distrnn::app
