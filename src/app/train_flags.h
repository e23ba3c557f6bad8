// Typed configuration of `distrnn train`, built from the flags and validated at once.
// Libraries never read flags; only src/app does.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "model/model_config.h"
#include "train/lm_trainer.h"

namespace distrnn::app {

struct RunOptions {
  std::string task;      // ptb_lm
  std::string data_dir;  // resolved
  std::string comm;      // auto | local | mpi
  int threads = 0;       // 0: cores of this process / ranks on the node
  uint64_t seed = 0;
  double collective_timeout_s = 0.0;  // MPI watchdog (0: off)
};

struct TrainOptions {
  RunOptions run;
  model::LanguageModelConfig lm;  // vocab_size filled in from the data
  train::LmTrainConfig trainer;
};

// Reads every train flag into TrainOptions and validates what does not need the data.
absl::StatusOr<TrainOptions> TrainOptionsFromFlags();

}  // namespace distrnn::app
