#include "data/vocabulary.h"

#include <algorithm>

namespace distrnn::data {

Vocabulary::Vocabulary(const std::vector<std::string>& tokens) {
  for (const auto& t : tokens) {
    if (ids_.emplace(t, static_cast<int64_t>(tokens_.size())).second) tokens_.push_back(t);
  }
}

Vocabulary Vocabulary::FromCounts(const std::unordered_map<std::string, int64_t>& counts) {
  std::vector<std::pair<std::string, int64_t>> items(counts.begin(), counts.end());
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  std::vector<std::string> tokens;
  tokens.reserve(items.size());
  for (auto& [token, count] : items) tokens.push_back(token);
  return Vocabulary(tokens);
}

std::optional<int64_t> Vocabulary::Find(absl::string_view token) const {
  auto it = ids_.find(std::string(token));
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

}  // namespace distrnn::data
