// A model's size checked against the memory this process may use, before it is built.
//
// Note [model size check]
// A mistyped or hostile size (--hidden_size=123456789 in a flagfile, or in a checkpoint's
// metadata) used to reach libtorch, which spent seconds allocating and initialising the
// first matrices before an allocation failed (exit 1), or was killed by the OOM killer. A
// lower bound of the parameter count -- the embedding, the output layer and one
// hidden x (input + hidden) matrix per layer and direction, which every cell has at least
// -- is compared with the memory the process may use (the smallest of physical memory,
// RLIMIT_AS, RLIMIT_DATA and the cgroup's memory.max). Only a model that cannot fit even
// then is refused (InvalidArgument: bad input, exit 2), so no real configuration is.
#pragma once

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "model/model_config.h"

namespace distrnn::app {

// The bytes this process may allocate (see the note).
uint64_t UsableMemoryBytes();

// OK unless `copies` x 4 bytes x (the lower bound of the parameters of a model with this
// stack, `vocab_size` x `embedding_size` embedding and a hidden x `output_size` output
// layer) exceeds UsableMemoryBytes(). `copies`: 1 to run a model, 2 to train it (weights
// and gradients). `what` names the model in the error.
absl::Status CheckModelFitsInMemory(const model::StackConfig& stack, int64_t vocab_size, int64_t embedding_size,
                                    int64_t output_size, int copies, absl::string_view what);

inline absl::Status CheckModelFitsInMemory(const model::LanguageModelConfig& c, int copies, absl::string_view what) {
  return CheckModelFitsInMemory(c.stack, c.vocab_size, c.embedding_size, c.tie_weights ? 0 : c.vocab_size, copies,
                                what);
}
inline absl::Status CheckModelFitsInMemory(const model::ClassifierConfig& c, int copies, absl::string_view what) {
  return CheckModelFitsInMemory(c.stack, c.vocab_size, c.embedding_size, c.num_classes, copies, what);
}

}  // namespace distrnn::app
