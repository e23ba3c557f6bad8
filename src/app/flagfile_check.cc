#include "app/flagfile_check.h"

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/status_macros.h"

namespace distrnn::app {
namespace {

absl::Status CheckFile(const std::string& path, int depth);

// The files named by the --flagfile arguments of `args` (either spelling, either form).
absl::Status CheckArgs(const std::vector<std::string>& args, int depth) {
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (!absl::ConsumePrefix(&arg, "--")) absl::ConsumePrefix(&arg, "-");
    std::string value;
    if (absl::ConsumePrefix(&arg, "flagfile=")) {
      value = std::string(arg);
    } else if (arg == "flagfile" && i + 1 < args.size()) {
      value = args[++i];
    } else {
      continue;
    }
    for (absl::string_view file : absl::StrSplit(value, ',', absl::SkipEmpty())) {
      RETURN_IF_ERROR(CheckFile(std::string(file), depth + 1));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckFile(const std::string& path, int depth) {
  if (depth > kMaxFlagfileDepth) {
    return absl::InvalidArgumentError(absl::StrCat("--flagfile ", path, " is nested more than ", kMaxFlagfileDepth,
                                                   " flagfiles deep (does a flagfile include itself?)"));
  }
  std::ifstream in(path);
  if (!in) return absl::OkStatus();  // Abseil says it cannot open it
  std::vector<std::string> args;
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    // Abseil's reading: leading whitespace dropped, empty lines and '#' comments skipped.
    const absl::string_view stripped = absl::StripLeadingAsciiWhitespace(line);
    // Abseil's CHECK fires for an argument from a flagfile with an empty flag name: "-",
    // "--", "-=x", "--=x".
    absl::string_view name = stripped;
    if (absl::ConsumePrefix(&name, "-")) {
      absl::ConsumePrefix(&name, "-");
      if (name.substr(0, name.find('=')).empty()) {
        return absl::InvalidArgumentError(absl::StrCat(path, ":", number, ": '", stripped.substr(0, 40),
                                                       "' names no flag (expected --name=value)"));
      }
    }
    if (!stripped.empty() && stripped[0] != '#') args.emplace_back(stripped);
  }
  return CheckArgs(args, depth);
}

}  // namespace

absl::Status CheckFlagfiles(const std::vector<std::string>& args) { return CheckArgs(args, 0); }

}  // namespace distrnn::app
