#include "app/lm_checkpoint.h"

#include "absl/strings/str_cat.h"
#include "app/model_budget.h"
#include "common/status_macros.h"
#include "data/word_corpus.h"
#include "train/checkpoint.h"

namespace distrnn::app {

nlohmann::json LmCheckpointMeta(const std::string& task, const model::LanguageModelConfig& config,
                                const data::Vocabulary& vocab) {
  return {
      {"task", task},
      {"cell", model::CellTypeName(config.stack.cell)},
      {"num_layers", config.stack.num_layers},
      {"hidden_size", config.stack.hidden_size},
      {"embedding_size", config.embedding_size},
      {"tie_weights", config.tie_weights},
      // The stack's module layout depends on it (recurrent_stack.h), so a model is
      // rebuilt with the dropout it was trained with.
      {"dropout", config.dropout},
      {"vocabulary", vocab.tokens()},
  };
}

absl::StatusOr<LmCheckpointInfo> ReadLmCheckpointInfo(const std::string& path) {
  ASSIGN_OR_RETURN(nlohmann::json meta, train::ReadCheckpointMeta(path));
  LmCheckpointInfo info;
  // Metadata is checksummed, not trusted: a field of another type is an error, not an exception.
  info.task = meta.contains("task") && meta["task"].is_string() ? meta["task"].get<std::string>() : "";
  if (info.task != "ptb_lm" && info.task != "char_lm") {
    return absl::InvalidArgumentError(absl::StrCat(path, " is a checkpoint of task '", info.task,
                                                   "', not of a language model (ptb_lm or char_lm)"));
  }
  try {
    ASSIGN_OR_RETURN(info.config.stack.cell, model::ParseCellType(meta.at("cell").get<std::string>()));
    info.config.stack.num_layers = meta.at("num_layers").get<int64_t>();
    info.config.stack.hidden_size = meta.at("hidden_size").get<int64_t>();
    info.config.embedding_size = meta.at("embedding_size").get<int64_t>();
    info.config.stack.input_size = info.config.embedding_size;
    info.config.tie_weights = meta.at("tie_weights").get<bool>();
    info.config.dropout = meta.value("dropout", 0.0);
    info.config.stack.dropout = info.config.dropout;
    info.vocab = data::Vocabulary(meta.at("vocabulary").get<std::vector<std::string>>());
  } catch (const nlohmann::json::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": incomplete checkpoint metadata (", e.what(), ")"));
  }
  info.config.vocab_size = info.vocab.size();
  if (info.task == "ptb_lm" && !info.vocab.Contains(data::kEos)) {  // generate starts a sentence with it
    return absl::InvalidArgumentError(absl::StrCat(path, ": the word vocabulary in the metadata has no ", data::kEos));
  }
  if (absl::Status s = info.config.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": bad language model config in metadata: ", s.message()));
  }
  RETURN_IF_ERROR(CheckModelFitsInMemory(info.config, /*copies=*/1, absl::StrCat("the model of ", path)));
  return info;
}

}  // namespace distrnn::app
