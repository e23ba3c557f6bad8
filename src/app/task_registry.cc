#include "app/task_registry.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace distrnn::app {

const std::vector<TaskEntry>& TaskRegistry() {
  using train::LrScheduleKind;
  using train::OptimizerKind;
  static const std::vector<TaskEntry> entries = {
      {"ptb_lm", "Penn Treebank word language model (Zaremba et al. 2014)", OptimizerKind::kSgd,
       LrScheduleKind::kZaremba, PrepareLmTask},
      {"char_lm", "character language model on any UTF-8 text file", OptimizerKind::kSgd, LrScheduleKind::kZaremba,
       PrepareLmTask},
      {"copy", "synthetic copy task: train at length K, test at K+M", OptimizerKind::kAdam,
       LrScheduleKind::kConstant, PrepareCopyTask},
      {"imdb", "IMDB sentiment classification", OptimizerKind::kAdam, LrScheduleKind::kConstant, PrepareImdbTask},
  };
  return entries;
}

absl::StatusOr<const TaskEntry*> FindTask(const std::string& name) {
  std::vector<std::string> names;
  for (const TaskEntry& entry : TaskRegistry()) {
    if (entry.name == name) return &entry;
    names.push_back(entry.name);
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unknown --task '", name, "' (expected ", absl::StrJoin(names, ", "), ")"));
}

}  // namespace distrnn::app
