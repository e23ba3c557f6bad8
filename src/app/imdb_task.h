// `distrnn train --task=imdb`: sentiment classification of IMDB reviews, and the
// checkpoint metadata that `distrnn predict` reads back.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "app/common_flags.h"
#include "comm/communicator.h"
#include "data/vocabulary.h"
#include "model/model_config.h"

namespace distrnn::app {

// Reads the imdb flags, trains, evaluates; rank 0 writes metrics and checkpoints.
// Metadata of an imdb checkpoint: task "imdb", the classifier's architecture, the
// vocabulary (token list, id order) and the truncation length used in training.
nlohmann::json ImdbCheckpointMeta(const model::ClassifierConfig& config, const data::Vocabulary& vocab,
                                  int64_t max_len);

struct ImdbCheckpointInfo {
  model::ClassifierConfig config;
  data::Vocabulary vocab;
  int64_t max_len = 0;
};
// InvalidArgument if `path` is not a distrnn checkpoint, or one of another task.
absl::StatusOr<ImdbCheckpointInfo> ReadImdbCheckpointInfo(const std::string& path);

}  // namespace distrnn::app
