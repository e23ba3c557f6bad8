// `distrnn train --task=copy`: the copy task (data/copy_task.h) learned by a LanguageModel
// over the fixed 11-symbol vocabulary, evaluated at the train length and at a longer
// test length.
#pragma once

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "app/common_flags.h"
#include "comm/communicator.h"
#include "model/model_config.h"
#include "train/copy_trainer.h"

namespace distrnn::app {

struct CopyTaskOptions {
  RunOptions run;
  model::LanguageModelConfig lm;  // vocab_size = data::kCopyVocabSize
  train::CopyTrainConfig trainer;
};

// Reads the shared and the copy flags and validates them (InvalidArgument, one line).
absl::StatusOr<CopyTaskOptions> CopyTaskOptionsFromFlags(const RunOptions& run);

// Trains and evaluates; rank 0 prints the config table and writes metrics and checkpoints.
absl::Status RunCopyTask(comm::Communicator& comm, const CopyTaskOptions& options);

}  // namespace distrnn::app
