#include "app/task_registry.h"

#include <cmath>
#include <optional>

#include <torch/utils.h>

#include "absl/flags/flag.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/lm_checkpoint.h"
#include "app/model_budget.h"
#include "common/logging.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/char_corpus.h"
#include "data/data_dir.h"
#include "data/word_corpus.h"
#include "model/language_model.h"
#include "model/vocabulary_growth.h"
#include "train/checkpoint.h"
#include "train/lm_train_task.h"

ABSL_FLAG(int32_t, num_steps, 20, "Truncated-BPTT window length.");
ABSL_FLAG(std::string, loss_reduction, "sum_steps_mean_batch",
          "sum_steps_mean_batch (Zaremba: sum over steps, mean over the global batch) or mean_tokens.");
ABSL_FLAG(bool, fused_loss, false,
          "LM: compute the decoder and the cross entropy chunk by chunk of tokens, never holding all logits (for "
          "large vocabularies; on a 2-core CPU it saved no memory on PTB and was slower on ptb_medium); false: "
          "all logits at once, the softmax gradient formed in place of them (faster).");
ABSL_FLAG(bool, tie_weights, false, "Share the embedding and decoder matrices (needs embedding == hidden).");
ABSL_FLAG(std::string, text_file, "", "char_lm: UTF-8 text to model (default <data>/tinyshakespeare/input.txt).");
ABSL_FLAG(double, valid_fraction, 0.1,
          "Held out for validation: char_lm, the last fraction of the text; imdb, a seeded fraction of train.");
ABSL_FLAG(std::string, init_from, "",
          "Start from this LM checkpoint's weights (fine-tuning; ptb_lm: the same vocabulary; char_lm: new "
          "characters grow it).");

namespace distrnn::app {
namespace {

// The token streams of either LM task; test is empty for char_lm.
struct LmData {
  data::Vocabulary vocab;
  std::vector<int64_t> train, valid, test;
  std::string source;
};

class PreparedLmTask : public PreparedTask {
 public:
  absl::StatusOr<std::unique_ptr<train::TrainTask>> Build(comm::Communicator& comm, const train::Shard& shard,
                                                         ConfigRows& rows) override;
  std::string Summary(const train::TrainResult& result) const override;

  RunOptions run;
  model::LanguageModelConfig lm;  // vocab_size filled in from the data
  train::LmTaskConfig task;
  std::string text_file;          // char_lm ("" = <data>/tinyshakespeare/input.txt)
  double valid_fraction = 0.1;    // char_lm: last fraction of the text
  std::string init_from;

 private:
  absl::StatusOr<LmData> LoadData(const data::Vocabulary* fixed_vocab) const;
  LmData data_;  // owned here: the task keeps pointers into it
};

absl::StatusOr<LmData> PreparedLmTask::LoadData(const data::Vocabulary* fixed_vocab) const {
  LmData d;
  if (run.task == "ptb_lm") {
    ASSIGN_OR_RETURN(std::string dir, data::ResolveDataDir(run.data_dir));
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
  d.source = text_file;
  if (d.source.empty()) {
    ASSIGN_OR_RETURN(std::string dir, data::ResolveDataDir(run.data_dir));
    d.source = dir + "/tinyshakespeare/input.txt";
  }
  // Fine-tuning: the pretrained ids first, then this text's new characters
  // (model/vocabulary_growth.h grows the parameters to match).
  ASSIGN_OR_RETURN(data::CharCorpus corpus,
                   fixed_vocab != nullptr ? data::LoadCharCorpusGrowingVocabulary(d.source, valid_fraction, *fixed_vocab)
                                          : data::LoadCharCorpus(d.source, valid_fraction));
  d.vocab = std::move(corpus.vocab);
  d.train = std::move(corpus.train);
  d.valid = std::move(corpus.valid);
  return d;
}

absl::StatusOr<std::unique_ptr<train::TrainTask>> PreparedLmTask::Build(comm::Communicator& comm,
                                                                       const train::Shard& shard, ConfigRows& rows) {
  std::optional<LmCheckpointInfo> init;
  if (!init_from.empty()) {
    ASSIGN_OR_RETURN(init, ReadLmCheckpointInfo(init_from));
    if (init->task != run.task) {
      return absl::InvalidArgumentError(
          absl::StrCat("--init_from ", init_from, " is a ", init->task, " checkpoint, not ", run.task));
    }
    // The architecture comes from the checkpoint; dropout from now.
    const double dropout = lm.dropout;
    lm = init->config;
    lm.dropout = dropout;
    lm.stack.dropout = dropout;
  }
  ASSIGN_OR_RETURN(data_, LoadData(init ? &init->vocab : nullptr));
  lm.vocab_size = data_.vocab.size();
  RETURN_IF_ERROR(lm.Validate());
  RETURN_IF_ERROR(CheckModelFitsInMemory(lm, /*copies=*/2, "the model"));  // Note [model size check]
  model::LanguageModel model{nullptr};
  RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
    torch::manual_seed(run.seed);
    model = model::LanguageModel(lm);
    return absl::OkStatus();
  }));
  if (init && data_.vocab.size() == init->vocab.size()) {
    RETURN_IF_ERROR(train::LoadCheckpoint(init_from, *model, nullptr));
  } else if (init) {
    // New characters: load into the pretrained shape, then copy into the grown model
    // (the new rows keep their seeded uniform initialisation).
    model::LanguageModelConfig pretrained_config = lm;
    pretrained_config.vocab_size = init->vocab.size();
    model::LanguageModel pretrained{nullptr};
    RETURN_IF_ERROR(common::GuardTorch("cannot build the pretrained model", [&] {
      pretrained = model::LanguageModel(pretrained_config);
      return absl::OkStatus();
    }));
    RETURN_IF_ERROR(train::LoadCheckpoint(init_from, *pretrained, nullptr));
    RETURN_IF_ERROR(model::CopyGrowingVocabulary(pretrained, model));
    std::string added;
    for (int64_t id = init->vocab.size(); id < data_.vocab.size(); ++id) {
      absl::StrAppend(&added, added.empty() ? "" : " ", "'", absl::Utf8SafeCHexEscape(data_.vocab.Token(id)), "'");
    }
    common::Log0(absl::StrCat("[init] ", data_.source, " has ", data_.vocab.size() - init->vocab.size(),
                              " characters the pretrained model lacks (", added,
                              "): the vocabulary grows from ", init->vocab.size(), " to ", data_.vocab.size(),
                              "; their embedding and output rows start uniform in +-", lm.init_scale));
  }
  int64_t parameters = 0;
  for (const auto& p : model->parameters()) parameters += p.numel();
  rows.push_back({"data", data_.source});
  rows.push_back({"train/valid/test tokens",
                  absl::StrCat(data_.train.size(), " / ", data_.valid.size(), " / ", data_.test.size())});
  rows.push_back({"vocabulary", absl::StrCat(data_.vocab.size())});
  rows.push_back({"model", absl::StrCat(model::CellTypeName(lm.stack.cell), " ", lm.stack.num_layers, "x",
                                        lm.stack.hidden_size, ", embedding ", lm.embedding_size,
                                        lm.tie_weights ? ", tied" : "", ", ", parameters, " parameters",
                                        KernelText(lm.stack))});
  rows.push_back({"init / dropout", absl::StrCat(init_from.empty() ? InitText(lm) : init_from,
                                                 " / ", lm.dropout)});
  rows.push_back({"bptt / loss", absl::StrCat(task.num_steps, " / ", train::LossReductionName(task.loss_reduction),
                                              task.fused_loss ? ", decoder + loss chunked" : ", decoder + loss fused")});
  const bool root = comm.is_root();
  train::LmSplits splits{&data_.train, root ? &data_.valid : nullptr,
                         root && !data_.test.empty() ? &data_.test : nullptr};
  ASSIGN_OR_RETURN(auto built, train::LmTrainTask::Create(model, task, splits, shard,
                                                          LmCheckpointMeta(run.task, lm, data_.vocab)));
  return std::unique_ptr<train::TrainTask>(std::move(built));
}

std::string PreparedLmTask::Summary(const train::TrainResult& result) const {
  std::string text;
  if (result.best_valid.count("valid_loss")) {
    const double loss = result.best_valid.at("valid_loss");
    text = absl::StrFormat("best valid ppl %.2f (%.4f nats/token)", std::exp(loss), loss);
  }
  if (result.test.count("test_ppl")) absl::StrAppendFormat(&text, " | test ppl %.2f", result.test.at("test_ppl"));
  return text;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PreparedTask>> PrepareLmTask(const RunOptions& run) {
  auto prepared = std::make_unique<PreparedLmTask>();
  prepared->run = run;
  model::LanguageModelConfig& lm = prepared->lm;
  ASSIGN_OR_RETURN(lm, LanguageModelConfigFromFlags("a language model"));
  lm.tie_weights = absl::GetFlag(FLAGS_tie_weights);
  RETURN_IF_ERROR(lm.Validate());  // again once the vocabulary is known

  train::LmTaskConfig& t = prepared->task;
  t.batch_size = absl::GetFlag(FLAGS_batch_size);
  t.num_steps = absl::GetFlag(FLAGS_num_steps);
  t.eval_batch_size = absl::GetFlag(FLAGS_eval_batch_size);
  ASSIGN_OR_RETURN(t.loss_reduction, train::ParseLossReduction(absl::GetFlag(FLAGS_loss_reduction)));
  t.seed = run.seed;
  t.fused_loss = absl::GetFlag(FLAGS_fused_loss);
  RETURN_IF_ERROR(t.Validate());

  prepared->text_file = absl::GetFlag(FLAGS_text_file);
  prepared->valid_fraction = absl::GetFlag(FLAGS_valid_fraction);
  if (!(prepared->valid_fraction > 0.0 && prepared->valid_fraction < 1.0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--valid_fraction must be in (0, 1), got ", prepared->valid_fraction));
  }
  prepared->init_from = absl::GetFlag(FLAGS_init_from);
  return std::unique_ptr<PreparedTask>(std::move(prepared));
}

}  // namespace distrnn::app
