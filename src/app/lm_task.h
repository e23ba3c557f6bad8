// `distrnn train --task=ptb_lm|char_lm`: a LanguageModel trained with truncated BPTT on
// PTB words or on the characters of any UTF-8 text file.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "app/common_flags.h"
#include "comm/communicator.h"
#include "model/model_config.h"
#include "train/lm_trainer.h"

namespace distrnn::app {

struct LmTaskOptions {
  RunOptions run;
  model::LanguageModelConfig lm;  // vocab_size filled in from the data
  train::LmTrainConfig trainer;
  std::string text_file;          // char_lm: the text ("" = <data>/tinyshakespeare/input.txt)
  double valid_fraction = 0.1;    // char_lm: last fraction of the text for validation
  std::string init_from;          // checkpoint to continue from (fine-tuning)
};

// Reads the shared and the LM flags and validates what does not need the data.
absl::StatusOr<LmTaskOptions> LmTaskOptionsFromFlags(const RunOptions& run);

absl::Status RunLmTask(comm::Communicator& comm, const LmTaskOptions& options);

}  // namespace distrnn::app
