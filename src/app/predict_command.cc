#include "app/predict_command.h"

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/flags/declare.h"
#include "absl/flags/flag.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "app/imdb_task.h"
#include "common/runtime.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/imdb.h"
#include "model/classifier.h"
#include "train/checkpoint.h"

ABSL_FLAG(std::string, text, "", "predict: the review to classify (default: one review per line of stdin).");
ABSL_DECLARE_FLAG(std::string, checkpoint);  // generate_command.cc
ABSL_DECLARE_FLAG(int32_t, threads);

namespace distrnn::app {
namespace {

// Note [predict input]
// A review is tokenized as in training (data/imdb.h), cut to the checkpoint's max_len and
// mapped to ids (unknown words -> <unk>). A review with no token at all (markup only)
// becomes a single <unk>, as in training. An empty or whitespace-only review -- --text="  "
// or an empty stdin line -- is refused (exit 2, naming the stdin line): skipping it would
// shift the output against the input lines, and the TSV reader refuses empty texts too.
// Lines are answered as they are read (stdout flushed per line), so a pipe sees each
// probability at once; a trailing "\r" (CRLF input) is dropped.
class Predictor {
 public:
  static absl::StatusOr<Predictor> Load(const std::string& path) {
    ASSIGN_OR_RETURN(ImdbCheckpointInfo info, ReadImdbCheckpointInfo(path));
    if (info.config.num_classes != 1) {
      return absl::InvalidArgumentError(absl::StrCat(path, " has ", info.config.num_classes,
                                                     " classes; predict needs a binary (one-logit) classifier"));
    }
    Predictor p;
    p.info_ = std::move(info);
    RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
      p.model_ = model::Classifier(p.info_.config);
      return absl::OkStatus();
    }));
    RETURN_IF_ERROR(train::LoadCheckpoint(path, *p.model_, nullptr));
    p.model_->eval();
    return p;
  }

  // P(positive) for one review; `where` names it in errors.
  absl::StatusOr<double> Probability(const std::string& text, const std::string& where) {
    if (absl::StripAsciiWhitespace(text).empty()) return absl::InvalidArgumentError(absl::StrCat(where, ": empty review"));
    std::vector<int64_t> ids = data::EncodeTokens(data::TokenizeReview(text), info_.vocab, info_.max_len);
    if (ids.empty()) ids.push_back(data::kImdbUnkId);
    double probability = 0.0;
    RETURN_IF_ERROR(common::GuardTorch("prediction failed", [&] {
      torch::NoGradGuard no_grad;
      const int64_t n = static_cast<int64_t>(ids.size());
      torch::Tensor tokens = torch::tensor(ids, torch::kLong).unsqueeze(1);  // [T, 1]
      torch::Tensor lengths = torch::full({1}, n, torch::kLong);
      probability = torch::sigmoid(model_->forward(tokens, lengths).to(torch::kDouble)).item<double>();
      return absl::OkStatus();
    }));
    return probability;
  }

 private:
  Predictor() = default;
  ImdbCheckpointInfo info_;
  model::Classifier model_{nullptr};
};

void Print(double probability) {
  std::printf("%.6f\n", probability);
  std::fflush(stdout);
}

}  // namespace

absl::Status RunPredict() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  if (path.empty()) return absl::InvalidArgumentError("predict needs --checkpoint=FILE (an imdb checkpoint)");
  common::SetComputeThreads(absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : 1);
  ASSIGN_OR_RETURN(Predictor predictor, Predictor::Load(path));
  const std::string text = absl::GetFlag(FLAGS_text);
  if (!text.empty()) {
    ASSIGN_OR_RETURN(double probability, predictor.Probability(text, "--text"));
    Print(probability);
    return absl::OkStatus();
  }
  std::string line;
  for (int64_t number = 1; std::getline(std::cin, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    ASSIGN_OR_RETURN(double probability, predictor.Probability(line, absl::StrCat("stdin:", number)));
    Print(probability);
  }
  return absl::OkStatus();
}

}  // namespace distrnn::app
