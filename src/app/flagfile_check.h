// A check of the command line's flagfiles before Abseil parses them.
//
// Note [flagfile lines]
// Abseil 20220623 aborts (ABSL_INTERNAL_CHECK "Flagfile cannot contain positional
// argument", SIGABRT) on a flagfile line with an empty flag name ("-", "--", "-=x",
// "--=x"), and follows a cycle of
// --flagfile lines for ever. Both were found by issue 8's flagfile fuzzing. main runs this
// check first, so such a file is bad input like any other: one line, exit 2. Everything
// else (unknown flags, bad values, files that cannot be opened) Abseil reports itself.
#pragma once

#include <string>
#include <vector>

#include "absl/status/status.h"

namespace distrnn::app {

// Flagfiles nested deeper than this are taken for a cycle.
inline constexpr int kMaxFlagfileDepth = 16;

// OK, or InvalidArgument naming the flagfile and line of a line with no flag name, or the chain of
// flagfiles nested deeper than kMaxFlagfileDepth. `args` are the command-line arguments
// (--flagfile=a,b and --flagfile a are both followed).
absl::Status CheckFlagfiles(const std::vector<std::string>& args);

}  // namespace distrnn::app
