// Vocabulary: a bijection between tokens (words or characters) and ids 0..size-1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <unordered_map>
#include <vector>

namespace distrnn::data {

class Vocabulary {
 public:
  Vocabulary() = default;
  // Ids in the order given; duplicates are ignored.
  explicit Vocabulary(const std::vector<std::string>& tokens);

  // Ids by descending count, ties by token (the order of the TensorFlow PTB reader).
  static Vocabulary FromCounts(const std::unordered_map<std::string, int64_t>& counts);

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  std::optional<int64_t> Find(absl::string_view token) const;
  const std::string& Token(int64_t id) const { return tokens_.at(id); }
  const std::vector<std::string>& tokens() const { return tokens_; }
  bool Contains(absl::string_view token) const { return Find(token).has_value(); }

 private:
  std::vector<std::string> tokens_;
  std::unordered_map<std::string, int64_t> ids_;
};

}  // namespace distrnn::data
