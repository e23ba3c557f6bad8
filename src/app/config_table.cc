#include "app/config_table.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace distrnn::app {

std::string FormatConfigTable(const ConfigRows& rows) {
  size_t key_width = 0, value_width = 0;
  for (const auto& [key, value] : rows) {
    key_width = std::max(key_width, key.size());
    value_width = std::max(value_width, value.size());
  }
  const std::string rule = absl::StrCat("+", std::string(key_width + 2, '-'), "+", std::string(value_width + 2, '-'), "+");
  std::string out = rule + "\n";
  for (const auto& [key, value] : rows) {
    absl::StrAppend(&out, absl::StrFormat("| %-*s | %-*s |\n", key_width, key, value_width, value));
  }
  return out + rule;
}

}  // namespace distrnn::app
