// distrnn: data-parallel recurrent network training.
//
//   distrnn train [--flagfile=configs/ptb_small.flags] [--flag=value ...]
//
// Exit codes: 0 ok, 2 bad input (flags, data, checkpoints), 3 a non-finite loss or
// gradient (--on_nonfinite), 128 + signal after a stop signal's checkpoint (143 SIGTERM,
// 130 SIGINT), 1 other failures.
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "app/exit_codes.h"
#include "app/flagfile_check.h"
#include "app/generate_command.h"
#include "app/predict_command.h"
#include "app/train_command.h"
#include "common/logging.h"
#include "common/torch_status.h"
#include "train/agreed_stop.h"

namespace {

constexpr char kUsage[] =
    "distrnn COMMAND [--flagfile=FILE] [--flag=value ...]\n"
    "commands:\n"
    "  train      train a model: --task=ptb_lm|char_lm|copy|imdb (see `distrnn train --help`)\n"
    "  generate   sample text from a language-model checkpoint\n"
    "  predict    probability that a review is positive, from an imdb checkpoint\n";

// Abseil exits with status 1 on an unknown or malformed flag (and on --help). We want 2
// for bad input and 0 for help: while flags are being parsed, an exit is redirected.
bool g_parsing_flags = false;
bool g_help_requested = false;
void RedirectExitDuringParse() {
  if (!g_parsing_flags) return;
  std::fflush(stdout);
  std::fflush(stderr);
  _exit(g_help_requested ? distrnn::app::kExitOk : distrnn::app::kExitBadInput);
}

bool IsHelpFlag(const char* arg) {
  for (const char* h : {"--help", "-help", "--helpfull", "--helpshort", "--helppackage", "--version", "--only_check_args"}) {
    if (std::strcmp(arg, h) == 0 || absl::StartsWith(arg, absl::StrCat(h, "="))) return true;
  }
  return false;
}

bool IsOurFlagFile(absl::string_view file) { return absl::StrContains(file, "src/app/"); }

int Fail(const absl::Status& status) {
  // An agreed stop ends every rank with the same status: rank 0 alone says it.
  if (distrnn::train::IsAgreedStop(status)) {
    if (distrnn::common::LogRank() == 0) {
      std::fprintf(stderr, "distrnn: %s%s\n", distrnn::train::StopSignalOf(status) > 0 ? "" : "error: ",
                   std::string(status.message()).c_str());
    }
    return distrnn::app::ExitCodeFor(status);
  }
  std::fprintf(stderr, "distrnn: error: %s\n", std::string(status.message()).c_str());
  return distrnn::app::ExitCodeFor(status);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  absl::FlagsUsageConfig usage;
  usage.contains_helpshort_flags = IsOurFlagFile;
  usage.contains_help_flags = IsOurFlagFile;
  absl::SetFlagsUsageConfig(usage);

  if (argc < 2 || argv[1][0] == '-') {
    if (argc >= 2 && IsHelpFlag(argv[1])) {
      std::fputs(kUsage, stdout);
      return distrnn::app::kExitOk;
    }
    std::fputs(kUsage, stderr);
    return distrnn::app::kExitBadInput;
  }
  const std::string command = argv[1];
  std::vector<char*> args = {argv[0]};
  for (int i = 2; i < argc; ++i) {
    args.push_back(argv[i]);
    g_help_requested |= IsHelpFlag(argv[i]);
  }
  if (absl::Status flagfiles = distrnn::app::CheckFlagfiles(std::vector<std::string>(args.begin() + 1, args.end())); !flagfiles.ok()) {
    return Fail(flagfiles);  // Note [flagfile lines]
  }
  std::atexit(RedirectExitDuringParse);
  g_parsing_flags = true;
  std::vector<char*> positional = absl::ParseCommandLine(static_cast<int>(args.size()), args.data());
  g_parsing_flags = false;
  if (positional.size() > 1) {
    return Fail(absl::InvalidArgumentError(absl::StrCat("unexpected argument '", positional[1], "'")));
  }

  absl::Status status;
  try {
    if (command == "train") {
      status = distrnn::app::RunTrain();
    } else if (command == "generate") {
      status = distrnn::app::RunGenerate();
    } else if (command == "predict") {
      status = distrnn::app::RunPredict();
    } else {
      return Fail(absl::InvalidArgumentError(absl::StrCat("unknown command '", command, "'\n", kUsage)));
    }
  } catch (...) {
    // An exception no module turned into a status is a bug; it still ends in one line and
    // exit 1 rather than std::terminate's abort and trace.
    status = distrnn::common::StatusFromCurrentException("internal error (an uncaught exception; please report)");
  }
  return status.ok() ? distrnn::app::kExitOk : Fail(status);
}

