#include "app/generate_command.h"

#include <cstdio>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "app/common_flags.h"
#include "app/lm_checkpoint.h"
#include "common/runtime.h"
#include "common/status_macros.h"
#include "common/torch_status.h"
#include "data/char_corpus.h"
#include "data/word_corpus.h"
#include "model/language_model.h"
#include "train/checkpoint.h"

ABSL_FLAG(std::string, checkpoint, "", "generate/predict: the checkpoint to load.");
ABSL_FLAG(std::string, prompt, "", "generate: text the sample continues (characters or words).");
ABSL_FLAG(int32_t, length, 200, "generate: tokens (characters or words) to sample.");
ABSL_FLAG(double, temperature, 1.0, "generate: softmax temperature (< 1 is more conservative).");
ABSL_DECLARE_FLAG(uint64_t, seed);
ABSL_DECLARE_FLAG(int32_t, threads);

namespace distrnn::app {
namespace {

// The prompt as ids; an empty prompt starts a new sentence / line.
absl::StatusOr<std::vector<int64_t>> EncodePrompt(const LmCheckpointInfo& info, const std::string& prompt) {
  if (info.task == "char_lm") {
    std::string text = prompt.empty() ? "\n" : prompt;
    return data::EncodeChars(text, info.vocab, "--prompt");
  }
  std::vector<int64_t> ids;
  if (prompt.empty()) {
    const std::optional<int64_t> eos = info.vocab.Find(data::kEos);
    if (!eos) return absl::InvalidArgumentError(absl::StrCat("the checkpoint's vocabulary has no ", data::kEos));
    ids.push_back(*eos);
  }
  for (absl::string_view word : absl::StrSplit(prompt, absl::ByAnyChar(" \t\n"), absl::SkipEmpty())) {
    std::optional<int64_t> id = info.vocab.Find(word);
    if (!id) id = info.vocab.Find(data::kUnk);
    if (!id) return absl::InvalidArgumentError(absl::StrCat("--prompt word '", word, "' is not in the vocabulary"));
    ids.push_back(*id);
  }
  return ids;
}

std::string Render(const LmCheckpointInfo& info, int64_t id) {
  const std::string& token = info.vocab.Token(id);
  if (info.task == "char_lm") return token;
  return token == data::kEos ? "\n" : token + " ";
}

}  // namespace

absl::Status RunGenerate() {
  const std::string path = absl::GetFlag(FLAGS_checkpoint);
  if (path.empty()) return absl::InvalidArgumentError("generate needs --checkpoint=FILE");
  const int32_t length = absl::GetFlag(FLAGS_length);
  const double temperature = absl::GetFlag(FLAGS_temperature);
  if (length < 1) return absl::InvalidArgumentError(absl::StrCat("--length must be positive, got ", length));
  if (!(temperature > 0.0)) {
    return absl::InvalidArgumentError(absl::StrCat("--temperature must be positive, got ", temperature));
  }
  common::SetComputeThreads(absl::GetFlag(FLAGS_threads) > 0 ? absl::GetFlag(FLAGS_threads) : 1);
  ASSIGN_OR_RETURN(LmCheckpointInfo info, ReadLmCheckpointInfo(path));
  ASSIGN_OR_RETURN(std::vector<int64_t> prompt, EncodePrompt(info, absl::GetFlag(FLAGS_prompt)));

  model::LanguageModel model{nullptr};
  RETURN_IF_ERROR(common::GuardTorch("cannot build the model", [&] {
    model = model::LanguageModel(info.config);
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(train::LoadCheckpoint(path, *model, nullptr));

  std::string text = absl::GetFlag(FLAGS_prompt);
  if (info.task == "ptb_lm" && !text.empty()) text += " ";
  RETURN_IF_ERROR(common::GuardTorch("sampling failed", [&] {
    torch::NoGradGuard no_grad;
    model->eval();
    auto generator = at::make_generator<at::CPUGeneratorImpl>(absl::GetFlag(FLAGS_seed));
    torch::Tensor input = torch::tensor(prompt, torch::kLong).unsqueeze(1);  // [T, 1]
    model::RecurrentState state;
    for (int32_t i = 0; i < length; ++i) {
      auto [logits, next] = model->forward(input, state);
      state = next;
      torch::Tensor probs = torch::softmax(logits[-1][0].to(torch::kDouble) / temperature, 0);
      const int64_t id = at::multinomial(probs, 1, false, generator).item<int64_t>();
      text += Render(info, id);
      input = torch::full({1, 1}, id, torch::kLong);
    }
    return absl::OkStatus();
  }));
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  return absl::OkStatus();
}

}  // namespace distrnn::app
