// What an LM checkpoint's metadata holds (task, architecture, vocabulary), so that
// `generate` and `--init_from` rebuild the same model without the training flags.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "data/vocabulary.h"
#include "model/model_config.h"

namespace distrnn::app {

nlohmann::json LmCheckpointMeta(const std::string& task, const model::LanguageModelConfig& config,
                                const data::Vocabulary& vocab);

struct LmCheckpointInfo {
  std::string task;  // ptb_lm | char_lm
  model::LanguageModelConfig config;
  data::Vocabulary vocab;
};
// Error if the file is not a distrnn checkpoint or not of a language-model task.
absl::StatusOr<LmCheckpointInfo> ReadLmCheckpointInfo(const std::string& path);

}  // namespace distrnn::app
